package xen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/xenclone/xenclone/hostagent/command"
)

// Reading xenstore: `xenstore-ls -f PATH` prints every node under PATH as one line,
// `/full/path = "value"` (a node whose value cannot be read as `/full/path:`), recursing
// depth first. The value is quoted by the tool's sanitise_value (tools/xs-clients/
// xenstore_client.c): printable ASCII stays as it is except the backslash, which becomes `\\`;
// tab, newline and carriage return become `\t`, `\n`, `\r`; bytes below 010 become three octal
// digits (`\000`) and all other bytes `\xHH`. A double quote is not escaped, so the value is
// everything between the first ` = "` and the line's last `"`. Without a terminal on stdout
// -f lines are never cut to the terminal's width (they are on a terminal, ending in `\..."`).

// ErrNoSuchPath is returned when the path read does not exist (the domain is gone).
var ErrNoSuchPath = errors.New("no such xenstore path")

// ReadTree returns every node under /local/domain/<domid>/ with a value, keyed by its path
// relative to that root (e.g. attr/vif/0/ipv4/0), in one `xenstore-ls -f`.
func (x *Xenstore) ReadTree(ctx context.Context, domid int) (map[string]string, error) {
	if domid <= 0 {
		return nil, fmt.Errorf("xenstore-ls: domid %d is not a guest", domid)
	}
	bin := x.Ls
	if bin == "" {
		bin = "xenstore-ls"
	}
	root := "/local/domain/" + strconv.Itoa(domid)
	out, err := x.Runner.Run(ctx, bin, "-f", root)
	if err != nil {
		if strings.Contains(command.Stderr(err), "No such file or directory") {
			return nil, fmt.Errorf("xenstore-ls %s: %w", root, ErrNoSuchPath)
		}
		return nil, fmt.Errorf("xenstore-ls %s: exit %d: %s", root, command.ExitCode(err), strings.TrimSpace(command.Stderr(err)))
	}
	return ParseXenstoreLs(out, root)
}

// ParseXenstoreLs decodes `xenstore-ls -f root` output into values keyed by path relative to
// root. Nodes outside root and nodes without a value are left out; a line that is neither
// form is an error (the tool's output changed, or it was cut by a terminal).
func ParseXenstoreLs(out []byte, root string) (map[string]string, error) {
	root = strings.TrimSuffix(root, "/") + "/"
	tree := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		i := strings.Index(line, ` = "`)
		if i < 0 {
			if strings.HasSuffix(line, ":") && !strings.Contains(line, " ") {
				continue // a node whose value could not be read
			}
			return nil, fmt.Errorf("xenstore-ls line %d: %q is not `path = \"value\"`", n, clip(line))
		}
		path, quoted := line[:i], line[i+len(` = "`):]
		if !strings.HasSuffix(quoted, `"`) {
			return nil, fmt.Errorf("xenstore-ls line %d: value of %s does not end in a quote", n, clip(path))
		}
		quoted = quoted[:len(quoted)-1]
		if strings.HasSuffix(quoted, `\...`) {
			return nil, fmt.Errorf("xenstore-ls line %d: value of %s was cut to a terminal's width", n, clip(path))
		}
		val, err := unquoteXenstore(quoted)
		if err != nil {
			return nil, fmt.Errorf("xenstore-ls line %d: value of %s: %w", n, clip(path), err)
		}
		if rel, ok := strings.CutPrefix(path, root); ok && rel != "" {
			tree[rel] = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("xenstore-ls: %w", err)
	}
	return tree, nil
}

// unquoteXenstore undoes sanitise_value.
func unquoteXenstore(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(s) {
			return "", errors.New("ends in a lone backslash")
		}
		i++
		switch s[i] {
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		case 'x':
			if i+2 >= len(s) {
				return "", errors.New("short \\x escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return "", fmt.Errorf("bad \\x escape %q", s[i-1:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		case '0', '1', '2', '3', '4', '5', '6', '7':
			if i+2 >= len(s) {
				return "", errors.New("short octal escape")
			}
			v, err := strconv.ParseUint(s[i:i+3], 8, 8)
			if err != nil {
				return "", fmt.Errorf("bad octal escape %q", s[i-1:i+3])
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", fmt.Errorf("unknown escape \\%c", s[i])
		}
	}
	return b.String(), nil
}

func clip(s string) string {
	if len(s) > 80 {
		return truncate(s, 80) + "…"
	}
	return s
}

// WatchPaths runs `xenstore-watch path…` until ctx ends or the tool exits, and calls onPath
// with each path that fired (a watch fires for any change at or below its path, and once for
// each path right after it is set up). xenstored queues the events of a slow reader, so onPath
// must return quickly.
func (x *Xenstore) WatchPaths(ctx context.Context, onPath func(string), paths ...string) error {
	if len(paths) == 0 {
		return errors.New("xenstore-watch: no path")
	}
	bin := x.Watch
	if bin == "" {
		bin = "xenstore-watch"
	}
	if err := x.Runner.Stream(ctx, onPath, bin, paths...); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("xenstore-watch %s: exit %d: %s", strings.Join(paths, " "), command.ExitCode(err), strings.TrimSpace(command.Stderr(err)))
	}
	return errors.New("xenstore-watch exited")
}
