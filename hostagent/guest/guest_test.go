package guest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/guest/disk"
	"github.com/xenclone/xenclone/hostagent/guest/inroot"
	"github.com/xenclone/xenclone/hostagent/guest/internal/guesttree"
	"github.com/xenclone/xenclone/hostagent/guest/scrub"
	"github.com/xenclone/xenclone/hostagent/guest/seed"
	"github.com/xenclone/xenclone/hostagent/internal/hosttest"
)

const mib = 1 << 20

// run runs a host tool for the test's own setup (not through the code under test).
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	p, err := hosttest.LookPath(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out, err := exec.Command(p, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func requireHost(t *testing.T, extra ...string) {
	t.Helper()
	hosttest.RequireRoot(t)
	hosttest.RequireCommands(t, append([]string{"losetup", "mount", "umount", "findmnt", "sfdisk", "mkfs.ext4"}, extra...)...)
}

// part is one partition of a test disk: its sfdisk line, and optionally a filesystem with a
// guest tree (in a Btrfs subvolume when subvol is set).
type part struct {
	sfdisk string
	fs     string // "", ext4, xfs, btrfs, lvm
	files  []guesttree.File
	links  map[string]string
	subvol string
	setup  func(t *testing.T, root string)
}

// buildDisk makes a sparse image, partitions it with sfdisk (label "" = a bare filesystem
// from parts[0]) and formats and fills each partition through a loop device at its offset.
func buildDisk(t *testing.T, size int64, label string, parts ...part) string {
	t.Helper()
	img := hosttest.SparseFile(t, size)
	if label != "" {
		var script strings.Builder
		fmt.Fprintf(&script, "label: %s\n", label)
		for _, p := range parts {
			script.WriteString(p.sfdisk + "\n")
		}
		sfdisk, _ := hosttest.LookPath("sfdisk")
		cmd := exec.Command(sfdisk, "-q", "--no-reread", "--no-tell-kernel", img)
		cmd.Stdin = strings.NewReader(script.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v: %s", err, out)
		}
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	tab, err := disk.ReadTable(f, size)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, p := range parts {
		if label == "dos" && strings.Contains(p.sfdisk, ",5") { // the extended container
			i++
			continue
		}
		tp := tab.Partitions[i]
		i++
		if p.fs == "" {
			continue
		}
		loop := run(t, "losetup", "--find", "--show", "--offset", fmt.Sprint(tp.Start), "--sizelimit", fmt.Sprint(tp.Size), img)
		func() {
			defer run(t, "losetup", "--detach", loop)
			switch p.fs {
			case "ext4":
				run(t, "mkfs.ext4", "-q", "-F", loop)
			case "xfs":
				run(t, "mkfs.xfs", "-q", "-f", loop)
			case "btrfs":
				run(t, "mkfs.btrfs", "-q", "-f", loop)
			case "lvm":
				run(t, "pvcreate", "-q", "--config", "devices{filter=[\"a|.*|\"] use_devicesfile=0} global{activation=0}", loop)
				return
			}
			mnt := t.TempDir()
			run(t, "mount", "-t", p.fs, loop, mnt)
			defer run(t, "umount", mnt)
			root := mnt
			if p.subvol != "" {
				run(t, "btrfs", "-q", "subvolume", "create", filepath.Join(mnt, p.subvol))
				root = filepath.Join(mnt, p.subvol)
			}
			guesttree.Write(t, root, p.files, p.links)
			if p.setup != nil {
				p.setup(t, root)
			}
		}()
	}
	return img
}

// inspect mounts the root filesystem of img again (read-only, through the test's own loop
// device) and calls check with its root path, to verify the result file by file.
func inspect(t *testing.T, img string, offset, size int64, fs disk.Content, subvol string, check func(root string)) {
	t.Helper()
	args := []string{"--find", "--show", "--read-only", "--offset", fmt.Sprint(offset)}
	if size > 0 {
		args = append(args, "--sizelimit", fmt.Sprint(size))
	}
	loop := run(t, "losetup", append(args, img)...)
	defer run(t, "losetup", "--detach", loop)
	mnt := t.TempDir()
	opts := "ro"
	if fs == disk.ContentXFS {
		opts += ",nouuid"
	}
	run(t, "mount", "-t", string(fs), "-o", opts, loop, mnt)
	defer run(t, "umount", mnt)
	check(filepath.Join(mnt, subvol))
}

func newPreparer(t *testing.T) *Preparer {
	t.Helper()
	p := &Preparer{
		Runner:   command.Runner{Env: append(os.Environ(), "PATH=/usr/sbin:/sbin:/usr/bin:/bin:"+os.Getenv("PATH"), "LC_ALL=C")},
		StateDir: filepath.Join(t.TempDir(), "state"),
	}
	t.Cleanup(func() {
		// The private bind mount of StateDir/mnt, made on first use.
		mnt := p.mntDir()
		if out, err := exec.Command("findmnt", "--mountpoint", mnt).Output(); err == nil && len(out) > 0 {
			if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v: %s", mnt, err, out)
			}
		}
	})
	return p
}

// noLeaks asserts that no mount below the state dir and no loop device with an offset over
// backing (ours always have one) is left, except the loop devices named in foreign.
func noLeaks(t *testing.T, p *Preparer, backing string, foreign ...string) {
	t.Helper()
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], p.mntDir()+"/") {
			t.Errorf("mount left behind: %s", l)
		}
	}
	out := run(t, "losetup", "-a")
	for _, l := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(l, ":")
		if strings.Contains(l, "("+backing+")") && strings.Contains(l, "offset") && !slices.Contains(foreign, name) {
			t.Errorf("loop device left behind: %s", l)
		}
	}
	if ents, _ := os.ReadDir(p.attachDir()); len(ents) > 0 {
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".json") {
				t.Errorf("attach record left behind: %s", e.Name())
			}
		}
	}
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func absent(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still present (%v)", p, err)
		}
	}
}

func checkRHEL(t *testing.T, root string) {
	t.Helper()
	if got := read(t, root, "/etc/sysconfig/network-scripts/ifcfg-eth0"); strings.Contains(got, "HWADDR") || !strings.Contains(got, "DHCP_HOSTNAME=web-1\n") {
		t.Errorf("ifcfg-eth0 = %q", got)
	}
	if got := read(t, root, "/etc/NetworkManager/system-connections/eth0.nmconnection"); strings.Contains(got, "mac-address") {
		t.Errorf("nmconnection = %q", got)
	}
	absent(t, root, "/etc/udev/rules.d/70-persistent-net.rules", "/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key.pub",
		"/var/lib/dhclient/dhclient--eth0.lease", "/var/lib/NetworkManager/internal-1234-eth0.lease")
	if got := read(t, root, "/etc/machine-id"); got != "" {
		t.Errorf("machine-id = %q", got)
	}
	if got := read(t, root, "/etc/hostname"); got != "web-1\n" {
		t.Errorf("hostname = %q", got)
	}
	if got := read(t, root, "/etc/sysconfig/network"); got != "NETWORKING=yes\nHOSTNAME=web-1\n" {
		t.Errorf("sysconfig/network = %q", got)
	}
	if got := read(t, root, "/var/lib/systemd/random-seed"); got == string(make([]byte, 512)) {
		t.Error("random seed still the template's")
	}
	if got := read(t, root, "/etc/ssh/sshd_config"); got != "PermitRootLogin no\n" {
		t.Errorf("sshd_config = %q", got)
	}
}

func checkDebian(t *testing.T, root string) {
	t.Helper()
	if got := read(t, root, "/etc/hosts"); !strings.Contains(got, "127.0.1.1\tweb-1\n") || strings.Contains(got, "template") {
		t.Errorf("/etc/hosts = %q", got)
	}
	if got := read(t, root, "/etc/hostname"); got != "web-1\n" {
		t.Errorf("hostname = %q", got)
	}
	if got := read(t, root, "/etc/machine-id"); got != "" {
		t.Errorf("machine-id = %q", got)
	}
	if l, _ := os.Readlink(filepath.Join(root, "/var/lib/dbus/machine-id")); l != "/etc/machine-id" {
		t.Errorf("dbus machine-id link = %q", l)
	}
	absent(t, root, "/etc/ssh/ssh_host_ecdsa_key", "/var/lib/dhcp/dhclient.eth0.leases")
	if got := read(t, root, "/var/log/syslog"); got != "x\n" {
		t.Errorf("logfiles is opt-in, but syslog = %q", got)
	}
}

var bootFiles = []guesttree.File{{Path: "/vmlinuz-6.1", Content: "kernel", Mode: 0o644}, {Path: "/grub/grub.cfg", Content: "menuentry", Mode: 0o644}}

func TestPrepareRealDisks(t *testing.T) {
	requireHost(t, "mkfs.xfs", "mkfs.btrfs", "btrfs")
	ops := scrub.Resolve(nil)
	cases := []struct {
		name     string
		size     int64
		label    string
		parts    []part
		hint     PrepareSpec
		wantPart int
		wantSub  string
		fs       disk.Content
		check    func(*testing.T, string)
		block    bool // hand Prepare a block device (a loop over the image) instead of the file
	}{
		{"gpt ext4 root at 2 behind an ext4 /boot, detected", 200 * mib, "gpt",
			[]part{{sfdisk: ",32M,L", fs: "ext4", files: bootFiles}, {sfdisk: ",,L", fs: "ext4", files: guesttree.RHEL}},
			PrepareSpec{}, 2, "", disk.ContentExt4, checkRHEL, false},
		{"mbr xfs root at 2, hinted", 400 * mib, "dos",
			[]part{{sfdisk: ",16M,83,*", fs: "ext4", files: bootFiles}, {sfdisk: ",,83", fs: "xfs", files: guesttree.Debian, links: guesttree.DebianLinks}},
			PrepareSpec{RootPartition: 2, RootFilesystem: "xfs"}, 2, "", disk.ContentXFS, checkDebian, false},
		{"bare ext4 on a block device", 64 * mib, "",
			[]part{{fs: "ext4", files: guesttree.RHEL}},
			PrepareSpec{}, 0, "", disk.ContentExt4, checkRHEL, true},
		{"gpt btrfs root in subvolume @, on a block device", 300 * mib, "gpt",
			[]part{{sfdisk: ",1M,21686148-6449-6E6F-744E-656564454649"}, {sfdisk: ",,L", fs: "btrfs", subvol: "@", files: guesttree.Debian, links: guesttree.DebianLinks}},
			PrepareSpec{RootFilesystem: "btrfs"}, 2, "@", disk.ContentBtrfs, checkDebian, true},
		{"gpt btrfs with @ as the default subvolume (openSUSE style)", 300 * mib, "gpt",
			[]part{{sfdisk: ",,L", fs: "btrfs", subvol: "@", files: guesttree.RHEL,
				setup: func(t *testing.T, root string) { run(t, "btrfs", "subvolume", "set-default", root) }}},
			PrepareSpec{}, 1, "", disk.ContentBtrfs, checkRHEL, false},
		{"mbr ext4 root in a logical partition", 120 * mib, "dos",
			[]part{{sfdisk: ",16M,83", fs: "ext4", files: bootFiles}, {sfdisk: ",,5"}, {sfdisk: ",,83", fs: "ext4", files: guesttree.RHEL}},
			PrepareSpec{RootPartition: 5}, 5, "", disk.ContentExt4, checkRHEL, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := buildDisk(t, tc.size, tc.label, tc.parts...)
			device, backing := img, img
			if tc.block {
				device = hosttest.LoopDevice(t, img)
				backing = device
			}
			p := newPreparer(t)
			spec := tc.hint
			spec.ID, spec.Hostname, spec.Operations = "6f1c2a4e-93b1-4c55-8c1d-0a2b3c4d5e6f", "web-1", ops
			rep, err := p.Prepare(context.Background(), device, spec)
			noLeaks(t, p, backing)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Partition != tc.wantPart || rep.Filesystem != tc.fs || rep.Subvolume != tc.wantSub {
				t.Fatalf("report %+v, want partition %d %s subvolume %q", rep, tc.wantPart, tc.fs, tc.wantSub)
			}
			changes := 0
			for _, r := range rep.Results {
				changes += len(r.Changes)
			}
			t.Logf("%s: %s partition %d at %d (+%d), %d changes in %v", tc.name, rep.Scheme, rep.Partition, rep.Offset, rep.Size, changes, rep.Took)
			sizelimit := rep.Size
			inspect(t, img, rep.Offset, sizelimit, rep.Filesystem, rep.Subvolume, func(root string) { tc.check(t, root) })

			// Again: converges (only the random seed is rewritten) and leaves nothing behind.
			rep, err = p.Prepare(context.Background(), device, spec)
			noLeaks(t, p, backing)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rep.Results {
				if r.Operation != v1alpha1.ScrubRandomSeed && len(r.Changes) > 0 {
					t.Errorf("second run: %s changed %v", r.Operation, r.Changes)
				}
			}
		})
	}
}

// TestPrepareBareFilesystemOverStaleTable: older mkfs tools over a whole, previously
// partitioned disk keep the old MBR in sector 0 (ext4 never uses its first 1 KiB; current
// mke2fs wipes it, so the test puts it back). No partition of that table holds a filesystem,
// so the bare filesystem at byte 0 is the root.
func TestPrepareBareFilesystemOverStaleTable(t *testing.T) {
	requireHost(t)
	img := buildDisk(t, 64*mib, "dos", part{sfdisk: ",32M,83"}, part{sfdisk: ",,8e"})
	mbr := make([]byte, 512)
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.ext4", "-q", "-F", img)
	if _, err := f.WriteAt(mbr, 0); err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	loop := hosttest.LoopDevice(t, img)
	run(t, "mount", "-t", "ext4", loop, mnt)
	guesttree.Write(t, mnt, guesttree.RHEL, nil)
	run(t, "umount", mnt)
	if b, _ := os.ReadFile(img); b[510] != 0x55 || b[511] != 0xaa {
		t.Fatal("mkfs removed the stale MBR; the test proves nothing")
	}
	p := newPreparer(t)
	rep, err := p.Prepare(context.Background(), img, PrepareSpec{ID: "stale", Hostname: "web-1", Operations: scrub.Resolve(nil)})
	noLeaks(t, p, img)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Offset != 0 || rep.Size != 64*mib || rep.Filesystem != disk.ContentExt4 {
		t.Fatalf("report %+v, want the whole disk", rep)
	}
	inspect(t, img, 0, 0, disk.ContentExt4, "", func(root string) { checkRHEL(t, root) })
}

func TestPrepareLVMRootUnsupported(t *testing.T) {
	requireHost(t, "pvcreate")
	cases := []struct {
		name  string
		label string
		parts []part
		hint  PrepareSpec
	}{
		{"mbr /boot + LVM PV (RHEL default layout), detected", "dos",
			[]part{{sfdisk: ",16M,83", fs: "ext4", files: bootFiles}, {sfdisk: ",,8e", fs: "lvm"}}, PrepareSpec{}},
		{"gpt LVM partition, hinted", "gpt",
			[]part{{sfdisk: ",1M,21686148-6449-6E6F-744E-656564454649"}, {sfdisk: ",,E6D6D379-F507-44C2-A23C-238F2A3DF928", fs: "lvm"}},
			PrepareSpec{RootPartition: 2}},
		{"mbr Linux-typed partition holding a PV label", "dos",
			[]part{{sfdisk: ",,83", fs: "lvm"}}, PrepareSpec{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := buildDisk(t, 64*mib, tc.label, tc.parts...)
			p := newPreparer(t)
			spec := tc.hint
			spec.ID = "lvm-clone"
			_, err := p.Prepare(context.Background(), img, spec)
			noLeaks(t, p, img)
			if !errors.Is(err, ErrLVMUnsupported) {
				t.Fatalf("err = %v, want ErrLVMUnsupported", err)
			}
			t.Logf("message: %v", err)
		})
	}
}

// TestPrepareFailureMidScrubDetaches injects a real failure in the middle of the operations
// (a FIFO as /etc/hostname, after machine-id ran) and a cancelled context: both fail, and
// neither leaves a mount or a loop device.
func TestPrepareFailureMidScrubDetaches(t *testing.T) {
	requireHost(t)
	img := buildDisk(t, 96*mib, "gpt", part{sfdisk: ",16M,L"}, part{sfdisk: ",,L", fs: "ext4", files: guesttree.RHEL[1:],
		setup: func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "etc/hostname"))
			guesttree.Fifo(t, root, "/etc/hostname")
		}})
	p := newPreparer(t)
	spec := PrepareSpec{ID: "failing-clone", Hostname: "web-1",
		Operations: []v1alpha1.ScrubOperation{v1alpha1.ScrubMachineID, v1alpha1.ScrubHostname, v1alpha1.ScrubSSHHostKeys}}
	rep, err := p.Prepare(context.Background(), img, spec)
	noLeaks(t, p, img)
	if !errors.Is(err, inroot.ErrNotRegular) {
		t.Fatalf("err = %v, want ErrNotRegular for the FIFO", err)
	}
	if len(rep.Results) != 2 || len(rep.Results[0].Changes) != 1 {
		t.Fatalf("partial report %+v: want machine-id done, hostname failed, ssh-hostkeys not run", rep.Results)
	}
	inspect(t, img, rep.Offset, rep.Size, rep.Filesystem, "", func(root string) {
		if read(t, root, "/etc/machine-id") != "" {
			t.Error("machine-id ran before the failure but is not truncated")
		}
		if _, err := os.Stat(filepath.Join(root, "/etc/ssh/ssh_host_rsa_key")); err != nil {
			t.Error("ssh-hostkeys ran after the failure")
		}
	})

	// Cancelled right after the guest is mounted (the agent is shutting down): the scrub
	// stops, and unmount and detach still run on a context of their own.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p.Runner.Observe = func(tool string, _ time.Duration, _ error) {
		if tool == "mount" {
			cancel()
		}
	}
	spec.Operations = []v1alpha1.ScrubOperation{v1alpha1.ScrubMachineID}
	_, err = p.Prepare(ctx, img, spec)
	noLeaks(t, p, img)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestPrepareHostileTreeOnRealMount runs every operation over a mounted guest whose links aim
// at a host canary (absolute and ".." chains, directory links) and with a device node and a
// FIFO where files are expected. Whatever fails, the canary folder is unchanged, the guest's
// own /etc/shadow took the hostname write, and nothing stays attached.
func TestPrepareHostileTreeOnRealMount(t *testing.T) {
	requireHost(t)
	host := t.TempDir()
	canary := filepath.Join(host, "canary")
	content := "HWADDR=00:11:22:33:44:55\n127.0.1.1 host\n"
	if err := os.WriteFile(canary, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	img := buildDisk(t, 96*mib, "dos", part{sfdisk: ",16M,83"}, part{sfdisk: ",,83", fs: "ext4",
		files: []guesttree.File{{Path: "/etc/shadow", Content: "root:*:19000::::::\n", Mode: 0o600}},
		links: guesttree.HostileLinks(canary),
		setup: func(t *testing.T, root string) {
			guesttree.Device(t, root, "/var/lib/urandom/random-seed")
			guesttree.Fifo(t, root, "/etc/HOSTNAME")
		}})
	p := newPreparer(t)
	all := append(scrub.Resolve(nil), v1alpha1.ScrubLogFiles, v1alpha1.ScrubBashHistory)
	for _, op := range all {
		_, err := p.Prepare(context.Background(), img, PrepareSpec{ID: "hostile", Hostname: "web-1", Operations: []v1alpha1.ScrubOperation{op}})
		noLeaks(t, p, img)
		t.Logf("%s: %v", op, err)
		// The device node at Debian's seed path (mounted nodev) and the FIFO at /etc/HOSTNAME
		// are refused as what they are.
		if (op == v1alpha1.ScrubRandomSeed || op == v1alpha1.ScrubHostname) && !errors.Is(err, inroot.ErrNotRegular) {
			t.Errorf("%s: err = %v, want ErrNotRegular", op, err)
		}
		if b, _ := os.ReadFile(canary); string(b) != content {
			t.Fatalf("%s changed the host canary: %q", op, b)
		}
		if ents, _ := os.ReadDir(host); len(ents) != 1 {
			t.Fatalf("%s changed the canary's folder: %v", op, ents)
		}
	}
	inspect(t, img, 17*mib, 0, disk.ContentExt4, "", func(root string) {
		if got := read(t, root, "/etc/shadow"); got != "web-1\n" {
			t.Errorf("guest /etc/shadow = %q: /etc/hostname -> /etc/shadow did not resolve inside the guest", got)
		}
	})
}

func TestPrepareRefusesBusyDevice(t *testing.T) {
	requireHost(t)
	img := buildDisk(t, 64*mib, "", part{fs: "ext4", files: guesttree.RHEL})
	dev := hosttest.LoopDevice(t, img)
	mnt := t.TempDir()
	run(t, "mount", "-t", "ext4", "-o", "ro", dev, mnt)
	defer run(t, "umount", mnt)
	p := newPreparer(t)
	_, err := p.Prepare(context.Background(), dev, PrepareSpec{ID: "busy", Operations: []v1alpha1.ScrubOperation{v1alpha1.ScrubMachineID}})
	noLeaks(t, p, dev)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy for a mounted device", err)
	}
}

// TestSweep leaves an attachment behind as a crashed agent would (mounted, loop attached,
// record written) next to a foreign loop device over the same image and a foreign mount;
// the sweep removes exactly ours.
func TestSweep(t *testing.T) {
	requireHost(t)
	img := buildDisk(t, 96*mib, "gpt", part{sfdisk: ",16M,L", fs: "ext4", files: bootFiles}, part{sfdisk: ",,L", fs: "ext4", files: guesttree.RHEL})
	p := newPreparer(t)
	ctx := context.Background()
	f, _ := os.Open(img)
	l, err := disk.Inspect(f, 96*mib)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	cands, _ := l.Candidates(disk.Hint{Partition: 2})
	if err := p.ensurePrivateMntDir(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := p.attach(ctx, img, cands[0], "crashed-clone")
	if err != nil {
		t.Fatal(err)
	}
	// Not ours: the same image attached whole (no offset), and partition 1 mounted elsewhere.
	foreign := hosttest.LoopDevice(t, img)
	part1 := run(t, "losetup", "--find", "--show", "--offset", fmt.Sprint(1*mib), "--sizelimit", fmt.Sprint(16*mib), img)
	defer run(t, "losetup", "--detach", part1)
	mnt := t.TempDir()
	run(t, "mount", "-t", "ext4", "-o", "ro", part1, mnt)
	defer run(t, "umount", mnt)

	if err := (&Preparer{Runner: p.Runner, StateDir: p.StateDir}).Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	noLeaks(t, p, img, part1)
	loops := run(t, "losetup", "-a")
	if strings.Contains(loops, rec.Loop+":") {
		t.Errorf("our loop %s survived the sweep:\n%s", rec.Loop, loops)
	}
	for _, d := range []string{foreign, part1} {
		if !strings.Contains(loops, d+":") {
			t.Errorf("the sweep detached foreign %s", d)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, "vmlinuz-6.1")); err != nil {
		t.Errorf("the sweep touched a foreign mount: %v", err)
	}
	if _, err := os.Stat(rec.MountPoint); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point %s left", rec.MountPoint)
	}
	// A sweep with nothing to do is fine, and Prepare works afterwards.
	if err := p.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Prepare(ctx, img, PrepareSpec{ID: "crashed-clone", Operations: []v1alpha1.ScrubOperation{v1alpha1.ScrubMachineID}}); err != nil {
		t.Fatal(err)
	}
	noLeaks(t, p, img, part1)
	if err := p.Forget("crashed-clone"); err != nil {
		t.Fatal(err)
	}
}

func TestBuildSeed(t *testing.T) {
	hosttest.RequireCommands(t, "mkfs.vfat", "mcopy", "mtype", "blkid")
	p := newPreparer(t)
	path, err := p.BuildSeed(context.Background(), "", seed.Spec{InstanceID: "6f1c2a4e", Hostname: "web-1",
		Interfaces: []seed.Interface{{Name: "eth0", MAC: "00:16:3e:aa:bb:cc"}}})
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(p.StateDir, "seed", "6f1c2a4e", "cidata.img") {
		t.Fatalf("path %s", path)
	}
	if out := run(t, "blkid", "-s", "LABEL", "-o", "value", path); out != "cidata" {
		t.Fatalf("label %q", out)
	}
	if err := p.Forget("6f1c2a4e"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("seed left after Forget")
	}
}
