//go:build lab

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Field lists of hostagent/lvm (report.go): the captures decode with the package's own parser.
const (
	vgFields = "vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count," +
		"vg_mda_size,vg_mda_free,lv_count,vg_tags"
	lvFields = "lv_name,vg_name,lv_uuid,lv_attr,lv_size,origin,origin_size,pool_lv," +
		"data_percent,snap_percent,metadata_percent,lv_tags,lv_time,lv_active"
	lvs        = "lvs --reportformat json --units b --nosuffix -o " + lvFields + " vg0"
	vgs        = "vgs --reportformat json --units b --nosuffix -o " + vgFields + " vg0"
	fullreport = `lvm fullreport --config 'report{time_format="%s"}' --reportformat json --units b --nosuffix ` +
		"--configreport vg -o " + vgFields + " --configreport lv -o " + lvFields +
		" --configreport pv -o, --configreport pvseg -o, --configreport seg -o, vg0"
	owner = "--addtag xenclone.managed --addtag xenclone.owner-uid=0b9e7d0c-3f4a-4f7e-9a51-2c8d6e1f0a11 --addtag xenclone.clone=lab/fx-a"
)

// domainConfig is a PV domU booting the lab guest from disk, like the agent renders them.
func domainConfig(name, disk string, memory int) string {
	return `name = "` + name + `"
type = "pv"
memory = ` + strconv.Itoa(memory) + `
vcpus = 1
kernel = "/boot/vmlinuz-domu"
ramdisk = "/var/lib/xclab/domu-initrd.gz"
cmdline = "console=hvc0 rdinit=/init quiet"
disk = [ "format=raw,vdev=xvda,access=rw,target=` + disk + `" ]
vif = [ "mac=00:16:3e:1a:b2:c3,bridge=xenbr0" ]
on_poweroff = "destroy"
on_reboot = "destroy"
on_crash = "destroy"
`
}

// TestCaptureFixtures boots the lab and writes real lvm and xl outputs into
// $XENCLONE_LAB_FIXTURES/{lvm,xen}/testdata/real-lab/ (lab.sh fixtures points it at hostagent/).
func TestCaptureFixtures(t *testing.T) {
	out := os.Getenv("XENCLONE_LAB_FIXTURES")
	if out == "" {
		t.Skip("XENCLONE_LAB_FIXTURES is not set: run hack/lab/lab.sh fixtures")
	}
	lvmDir := filepath.Join(out, "lvm", "testdata", "real-lab")
	xenDir := filepath.Join(out, "xen", "testdata", "real-lab")
	for _, d := range []string{lvmDir, xenDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	share := t.TempDir()
	copyFile(t, filepath.Join(labImages(t), "guest.img"), filepath.Join(share, "guest.img"))
	if err := os.WriteFile(filepath.Join(share, "fx1.cfg"), []byte(domainConfig("lab-fx1", "/dev/vg0/clone-a", 128)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(share, "fx-nomem.cfg"), []byte(domainConfig("lab-fx-nomem", "/dev/vg0/clone-b", 1<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	lab := Boot(t, BootOptions{Share: share})
	save := func(dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(strings.TrimRight(content, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("captured %s", filepath.Join(filepath.Base(filepath.Dir(filepath.Dir(dir))), "testdata/real-lab", name))
	}
	// xlCapture runs an xl command expected to fail and keeps its stderr and exit status.
	xlCapture := func(name, cmd string) {
		t.Helper()
		o := lab.Sh(t, cmd+" >/tmp/xl.out 2>/tmp/xl.err; echo \"exit status $?\" >/tmp/xl.rc; cat /tmp/xl.err")
		rc := lab.Sh(t, "cat /tmp/xl.rc")
		save(xenDir, name+".stderr.txt", o)
		save(xenDir, name+".rc.txt", rc)
	}

	// The 3 MiB written into clone-a lie past the guest's partition (1-61 MiB of 64): the
	// snapshot's COW area fills without breaking the guest that boots from it below.
	lab.Sh(t, `set -e
D=/dev/disk/by-id/virtio-labdata
pvcreate -y -ff $D >/dev/null
vgcreate vg0 $D >/dev/null
lvcreate -y -L 64M -n tmpl vg0 >/dev/null
dd if=/lab/guest.img of=/dev/vg0/tmpl bs=1M oflag=direct status=none
lvchange -pr vg0/tmpl >/dev/null
lvcreate -y -s -L 16M -n clone-a `+owner+` vg0/tmpl >/dev/null
dd if=/dev/urandom of=/dev/vg0/clone-a bs=1M count=3 seek=61 oflag=direct status=none`)
	// In use: a reader holds the snapshot open while lvs looks.
	save(lvmDir, "lvs-classic-snapshot-in-use.json", lab.Sh(t, "sleep 20 </dev/vg0/clone-a & sleep 1; "+lvs+"; kill %1"))
	save(lvmDir, "vgs.json", lab.Sh(t, vgs))

	// Invalid: a 4 MiB COW that takes 8 MiB of writes.
	lab.Sh(t, "lvcreate -y -s -L 4M -n full vg0/tmpl >/dev/null; dd if=/dev/urandom of=/dev/vg0/full bs=1M count=8 oflag=direct status=none || true; sync")
	save(lvmDir, "lvs-invalid-snapshot.json", lab.Sh(t, lvs+" 2>/dev/null"))
	lab.Sh(t, "lvremove -y vg0/full >/dev/null")

	// Thin: a pool, a read-only thin template, an open thin snapshot, an inactive one (k flag),
	// and a thin snapshot of the thick template (external origin).
	lab.Sh(t, `set -e
lvcreate -y -L 128M -T vg0/pool >/dev/null
lvcreate -y -V 64M -T vg0/pool -n thintmpl >/dev/null
dd if=/lab/guest.img of=/dev/vg0/thintmpl bs=1M oflag=direct status=none
lvchange -pr vg0/thintmpl >/dev/null
lvcreate -y -s -n thin-a `+owner+` vg0/thintmpl >/dev/null
lvchange -ay -K vg0/thin-a >/dev/null
lvcreate -y -s -n thin-b vg0/thintmpl >/dev/null`)
	save(lvmDir, "lvs-thin-pool.json", lab.Sh(t, "sleep 20 </dev/vg0/thin-a & sleep 1; "+lvs+"; kill %1"))
	save(lvmDir, "lvs-thin-snapshot-inactive.json", lab.Sh(t, lvs+" -S lv_name=thin-b"))
	// A thick LV that already is the origin of (active) classic snapshots cannot become an
	// external origin while active: keep lvm's answer. A fresh thick LV is deactivated first.
	o, err := lab.Try("lvcreate -y -s --thinpool vg0/pool -n ext-a vg0/tmpl 2>&1")
	t.Logf("external origin of a snapshot origin: %v\n%s", err, o)
	save(lvmDir, "lvcreate-external-origin-of-snapshot-origin.txt", fmt.Sprintf("%s\n%v", o, err))
	lab.Sh(t, `set -e
lvcreate -y -L 64M -n tmpl2 vg0 >/dev/null
dd if=/lab/guest.img of=/dev/vg0/tmpl2 bs=1M oflag=direct status=none
lvchange -pr vg0/tmpl2 >/dev/null
lvchange -an vg0/tmpl2 >/dev/null
lvcreate -y -s --thinpool vg0/pool -n ext-a vg0/tmpl2 >/dev/null
lvchange -ay vg0/tmpl2 >/dev/null`)
	save(lvmDir, "lvs-external-origin.json", lab.Sh(t, lvs+" -S 'lv_name=tmpl2||lv_name=ext-a'"))
	save(lvmDir, "fullreport.json", lab.Sh(t, fullreport))
	save(lvmDir, "versions.txt", lab.Sh(t, "lvm version; uname -r"))

	// xl: a running PV domU from the classic snapshot.
	lab.Sh(t, "lvcreate -y -s -L 16M -n clone-b vg0/tmpl >/dev/null")
	out1, err := lab.Try("xl create /lab/fx1.cfg 2>&1")
	t.Logf("xl create: %v\n%s", err, out1)
	lab.Sh(t, "for i in $(seq 60); do xl list lab-fx1 >/dev/null 2>&1 && break; sleep 1; done; sleep 5")
	save(xenDir, "list.txt", lab.Sh(t, "xl list"))
	save(xenDir, "list-l.json", lab.Sh(t, "xl list -l"))
	save(xenDir, "list-l-domain.json", lab.Sh(t, "xl list -l lab-fx1"))
	save(xenDir, "info.txt", lab.Sh(t, "xl info"))
	// A warm standby (the agent's spec.pause): ballooned down with xl mem-set, then paused.
	// The guest's balloon driver gives the memory back at its own pace: wait for xl list.
	// (64 MiB killed this 128 MiB guest: its kernel ran out of memory and crashed.)
	lab.Sh(t, "xl mem-set lab-fx1 96m; for i in $(seq 60); do [ $(xl list lab-fx1 | awk 'NR==2 {print $3}') -le 99 ] && break; sleep 0.2; done")
	save(xenDir, "list-ballooned.txt", lab.Sh(t, "xl list"))
	lab.Sh(t, "xl pause lab-fx1")
	save(xenDir, "list-paused.txt", lab.Sh(t, "xl list"))
	// dom0 writes into the guest's data/ tree; -R keeps the value as given (no escapes).
	save(xenDir, "xenstore-data.txt", lab.Sh(t, `id=$(xl domid lab-fx1)
xenstore-write -R /local/domain/$id/data/xenclone/token 'a\nb c' /local/domain/$id/data/xenclone/ready v1
echo "token=[$(xenstore-read -R /local/domain/$id/data/xenclone/token)]"
echo "ready=[$(xenstore-read /local/domain/$id/data/xenclone/ready)]"
xenstore-ls -p /local/domain/$id/data`))
	lab.Sh(t, "xl unpause lab-fx1; xl mem-set lab-fx1 128m; sleep 2")
	save(xenDir, "list-restored.txt", lab.Sh(t, "xl list"))
	xlCapture("mem-set-above-maxmem", "xl mem-set lab-fx1 4096m")
	xlCapture("pause-unknown-domain", "xl pause no-such-domain")
	xlCapture("create-duplicate-name", "xl create /lab/fx1.cfg")
	xlCapture("create-not-enough-memory", "xl create /lab/fx-nomem.cfg")
	xlCapture("destroy-unknown-domain", "xl destroy no-such-domain")
	xlCapture("shutdown-unknown-domain", "xl shutdown no-such-domain")
	xlCapture("list-unknown-domain", "xl list no-such-domain")
	lab.Sh(t, "xl shutdown -w lab-fx1 || xl destroy lab-fx1")
	save(xenDir, "list-after-shutdown.txt", lab.Sh(t, "xl list"))
	save(xenDir, "versions.txt", lab.Sh(t, "xl info | grep -E '^(xen_version|xen_extra|xen_caps)'; xl -v 2>&1 | head -n1 || true"))
	save(xenDir, "domu-console.log", lab.Sh(t, "cat /var/log/xen/console/guest-lab-fx1.log"))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
