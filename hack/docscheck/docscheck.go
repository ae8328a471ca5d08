// Package docscheck holds the rule that every shell command printed in README.md and docs/*.md
// is exercised: hack/playground-smoke.sh runs it word for word (through its `doc` helper), or
// allowlist.yaml says in one line why it cannot. The tests in this package read the docs, the
// smoke script and the allowlist; after its run the smoke script checks its trace of the
// commands it ran against the same list.
package docscheck

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Excluded docs are not checked, each for the reason given.
var Excluded = map[string]string{
	"docs/host-lab.md": "the QEMU host lab's own guide: its commands run in the lab e2e (make lab, make test-e2e), which needs KVM and ~40 min, not in the playground",
}

// Command is one shell command as a doc prints it.
type Command struct {
	File string // relative to the repository root
	Line int    // of the command's first line
	Text string // normalized: see Normalize
}

func (c Command) String() string { return fmt.Sprintf("%s:%d: %s", c.File, c.Line, c.Text) }

// DocFiles lists README.md and docs/*.md under root, without the excluded ones.
func DocFiles(root string) ([]string, error) {
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	files := []string{"README.md"}
	for _, d := range docs {
		rel, err := filepath.Rel(root, d)
		if err != nil {
			return nil, err
		}
		rel = filepath.ToSlash(rel)
		if _, skip := Excluded[rel]; !skip {
			files = append(files, rel)
		}
	}
	sort.Strings(files[1:])
	return files, nil
}

// shellInfo are the fence info strings whose blocks hold commands; in console blocks only the
// lines after a "$ " prompt are commands, the rest is output.
var shellInfo = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

// Extract returns the commands of every ```sh, ```bash, ```shell and ```console block of a
// Markdown text, one per logical command: continuation lines, pipelines, loops and heredocs are
// kept together.
func Extract(file, markdown string) []Command {
	var out []Command
	var block []string
	fence, shell, console, start := "", false, false, 0
	for i, line := range strings.Split(markdown, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence == "" {
			if f := fenceOf(trimmed); f != "" {
				fence, block, start = f, nil, i+2
				info := strings.Fields(strings.TrimLeft(trimmed, "`~"))
				shell = len(info) > 0 && shellInfo[info[0]]
				console = shell && info[0] == "console"
			}
			continue
		}
		if f := fenceOf(trimmed); f != "" && f[0] == fence[0] && len(f) >= len(fence) && len(f) == len(trimmed) {
			if shell {
				out = append(out, split(file, start, block, console)...)
			}
			fence = ""
			continue
		}
		block = append(block, line)
	}
	return out
}

// fenceOf returns the run of ` or ~ (three or more) a line starts with, or "".
func fenceOf(trimmed string) string {
	for _, c := range []string{"`", "~"} {
		n := len(trimmed) - len(strings.TrimLeft(trimmed, c))
		if n >= 3 {
			return trimmed[:n]
		}
	}
	return ""
}

var heredocStart = regexp.MustCompile(`<<-?\s*(?:'([A-Za-z_]+)'|"([A-Za-z_]+)"|([A-Za-z_]+))`)

// split cuts a block's lines into logical commands.
func split(file string, first int, lines []string, console bool) []Command {
	var out []Command
	var cur []string
	start := 0
	depth := 0
	heredocEnd := ""
	emit := func() {
		if len(cur) > 0 {
			out = append(out, Command{File: file, Line: start, Text: Normalize(strings.Join(cur, "\n"))})
		}
		cur, depth = nil, 0
	}
	for i, line := range lines {
		if heredocEnd != "" {
			cur = append(cur, line)
			if strings.TrimSpace(line) == heredocEnd {
				heredocEnd = ""
				if depth <= 0 {
					emit()
				}
			}
			continue
		}
		if console && len(cur) == 0 {
			after, ok := strings.CutPrefix(line, "$ ")
			if !ok {
				continue // output
			}
			line = after
		}
		code := stripComment(line)
		if strings.TrimSpace(code) == "" && len(cur) == 0 {
			continue
		}
		if len(cur) == 0 {
			start = first + i
		}
		cur = append(cur, line)
		depth += blockDepth(code)
		if m := heredocStart.FindStringSubmatch(code); m != nil {
			heredocEnd = m[1] + m[2] + m[3]
			continue
		}
		if depth <= 0 && !continues(code) {
			emit()
		}
	}
	emit()
	return out
}

// continues says whether a line (without its comment) needs the next one.
func continues(code string) bool {
	c := strings.TrimRight(stripComment(code), " \t")
	return strings.HasSuffix(c, `\`) || strings.HasSuffix(c, "|") || strings.HasSuffix(c, "&&")
}

// blockDepth counts the compound commands a line opens minus those it closes.
func blockDepth(code string) int {
	d := 0
	for _, w := range strings.FieldsFunc(unquoted(code), func(r rune) bool { return r == ' ' || r == '\t' || r == ';' }) {
		switch w {
		case "while", "until", "for", "if", "case":
			d++
		case "done", "fi", "esac":
			d--
		}
	}
	return d
}

// unquoted blanks out quoted text, so words inside quotes are not taken for keywords.
func unquoted(s string) string {
	var b strings.Builder
	var q rune
	for _, r := range s {
		switch {
		case q != 0 && r == q:
			q = 0
			b.WriteRune(' ')
		case q != 0:
			b.WriteRune(' ')
		case r == '\'' || r == '"':
			q = r
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// stripComment drops a shell comment: a # that starts a word outside quotes.
func stripComment(line string) string {
	var q rune
	prev := ' '
	for i, r := range line {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		case r == '#' && (prev == ' ' || prev == '\t'):
			return strings.TrimRight(line[:i], " \t")
		}
		prev = r
	}
	return strings.TrimRight(line, " \t")
}

// Normalize is the form commands are compared in: comments and trailing blanks dropped,
// a backslash-newline continuation joined into one line with single spaces, blank lines
// dropped. Heredoc bodies stay as they are (indentation matters in YAML).
func Normalize(cmd string) string {
	var out []string
	inHeredoc := ""
	pending := ""
	for _, line := range strings.Split(cmd, "\n") {
		if inHeredoc != "" {
			out = append(out, strings.TrimRight(line, " \t"))
			if strings.TrimSpace(line) == inHeredoc {
				inHeredoc = ""
			}
			continue
		}
		code := stripComment(line)
		if pending != "" {
			code = pending + " " + strings.TrimSpace(code)
			pending = ""
		}
		if c, ok := strings.CutSuffix(code, `\`); ok {
			pending = strings.TrimRight(c, " \t")
			continue
		}
		if strings.TrimSpace(code) == "" {
			continue
		}
		out = append(out, code)
		if m := heredocStart.FindStringSubmatch(code); m != nil {
			inHeredoc = m[1] + m[2] + m[3]
		}
	}
	if pending != "" {
		out = append(out, pending)
	}
	return strings.Join(out, "\n")
}

// SmokeCommand is a docs command as hack/playground-smoke.sh runs it.
type SmokeCommand struct {
	Line int
	Text string            // normalized
	Subs map[string]string // placeholder -> value, e.g. NAME -> web-1
}

var (
	smokeQuoted  = regexp.MustCompile(`(?:^|[\s;(&|])doc(?:_bg|_fails)?((?:\s+[A-Z][A-Z_]*=[^\s']+)*)\s+'([^']*)'`)
	smokeHeredoc = regexp.MustCompile(`(?:^|[\s;(&|])doc(?:_bg|_fails)?((?:\s+[A-Z][A-Z_]*=[^\s']+)*)\s+<<'CMD'`)
)

// SmokeCommands finds the commands the smoke script runs through its doc helpers:
// `doc [WORD=value...] 'command'` and, for a command with single quotes or several lines,
// `doc [WORD=value...] <<'CMD'` followed by the command and a line CMD.
func SmokeCommands(script string) ([]SmokeCommand, error) {
	var out []SmokeCommand
	lines := strings.Split(script, "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if m := smokeHeredoc.FindStringSubmatch(line); m != nil {
			var body []string
			j := i + 1
			for ; j < len(lines) && lines[j] != "CMD"; j++ {
				body = append(body, lines[j])
			}
			if j == len(lines) {
				return nil, fmt.Errorf("line %d: heredoc CMD not closed", i+1)
			}
			out = append(out, SmokeCommand{Line: i + 1, Text: Normalize(strings.Join(body, "\n")), Subs: subs(m[1])})
			i = j
			continue
		}
		for _, m := range smokeQuoted.FindAllStringSubmatch(line, -1) {
			out = append(out, SmokeCommand{Line: i + 1, Text: Normalize(m[2]), Subs: subs(m[1])})
		}
	}
	return out, nil
}

func subs(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

// Allowed is an entry of allowlist.yaml: a docs command the smoke run does not run, and why.
type Allowed struct {
	Command string `json:"command"`
	Reason  string `json:"reason"`
}

// LoadAllowlist reads allowlist.yaml; commands are normalized.
func LoadAllowlist(path string) ([]Allowed, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []Allowed
	if err := yaml.UnmarshalStrict(data, &list); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for i := range list {
		list[i].Command = Normalize(list[i].Command)
	}
	return list, nil
}

// ReadTrace reads the smoke run's trace: the commands its doc helpers ran, NUL-separated, as
// written in the script (before placeholders were filled in).
func ReadTrace(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ran := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sc.Split(func(data []byte, atEOF bool) (int, []byte, error) {
		for i, b := range data {
			if b == 0 {
				return i + 1, data[:i], nil
			}
		}
		if atEOF && len(data) > 0 {
			return len(data), data, nil
		}
		return 0, nil, nil
	})
	for sc.Scan() {
		ran[Normalize(sc.Text())] = true
	}
	return ran, sc.Err()
}
