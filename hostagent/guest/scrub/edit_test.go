package scrub

import (
	"bytes"
	"strings"
	"testing"
)

func TestRemoveShellVar(t *testing.T) {
	in := "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\n  export HWADDR=\"aa\"\r\n#HWADDR=commented\nONBOOT=yes"
	out, n := RemoveShellVar([]byte(in), "HWADDR")
	if want := "DEVICE=eth0\n#HWADDR=commented\nONBOOT=yes"; string(out) != want || n != 2 {
		t.Fatalf("got %q (%d), want %q", out, n, want)
	}
}

func TestSetShellVar(t *testing.T) {
	in := "NETWORKING=yes\nHOSTNAME=old.example.com\r\n"
	out, found, changed := SetShellVar([]byte(in), "HOSTNAME", "web-1")
	if string(out) != "NETWORKING=yes\nHOSTNAME=web-1\r\n" || !found || !changed {
		t.Fatalf("got %q %v %v", out, found, changed)
	}
	_, found, changed = SetShellVar(out, "HOSTNAME", "web-1")
	if !found || changed {
		t.Fatal("second set reported a change")
	}
}

func TestRemoveKeyfileMACs(t *testing.T) {
	in := `[connection]
id=Wired
mac-address=52:54:00:00:00:01

[ethernet]
mac-address=52:54:00:12:34:56
cloned-mac-address = 52:54:00:aa:bb:cc
# mac-address=comment stays
mtu=1500

[802-3-ethernet]
cloned-mac-address=stable
`
	out, dropped := RemoveKeyfileMACs([]byte(in))
	want := `[connection]
id=Wired
mac-address=52:54:00:00:00:01

[ethernet]
# mac-address=comment stays
mtu=1500

[802-3-ethernet]
cloned-mac-address=stable
`
	if string(out) != want || len(dropped) != 2 {
		t.Fatalf("got\n%s\ndropped %v", out, dropped)
	}
}

func TestSetHostsNames(t *testing.T) {
	in := "127.0.0.1\tlocalhost template\n127.0.1.1\ttemplate.example.com template # installer\n::1 localhost ip6-localhost\n10.0.0.1 template\n"
	out, changed := SetHostsNames([]byte(in), []string{"template", "localhost"}, "web-1", "web-1")
	want := "127.0.0.1\tlocalhost\tweb-1\n127.0.1.1\tweb-1 # installer\n::1 localhost ip6-localhost\n10.0.0.1 template\n"
	if string(out) != want || !changed {
		t.Fatalf("got %q, want %q", out, want)
	}
}

// The editors' invariants, for any input: lines they do not target pass through unchanged,
// the targeted key is gone (or set), and a second pass changes nothing.

func FuzzRemoveShellVar(f *testing.F) {
	f.Add([]byte("DEVICE=eth0\nHWADDR=52:54:00:12:34:56\r\nONBOOT=yes"), "HWADDR")
	f.Add([]byte(" export HWADDR=x\n"), "HWADDR")
	f.Fuzz(func(t *testing.T, in []byte, key string) {
		if key == "" || strings.ContainsAny(key, "=\n \t") {
			return
		}
		out, n := RemoveShellVar(in, key)
		if len(out) > len(in) {
			t.Fatal("output grew")
		}
		for _, l := range lines(out) {
			if _, ok := shellAssign(l, key); ok {
				t.Fatalf("line %q still assigns %s", l, key)
			}
		}
		if again, m := RemoveShellVar(out, key); m != 0 || !bytes.Equal(again, out) {
			t.Fatal("not idempotent")
		}
		if n == 0 && !bytes.Equal(out, in) {
			t.Fatal("changed without removing")
		}
	})
}

func FuzzSetShellVar(f *testing.F) {
	f.Add([]byte("HOSTNAME=old\nX=1\r\n"), "web-1")
	f.Fuzz(func(t *testing.T, in []byte, value string) {
		if strings.ContainsAny(value, "\r\n") {
			return
		}
		out, _, _ := SetShellVar(in, "HOSTNAME", value)
		if len(lines(out)) != len(lines(in)) {
			t.Fatal("line count changed")
		}
		if again, _, changed := SetShellVar(out, "HOSTNAME", value); changed || !bytes.Equal(again, out) {
			t.Fatal("not idempotent")
		}
	})
}

func FuzzRemoveKeyfileMACs(f *testing.F) {
	f.Add([]byte("[ethernet]\nmac-address=52:54:00:12:34:56\ncloned-mac-address=random\n"))
	f.Add([]byte("[802-3-ethernet]\r\n cloned-mac-address = 00:16:3e:00:00:01\r\n[wifi]\nmac-address=x\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, dropped := RemoveKeyfileMACs(in)
		// Non-empty lines: SplitAfter yields a trailing "" after a final newline.
		count := func(b []byte) int {
			n := 0
			for _, l := range lines(b) {
				if len(l) > 0 {
					n++
				}
			}
			return n
		}
		if count(out) != count(in)-len(dropped) {
			t.Fatalf("dropped %d keys but %d lines", len(dropped), count(in)-count(out))
		}
		if again, d := RemoveKeyfileMACs(out); len(d) != 0 || !bytes.Equal(again, out) {
			t.Fatal("not idempotent")
		}
	})
}

func FuzzSetHostsNames(f *testing.F) {
	f.Add([]byte("127.0.0.1 localhost old\n127.0.1.1 old.example old\n"), "old")
	f.Fuzz(func(t *testing.T, in []byte, old string) {
		out, _ := SetHostsNames(in, []string{old}, "web-1.example.com", "web-1")
		if len(lines(out)) != len(lines(in)) {
			t.Fatal("line count changed")
		}
		if again, changed := SetHostsNames(out, []string{old}, "web-1.example.com", "web-1"); changed || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
	})
}
