package scrub

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/guest/inroot"
	"github.com/xenclone/xenclone/hostagent/guest/internal/guesttree"
)

func openRoot(t *testing.T, dir string) *inroot.Root {
	t.Helper()
	r, err := inroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func gone(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists (%v)", p, err)
		}
	}
}

func changed(results []Result) map[string]Action {
	m := map[string]Action{}
	for _, r := range results {
		for _, c := range r.Changes {
			m[c.Path] = c.Action
		}
	}
	return m
}

var defaults = Resolve(nil)

func TestScrubRHEL(t *testing.T) {
	g := t.TempDir()
	guesttree.Write(t, g, guesttree.RHEL, nil)
	r := openRoot(t, g)
	p := Params{Hostname: "web-1", Random: bytes.NewReader(bytes.Repeat([]byte{0x5a}, 4096))}
	res, err := Run(context.Background(), r, defaults, p)
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, g, "/etc/sysconfig/network-scripts/ifcfg-eth0"); got != "DEVICE=eth0\nBOOTPROTO=dhcp\nDHCP_HOSTNAME=web-1\nONBOOT=yes\n" {
		t.Errorf("ifcfg-eth0 = %q", got)
	}
	if got := read(t, g, "/etc/NetworkManager/system-connections/eth0.nmconnection"); strings.Contains(got, "mac-address") || !strings.Contains(got, "[ipv4]\nmethod=auto") {
		t.Errorf("nmconnection = %q", got)
	}
	if st, _ := os.Stat(filepath.Join(g, "/etc/NetworkManager/system-connections/eth0.nmconnection")); st.Mode().Perm() != 0o600 {
		t.Errorf("nmconnection mode %v, want 0600 kept", st.Mode())
	}
	gone(t, g, "/etc/udev/rules.d/70-persistent-net.rules", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key.pub",
		"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub",
		"/var/lib/dhclient/dhclient--eth0.lease", "/var/lib/NetworkManager/internal-1234-eth0.lease")
	if got := read(t, g, "/etc/machine-id"); got != "" {
		t.Errorf("machine-id = %q, want empty (kept, truncated)", got)
	}
	if got := read(t, g, "/var/lib/systemd/random-seed"); got != strings.Repeat("\x5a", 512) {
		t.Errorf("random-seed not rewritten with host randomness (%d bytes)", len(got))
	}
	for p, want := range map[string]string{
		"/etc/hostname":                                "web-1\n",
		"/etc/sysconfig/network":                       "NETWORKING=yes\nHOSTNAME=web-1\n",
		"/etc/ssh/sshd_config":                         "PermitRootLogin no\n",
		"/var/log/messages":                            "boot\n", // logfiles is opt-in
		"/root/.bash_history":                          "ls\n",   // bash-history is opt-in
		"/var/lib/NetworkManager/NetworkManager.state": "[main]\nNetworkingEnabled=true\n",
	} {
		if got := read(t, g, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	want := map[string]Action{
		"/etc/sysconfig/network-scripts/ifcfg-eth0":                Edited,
		"/etc/NetworkManager/system-connections/eth0.nmconnection": Edited,
		"/etc/udev/rules.d/70-persistent-net.rules":                Removed,
		"/etc/machine-id":                                  Truncated,
		"/etc/ssh/ssh_host_rsa_key":                        Removed,
		"/etc/ssh/ssh_host_rsa_key.pub":                    Removed,
		"/etc/ssh/ssh_host_ed25519_key":                    Removed,
		"/etc/ssh/ssh_host_ed25519_key.pub":                Removed,
		"/var/lib/dhclient/dhclient--eth0.lease":           Removed,
		"/var/lib/NetworkManager/internal-1234-eth0.lease": Removed,
		"/var/lib/systemd/random-seed":                     Written,
		"/etc/hostname":                                    Written,
		"/etc/sysconfig/network":                           Edited,
	}
	if got := changed(res); !reflect.DeepEqual(got, want) {
		t.Errorf("reported changes\n%v\nwant\n%v", got, want)
	}

	// A second run converges: nothing but a fresh random seed.
	res, err = Run(context.Background(), r, defaults, Params{Hostname: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := changed(res); !reflect.DeepEqual(got, map[string]Action{"/var/lib/systemd/random-seed": Written}) {
		t.Errorf("second run changed %v", got)
	}
}

func TestScrubDebianWithOptIns(t *testing.T) {
	g := t.TempDir()
	guesttree.Write(t, g, guesttree.Debian, guesttree.DebianLinks)
	r := openRoot(t, g)
	ops := append(Resolve(nil), v1alpha1.ScrubLogFiles, v1alpha1.ScrubBashHistory)
	res, err := Run(context.Background(), r, ops, Params{Hostname: "web-1.lab.example"})
	if err != nil {
		t.Fatal(err)
	}
	if got := read(t, g, "/etc/hosts"); got != "127.0.0.1\tlocalhost\n127.0.1.1\tweb-1.lab.example web-1\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\n" {
		t.Errorf("/etc/hosts = %q", got)
	}
	if got := read(t, g, "/etc/hostname"); got != "web-1.lab.example\n" {
		t.Errorf("/etc/hostname = %q", got)
	}
	if got := read(t, g, "/etc/machine-id"); got != "" {
		t.Errorf("machine-id = %q", got)
	}
	if l, err := os.Readlink(filepath.Join(g, "/var/lib/dbus/machine-id")); err != nil || l != "/etc/machine-id" {
		t.Errorf("Debian's dbus machine-id link changed: %q %v", l, err)
	}
	gone(t, g, "/etc/ssh/ssh_host_ecdsa_key", "/etc/ssh/ssh_host_ecdsa_key.pub", "/var/lib/dhcp/dhclient.eth0.leases",
		"/var/log/syslog", "/var/log/apt/history.log", "/var/log/journal/fedcba9876543210fedcba9876543210",
		"/home/debian/.bash_history")
	if _, err := os.Stat(filepath.Join(g, "/var/log/journal")); err != nil {
		t.Error("the journal folder itself must stay")
	}
	seeds := 0
	for _, c := range res {
		if c.Operation == v1alpha1.ScrubRandomSeed {
			seeds = len(c.Changes)
		}
	}
	if seeds != 2 {
		t.Errorf("random-seed rewrote %d seeds, want systemd's and urandom's", seeds)
	}
}

// snapshot records every file below dir (content and mode), to prove nothing changed.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		s := info.Mode().String()
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += " " + string(b)
		}
		m[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHostileTree aims every path each operation touches outside the guest (absolute links at
// the host canary's path, ".." chains deeper than the guest, directory links) and puts a FIFO
// and a device where files are expected. Each operation completes or fails cleanly; the host
// folder holding the canary is byte-for-byte unchanged.
func TestHostileTree(t *testing.T) {
	host := t.TempDir()
	canary := filepath.Join(host, "canary")
	if err := os.WriteFile(canary, []byte("HWADDR=host\nmac-address=00:11:22:33:44:55\n[ethernet]\nmac-address=00:11:22:33:44:55\n127.0.1.1 host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Files a glob could match if a directory link escaped.
	for _, n := range []string{"ifcfg-eth0", "70-persistent-net.rules", "ssh_host_rsa_key", "x.lease"} {
		if err := os.WriteFile(filepath.Join(host, n), []byte("HWADDR=host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := snapshot(t, host)

	all := append(Resolve(nil), v1alpha1.ScrubLogFiles, v1alpha1.ScrubBashHistory)
	variants := map[string]func(g string){
		"links": func(g string) {
			guesttree.Write(t, g, []guesttree.File{{Path: "/etc/shadow", Content: "root:*:19000::::::\n", Mode: 0o600}}, guesttree.HostileLinks(canary))
		},
		"fifo hostname": func(g string) {
			guesttree.Write(t, g, guesttree.RHEL[:1], nil)
			guesttree.Fifo(t, g, "/etc/hostname")
		},
		"device machine-id": func(g string) {
			guesttree.Device(t, g, "/etc/machine-id")
			guesttree.Fifo(t, g, "/etc/sysconfig/network-scripts/ifcfg-eth0")
		},
	}
	for name, build := range variants {
		for _, op := range all {
			t.Run(name+"/"+string(op), func(t *testing.T) {
				g := t.TempDir()
				build(g)
				r := openRoot(t, g)
				_, err := Run(context.Background(), r, []v1alpha1.ScrubOperation{op}, Params{Hostname: "web-1"})
				if err != nil && !errors.Is(err, inroot.ErrNotRegular) && !errors.Is(err, os.ErrNotExist) &&
					!strings.Contains(err.Error(), "directory") {
					t.Errorf("failed, but not cleanly: %v", err)
				}
				after := snapshot(t, host)
				if !reflect.DeepEqual(before, after) {
					var diff []string
					for k := range after {
						if before[k] != after[k] {
							diff = append(diff, k)
						}
					}
					sort.Strings(diff)
					t.Fatalf("host folder changed: %v", diff)
				}
			})
		}
	}

	// The absolute /etc/hostname -> /etc/shadow link landed on the guest's shadow.
	g := t.TempDir()
	variants["links"](g)
	if _, err := Run(context.Background(), openRoot(t, g), []v1alpha1.ScrubOperation{v1alpha1.ScrubHostname}, Params{Hostname: "web-1"}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, g, "/etc/shadow"); got != "web-1\n" {
		t.Fatalf("guest /etc/shadow = %q: the link was not resolved inside the guest", got)
	}
}

func TestValidate(t *testing.T) {
	if err := Validate([]v1alpha1.ScrubOperation{"format-disk"}, Params{}); err == nil {
		t.Error("unknown operation accepted")
	}
	for _, h := range []string{"", "Web", "-a", "a..b", strings.Repeat("a", 64), "a_b", "web-1/../x"} {
		if err := Validate([]v1alpha1.ScrubOperation{v1alpha1.ScrubHostname}, Params{Hostname: h}); err == nil {
			t.Errorf("host name %q accepted", h)
		}
	}
	if err := Validate([]v1alpha1.ScrubOperation{v1alpha1.ScrubHostname}, Params{Hostname: "web-1.example.com"}); err != nil {
		t.Error(err)
	}
	if got := Resolve([]v1alpha1.ScrubOperation{}); len(got) != 0 {
		t.Errorf("empty list resolved to %v, want no scrubbing", got)
	}
}
