package scrub

import (
	"bytes"
	"net"
	"strings"
)

// The editors below change only the lines they target and keep every other byte (comments,
// CRLF endings, a missing final newline), so a scrub never rewrites a guest's file into a
// form its own tools would not have written.

func lines(b []byte) [][]byte { return bytes.SplitAfter(b, []byte("\n")) }

// shellAssign reports whether line assigns key in a shell-style file (ifcfg-*,
// /etc/sysconfig/network): optional blanks, an optional "export ", then key=. It returns the
// prefix up to and including the "=".
func shellAssign(line []byte, key string) (prefix []byte, ok bool) {
	s := bytes.TrimLeft(line, " \t")
	if rest, found := bytes.CutPrefix(s, []byte("export ")); found {
		s = bytes.TrimLeft(rest, " \t")
	}
	if !bytes.HasPrefix(s, []byte(key+"=")) {
		return nil, false
	}
	n := len(line) - len(s) + len(key) + 1
	return line[:n], true
}

// RemoveShellVar drops every line assigning key (e.g. HWADDR in an ifcfg file) and says how
// many it dropped.
func RemoveShellVar(content []byte, key string) ([]byte, int) {
	var out bytes.Buffer
	n := 0
	for _, l := range lines(content) {
		if _, ok := shellAssign(l, key); ok {
			n++
			continue
		}
		out.Write(l)
	}
	if n == 0 {
		return content, 0
	}
	return out.Bytes(), n
}

// SetShellVar sets the value of every line assigning key to value (which must need no
// quoting, e.g. a validated host name) and says whether any line changed. It never adds a
// line: the caller decides whether a missing key is worth adding.
func SetShellVar(content []byte, key, value string) ([]byte, bool, bool) {
	var out bytes.Buffer
	found, changed := false, false
	for _, l := range lines(content) {
		prefix, ok := shellAssign(l, key)
		if !ok {
			out.Write(l)
			continue
		}
		found = true
		eol := l[len(bytes.TrimRight(l, "\r\n")):]
		nl := append(append(append([]byte{}, prefix...), value...), eol...)
		if !bytes.Equal(nl, l) {
			changed = true
		}
		out.Write(nl)
	}
	if !changed {
		return content, found, false
	}
	return out.Bytes(), found, true
}

// RemoveKeyfileMACs drops the MAC bindings from a NetworkManager keyfile: mac-address= in the
// [ethernet] section (alias [802-3-ethernet]), and cloned-mac-address= when it holds a literal
// address (its other values — preserve, permanent, random, stable — are policies, not
// bindings, and stay). It returns the keys it dropped.
func RemoveKeyfileMACs(content []byte) ([]byte, []string) {
	var out bytes.Buffer
	var dropped []string
	inEthernet := false
	for _, l := range lines(content) {
		t := bytes.TrimSpace(l)
		if bytes.HasPrefix(t, []byte("[")) && bytes.HasSuffix(t, []byte("]")) {
			sec := string(bytes.TrimSpace(t[1 : len(t)-1]))
			inEthernet = sec == "ethernet" || sec == "802-3-ethernet"
			out.Write(l)
			continue
		}
		if inEthernet && !bytes.HasPrefix(t, []byte("#")) && !bytes.HasPrefix(t, []byte(";")) {
			if k, v, ok := bytes.Cut(t, []byte("=")); ok {
				key := string(bytes.TrimSpace(k))
				val := string(bytes.TrimSpace(v))
				if key == "mac-address" || (key == "cloned-mac-address" && isMAC(val)) {
					dropped = append(dropped, key)
					continue
				}
			}
		}
		out.Write(l)
	}
	if len(dropped) == 0 {
		return content, nil
	}
	return out.Bytes(), dropped
}

func isMAC(s string) bool {
	_, err := net.ParseMAC(s)
	return err == nil
}

// SetHostsNames points /etc/hosts at the new names: the Debian-style "127.0.1.1" line gets
// exactly the new names, and on other loopback lines (127.0.0.0/8, ::1) any of the old
// names is replaced by the new one. localhost names are never touched. It says whether
// anything changed.
func SetHostsNames(content []byte, old []string, fqdn, short string) ([]byte, bool) {
	names := short
	if fqdn != short {
		names = fqdn + " " + short
	}
	oldSet := map[string]string{}
	for _, o := range old {
		if o == "" || strings.HasPrefix(o, "localhost") {
			continue
		}
		if strings.Contains(o, ".") {
			oldSet[o] = fqdn
		} else {
			oldSet[o] = short
		}
	}
	var out bytes.Buffer
	changed := false
	for _, l := range lines(content) {
		body := bytes.TrimRight(l, "\r\n")
		eol := l[len(body):]
		data, comment, _ := bytes.Cut(body, []byte("#"))
		fields := strings.Fields(string(data))
		if len(fields) == 0 {
			out.Write(l)
			continue
		}
		ip := net.ParseIP(fields[0])
		var nl []byte
		switch {
		case fields[0] == "127.0.1.1":
			nl = []byte("127.0.1.1\t" + names)
		case ip != nil && ip.IsLoopback():
			repl := false
			for i, f := range fields[1:] {
				if n, ok := oldSet[f]; ok {
					fields[i+1] = n
					repl = true
				}
			}
			if repl {
				nl = []byte(strings.Join(dedupe(fields[:1], fields[1:]), "\t"))
			}
		}
		if nl == nil {
			out.Write(l)
			continue
		}
		if bytes.Contains(body, []byte("#")) {
			nl = append(append(nl, " #"...), comment...)
		}
		nl = append(nl, eol...)
		if !bytes.Equal(nl, l) {
			changed = true
		}
		out.Write(nl)
	}
	if !changed {
		return content, false
	}
	return out.Bytes(), true
}

func dedupe(head, names []string) []string {
	seen := map[string]bool{}
	out := append([]string{}, head...)
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
