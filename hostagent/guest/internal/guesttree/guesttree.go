// Package guesttree writes realistic guest filesystem trees for the scrub tests: a RHEL-style
// and a Debian-style guest with the machine-specific files each really has, and hostile
// variants whose links and special files aim outside the guest.
package guesttree

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// File is a path in the guest and its content.
type File struct {
	Path    string
	Content string
	Mode    os.FileMode
}

// RHEL is a RHEL/Rocky 8-style guest.
var RHEL = []File{
	{"/etc/os-release", "ID=\"rocky\"\nVERSION_ID=\"8.9\"\n", 0o644},
	{"/etc/hostname", "template.example.com\n", 0o644},
	{"/etc/hosts", "127.0.0.1   localhost localhost.localdomain\n::1         localhost localhost.localdomain\n", 0o644},
	{"/etc/sysconfig/network", "NETWORKING=yes\nHOSTNAME=template.example.com\n", 0o644},
	{"/etc/sysconfig/network-scripts/ifcfg-eth0", "DEVICE=eth0\nHWADDR=52:54:00:12:34:56\nBOOTPROTO=dhcp\nDHCP_HOSTNAME=template\nONBOOT=yes\n", 0o644},
	{"/etc/sysconfig/network-scripts/ifcfg-lo", "DEVICE=lo\nIPADDR=127.0.0.1\n", 0o644},
	{"/etc/NetworkManager/system-connections/eth0.nmconnection", "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n\n[ethernet]\nmac-address=52:54:00:12:34:56\ncloned-mac-address=52:54:00:12:34:57\n\n[ipv4]\nmethod=auto\n", 0o600},
	{"/etc/udev/rules.d/70-persistent-net.rules", "SUBSYSTEM==\"net\", ATTR{address}==\"52:54:00:12:34:56\", NAME=\"eth0\"\n", 0o644},
	{"/etc/machine-id", "0123456789abcdef0123456789abcdef\n", 0o444},
	{"/etc/ssh/ssh_host_rsa_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600},
	{"/etc/ssh/ssh_host_rsa_key.pub", "ssh-rsa AAAA\n", 0o644},
	{"/etc/ssh/ssh_host_ed25519_key", "-----BEGIN OPENSSH PRIVATE KEY-----\n", 0o600},
	{"/etc/ssh/ssh_host_ed25519_key.pub", "ssh-ed25519 AAAA\n", 0o644},
	{"/etc/ssh/sshd_config", "PermitRootLogin no\n", 0o600},
	{"/var/lib/dhclient/dhclient--eth0.lease", "lease { fixed-address 10.0.0.5; }\n", 0o644},
	{"/var/lib/NetworkManager/internal-1234-eth0.lease", "ADDRESS=10.0.0.5\n", 0o644},
	{"/var/lib/NetworkManager/NetworkManager.state", "[main]\nNetworkingEnabled=true\n", 0o644},
	{"/var/lib/systemd/random-seed", string(make([]byte, 512)), 0o600},
	{"/var/log/messages", "boot\n", 0o600},
	{"/var/log/audit/audit.log", "type=DAEMON_START\n", 0o600},
	{"/root/.bash_history", "ls\n", 0o600},
	{"/root/anaconda-ks.cfg", "#version=RHEL8\n", 0o600},
}

// Debian is a Debian 12-style guest; /var/lib/dbus/machine-id is an absolute link to
// /etc/machine-id there, as on real Debian.
var Debian = []File{
	{"/etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n", 0o644},
	{"/etc/hostname", "template\n", 0o644},
	{"/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\ttemplate.example.com\ttemplate\n\n# The following lines are desirable for IPv6 capable hosts\n::1     localhost ip6-localhost ip6-loopback\n", 0o644},
	{"/etc/network/interfaces", "auto eth0\niface eth0 inet dhcp\n", 0o644},
	{"/etc/machine-id", "fedcba9876543210fedcba9876543210\n", 0o444},
	{"/etc/ssh/ssh_host_ecdsa_key", "k\n", 0o600},
	{"/etc/ssh/ssh_host_ecdsa_key.pub", "p\n", 0o644},
	{"/var/lib/dhcp/dhclient.eth0.leases", "lease {}\n", 0o644},
	{"/var/lib/systemd/random-seed", string(make([]byte, 512)), 0o600},
	{"/var/lib/urandom/random-seed", string(make([]byte, 512)), 0o600},
	{"/var/log/syslog", "x\n", 0o640},
	{"/var/log/apt/history.log", "x\n", 0o644},
	{"/var/log/journal/fedcba9876543210fedcba9876543210/system.journal", "LPKSHHRH", 0o640},
	{"/home/debian/.bash_history", "sudo -i\n", 0o600},
}

// DebianLinks are Debian's real absolute symlinks.
var DebianLinks = map[string]string{
	"/var/lib/dbus/machine-id": "/etc/machine-id",
	"/etc/localtime":           "/usr/share/zoneinfo/Etc/UTC",
}

// Write lays files (and symlinks: path -> target) out under root.
func Write(t testing.TB, root string, files []File, links map[string]string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.Content), f.Mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range links {
		p := filepath.Join(root, link)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
}

// HostileLinks returns links that aim every path the default scrub touches at the host:
// absolute links at the canary's host path and at the guest's own /etc/shadow, relative
// ".." chains deeper than the guest, and a directory link for /etc/sysconfig.
func HostileLinks(canary string) map[string]string {
	up := "../../../../../../../../../.."
	return map[string]string{
		"/etc/hostname":            "/etc/shadow",
		"/etc/machine-id":          canary,
		"/var/lib/dbus/machine-id": up + canary,
		"/etc/hosts":               up + canary,
		"/etc/sysconfig":           up + filepath.Dir(canary),
		"/etc/udev/rules.d/70-persistent-net.rules": canary,
		"/etc/ssh/ssh_host_rsa_key":                 canary,
		"/etc/ssh/ssh_host_dsa_key":                 up + canary,
		"/var/lib/dhclient":                         filepath.Dir(canary),
		"/var/lib/dhcp":                             up + filepath.Dir(canary),
		"/var/lib/systemd/random-seed":              canary,
		"/etc/NetworkManager/system-connections":    filepath.Dir(canary),
		"/root/.bash_history":                       canary,
	}
}

// Fifo makes a FIFO at a guest path.
func Fifo(t testing.TB, root, p string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(full, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Device makes a character device node (1:3, like /dev/null) at a guest path.
func Device(t testing.TB, root, p string) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(full, syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
		t.Fatal(err)
	}
}
