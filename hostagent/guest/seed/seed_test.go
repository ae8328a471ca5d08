package seed

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/internal/hosttest"
)

func TestRender(t *testing.T) {
	f, err := Render(Spec{
		InstanceID: "6f1c2a4e-93b1-4c55-8c1d-0a2b3c4d5e6f",
		Hostname:   "web-1",
		Interfaces: []Interface{{Name: "eth0", MAC: "00:16:3E:AA:BB:CC"}, {Name: "eth1", MAC: "00:16:3e:00:00:01"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"meta-data": "instance-id: \"6f1c2a4e-93b1-4c55-8c1d-0a2b3c4d5e6f\"\nlocal-hostname: \"web-1\"\n",
		"user-data": "#cloud-config\n",
		"network-config": `version: 2
ethernets:
  eth0:
    match:
      macaddress: "00:16:3e:aa:bb:cc"
    set-name: eth0
    dhcp4: true
  eth1:
    match:
      macaddress: "00:16:3e:00:00:01"
    set-name: eth1
    dhcp4: true
`,
	}
	for n, w := range want {
		if string(f[n]) != w {
			t.Errorf("%s =\n%s\nwant\n%s", n, f[n], w)
		}
	}
	for _, bad := range []Spec{
		{InstanceID: "../x", Hostname: "a"},
		{InstanceID: "u", Hostname: "a\nb: c"},
		{InstanceID: "u", Hostname: "a", Interfaces: []Interface{{Name: "eth0", MAC: "nope"}}},
		{InstanceID: "u", Hostname: "a", Interfaces: []Interface{{Name: "eth0", MAC: "00:16:3e:00:00:01"}, {Name: "eth0", MAC: "00:16:3e:00:00:02"}}},
	} {
		if _, err := Render(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
}

func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	p, err := hosttest.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p, args...)
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

// TestBuild builds both image formats with the real tools and reads them back with other
// real tools: this kernel cannot mount vfat or iso9660, and the guest's view is what counts.
func TestBuild(t *testing.T) {
	hosttest.RequireCommands(t, "mkfs.vfat", "mcopy", "mdir", "mtype", "genisoimage", "isoinfo", "blkid")
	userData := "#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 AAAAC3 user@example\n"
	spec := Spec{
		InstanceID: "6f1c2a4e-93b1-4c55-8c1d-0a2b3c4d5e6f",
		Hostname:   "web-1",
		UserData:   []byte(userData),
		Interfaces: []Interface{{Name: "eth0", MAC: "00:16:3e:aa:bb:cc"}},
	}
	want, err := Render(spec)
	if err != nil {
		t.Fatal(err)
	}
	b := Builder{Runner: command.Runner{Env: append(os.Environ(), "PATH=/usr/sbin:/sbin:"+os.Getenv("PATH"))}}
	dir := filepath.Join(t.TempDir(), "seeds", spec.InstanceID)
	for _, format := range []Format{VFAT, ISO9660} {
		t.Run(string(format), func(t *testing.T) {
			spec := spec
			spec.Format = format
			p, err := b.Build(context.Background(), dir, spec)
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(dir, FileName(format)) {
				t.Fatalf("path %s", p)
			}
			blkid := tool(t, "blkid", "-o", "export", p)
			if !strings.Contains(blkid, "LABEL=cidata\n") || !strings.Contains(blkid, "TYPE="+map[Format]string{VFAT: "vfat", ISO9660: "iso9660"}[format]+"\n") {
				t.Fatalf("blkid:\n%s", blkid)
			}
			for name, content := range want {
				var got string
				if format == VFAT {
					got = tool(t, "mtype", "-i", p, "::/"+name)
				} else {
					got = tool(t, "isoinfo", "-J", "-i", p, "-x", "/"+name)
				}
				if got != string(content) {
					t.Errorf("%s in the image =\n%q\nwant\n%q", name, got, content)
				}
			}
			if format == VFAT {
				ls := tool(t, "mdir", "-b", "-i", p, "::/")
				if strings.Count(ls, "\n") != 3 {
					t.Errorf("mdir lists\n%s\nwant exactly the 3 seed files", ls)
				}
			}
			// Rebuilding replaces the image atomically and leaves no staging behind.
			if _, err := b.Build(context.Background(), dir, spec); err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.HasPrefix(e.Name(), ".seed-") {
					t.Errorf("staging %s left behind", e.Name())
				}
			}
		})
	}
}

// FuzzRender: whatever the inputs, an accepted spec yields a two-line meta-data whose values
// cannot break out of their YAML scalars, and one match per interface.
func FuzzRender(f *testing.F) {
	f.Add("6f1c2a4e-93b1", "web-1", "00:16:3e:aa:bb:cc")
	f.Add("x", "a\"b", "00:16:3E:AA:BB:CC")
	f.Fuzz(func(t *testing.T, id, host, mac string) {
		files, err := Render(Spec{InstanceID: id, Hostname: host, Interfaces: []Interface{{Name: "eth0", MAC: mac}}})
		if err != nil {
			return
		}
		md := string(files["meta-data"])
		if strings.Count(md, "\n") != 2 || !strings.HasPrefix(md, "instance-id: \"") {
			t.Fatalf("meta-data %q", md)
		}
		nc := string(files["network-config"])
		if strings.Count(nc, "macaddress:") != 1 || strings.ToLower(nc) != nc {
			t.Fatalf("network-config %q", nc)
		}
	})
}
