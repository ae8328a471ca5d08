package xen

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/xenclone/xenclone/hostagent/xen/xlcfg"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func baseConfig() DomainConfig {
	return DomainConfig{
		Name:       "vm-team-a-web-01",
		UUID:       "3f2504e0-4f89-41d3-9a0c-0305e82c3301",
		Type:       GuestPV,
		MemoryMiB:  1024,
		VCPUs:      2,
		Bootloader: "pygrub",
		Disks:      []Disk{{Target: "/dev/vg0/xc-3f2504e0", Vdev: "xvda"}},
		VIFs:       []VIF{{MAC: "00:16:3e:1a:2b:3c", Bridge: "xenbr0"}},
	}
}

func goldenCases() map[string]DomainConfig {
	cases := map[string]DomainConfig{}

	cases["pv-pygrub"] = baseConfig()

	c := baseConfig()
	c.Bootloader = ""
	c.Kernel, c.Ramdisk = "/boot/vmlinuz-6.1.0-56-amd64", "/var/lib/xenclone/initrd.img"
	c.Cmdline = "root=/dev/xvda1 ro console=hvc0 quiet"
	c.MaxMemoryMiB, c.MaxVCPUs = 2048, 4
	cases["pv-kernel"] = c

	c = baseConfig()
	c.Type = GuestPVH
	c.OnPoweroff, c.OnReboot, c.OnCrash = ActionDestroy, ActionRestart, ActionPreserve
	cases["pvh"] = c

	c = baseConfig()
	c.Type, c.Bootloader = GuestHVM, ""
	cases["hvm"] = c

	c = baseConfig()
	c.Type, c.Bootloader, c.VNC = GuestHVM, "", true
	cases["hvm-vnc"] = c

	c = baseConfig()
	c.VIFs = []VIF{{MAC: "00:16:3e:1a:2b:3c", Bridge: "xenbr0"}, {MAC: "02:00:00:00:00:02", Bridge: "br-storage"}, {MAC: "00:16:3e:1a:2b:3e", Bridge: "xenbr1.100"}}
	cases["multi-nic"] = c

	c = baseConfig()
	c.VNC = true
	cases["pv-vnc"] = c

	c = baseConfig()
	c.Disks = append(c.Disks, Disk{Target: "/var/lib/xenclone/seed/vm-team-a-web-01.img", Vdev: "xvdb", ReadOnly: true})
	cases["seed-disk"] = c

	c = baseConfig()
	c.VIFs = nil
	cases["no-nic"] = c
	return cases
}

// TestRenderGolden compares each rendered config with testdata/golden/<case>.cfg
// (go test -run TestRenderGolden -update rewrites them) and checks that each parses back, with
// the real xl.cfg grammar, into exactly the keys and values the config says.
func TestRenderGolden(t *testing.T) {
	for name, c := range goldenCases() {
		t.Run(name, func(t *testing.T) {
			got, err := Render(c)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "golden", name+".cfg")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if string(got) != string(want) {
				t.Errorf("rendered config differs from %s:\n--- got\n%s--- want\n%s", path, got, want)
			}
			assertRoundTrip(t, c, got)
		})
	}
}

// expectedKeys lists the keys a config must render to, no more, no less.
func expectedKeys(c DomainConfig) []string {
	keys := []string{"name", "uuid", "type", "memory", "vcpus", "disk", "vif", "on_poweroff", "on_reboot", "on_crash"}
	add := func(ok bool, k ...string) {
		if ok {
			keys = append(keys, k...)
		}
	}
	add(c.MaxMemoryMiB != 0, "maxmem")
	add(c.MaxVCPUs != 0, "maxvcpus")
	add(c.Bootloader != "", "bootloader")
	add(c.Kernel != "", "kernel")
	add(c.Ramdisk != "", "ramdisk")
	add(c.Cmdline != "", "cmdline")
	add(c.Type == GuestHVM, "vnc")
	add(c.Type == GuestHVM && c.VNC, "vnclisten")
	add(c.Type != GuestHVM && c.VNC, "vfb")
	sort.Strings(keys)
	return keys
}

// assertRoundTrip parses rendered xl.cfg text and checks every key and value against c,
// including the disk and vif specs parsed as libxlu would.
func assertRoundTrip(t *testing.T, c DomainConfig, rendered []byte) {
	t.Helper()
	f, err := xlcfg.Parse(rendered)
	if err != nil {
		t.Fatalf("rendered config does not parse: %v\n%s", err, rendered)
	}
	if len(f.Settings) != len(f.Keys()) {
		t.Fatalf("a key is set twice:\n%s", rendered)
	}
	keys := f.Keys()
	sort.Strings(keys)
	if want := expectedKeys(c); strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("keys %v, want %v\n%s", keys, want, rendered)
	}
	for key, want := range map[string]string{"name": c.Name, "uuid": c.UUID, "type": string(c.Type),
		"bootloader": c.Bootloader, "kernel": c.Kernel, "ramdisk": c.Ramdisk, "cmdline": c.Cmdline} {
		if got, _ := f.String(key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	disks, ok := f.StringList("disk")
	if !ok || len(disks) != len(c.Disks) {
		t.Fatalf("disk = %q, want %d disks", disks, len(c.Disks))
	}
	for i, spec := range disks {
		d, err := xlcfg.ParseDisk(spec)
		access := "rw"
		if c.Disks[i].ReadOnly {
			access = "ro"
		}
		if err != nil || d.Target != c.Disks[i].Target || d.Vdev != c.Disks[i].Vdev || d.Access != access || d.Format != "raw" {
			t.Errorf("disk[%d] %q parses to %+v, %v; want %+v", i, spec, d, err, c.Disks[i])
		}
	}
	vifs, ok := f.StringList("vif")
	if !ok || len(vifs) != len(c.VIFs) {
		t.Fatalf("vif = %q, want %d vifs", vifs, len(c.VIFs))
	}
	for i, spec := range vifs {
		v, err := xlcfg.ParseVif(spec)
		if err != nil || len(v) != 2 || v["mac"] != c.VIFs[i].MAC || v["bridge"] != c.VIFs[i].Bridge {
			t.Errorf("vif[%d] %q parses to %v, %v; want %+v", i, spec, v, err, c.VIFs[i])
		}
	}
}

// TestHostileValuesCannotAddKeys: the one free-text field (cmdline) carries quotes, newlines,
// brackets, '=' and ','; it either renders as a single value or is refused. Every structured
// field refuses such characters.
func TestHostileValuesCannotAddKeys(t *testing.T) {
	hostile := []string{
		`quiet" ; bootloader = "/tmp/evil`,
		"quiet\nbootloader = \"/tmp/evil\"",
		`x" ] ; disk = [ "/dev/sda,raw,xvdz,rw`,
		`a=b,c=d`,
		`ends with backslash \`,
		`\"`,
		`# not a comment`,
		`'single' "double"`,
		"tab\tinside",
		"cr\rinside",
	}
	for _, h := range hostile {
		c := baseConfig()
		c.Cmdline = h
		out, err := Render(c)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("cmdline %q: error %v does not wrap ErrInvalidConfig", h, err)
			}
			if !strings.ContainsAny(h, "\n\r\t") {
				t.Errorf("cmdline %q refused, but only control characters should be: %v", h, err)
			}
			continue
		}
		assertRoundTrip(t, c, out)
	}

	structured := map[string]func(c *DomainConfig, v string){
		"name":        func(c *DomainConfig, v string) { c.Name = v },
		"uuid":        func(c *DomainConfig, v string) { c.UUID = v },
		"kernel":      func(c *DomainConfig, v string) { c.Bootloader, c.Kernel = "", v },
		"ramdisk":     func(c *DomainConfig, v string) { c.Bootloader, c.Kernel, c.Ramdisk = "", "/boot/k", v },
		"disk target": func(c *DomainConfig, v string) { c.Disks[0].Target = v },
		"disk vdev":   func(c *DomainConfig, v string) { c.Disks[0].Vdev = v },
		"vif mac":     func(c *DomainConfig, v string) { c.VIFs[0].MAC = v },
		"vif bridge":  func(c *DomainConfig, v string) { c.VIFs[0].Bridge = v },
		"bootloader":  func(c *DomainConfig, v string) { c.Bootloader = v },
		"on_crash":    func(c *DomainConfig, v string) { c.OnCrash = LifecycleAction(v) },
	}
	injections := []string{`a"b`, "a\nb", "a]b", "a=b", "a,b", `a\b`, "a b", "a'b", "a#b", "a;b"}
	for field, set := range structured {
		for _, inj := range injections {
			c := baseConfig()
			set(&c, "/x/"+inj)
			if _, err := Render(c); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s = %q: want ErrInvalidConfig, got %v", field, "/x/"+inj, err)
			}
		}
	}
}

func TestValidateRejects(t *testing.T) {
	cases := map[string]func(c *DomainConfig){
		"all-digit name":     func(c *DomainConfig) { c.Name = "12345" },
		"empty name":         func(c *DomainConfig) { c.Name = "" },
		"uppercase uuid":     func(c *DomainConfig) { c.UUID = strings.ToUpper(c.UUID) },
		"bad type":           func(c *DomainConfig) { c.Type = "xen" },
		"zero memory":        func(c *DomainConfig) { c.MemoryMiB = 0 },
		"maxmem below":       func(c *DomainConfig) { c.MaxMemoryMiB = 512 },
		"maxvcpus below":     func(c *DomainConfig) { c.MaxVCPUs = 1 },
		"no vcpus":           func(c *DomainConfig) { c.VCPUs = 0 },
		"pygrub on hvm":      func(c *DomainConfig) { c.Type = GuestHVM },
		"pygrub and kernel":  func(c *DomainConfig) { c.Kernel = "/boot/k" },
		"pv without boot":    func(c *DomainConfig) { c.Bootloader = "" },
		"ramdisk no kernel":  func(c *DomainConfig) { c.Bootloader, c.Ramdisk = "", "/boot/i" },
		"other bootloader":   func(c *DomainConfig) { c.Bootloader = "/usr/bin/pygrub" },
		"relative disk":      func(c *DomainConfig) { c.Disks[0].Target = "dev/vg0/x" },
		"dotdot disk":        func(c *DomainConfig) { c.Disks[0].Target = "/dev/../etc/shadow" },
		"no disks":           func(c *DomainConfig) { c.Disks = nil },
		"duplicate vdev":     func(c *DomainConfig) { c.Disks = append(c.Disks, Disk{Target: "/x", Vdev: "xvda"}) },
		"multicast mac":      func(c *DomainConfig) { c.VIFs[0].MAC = "01:16:3e:00:00:01" },
		"uppercase mac":      func(c *DomainConfig) { c.VIFs[0].MAC = "00:16:3E:00:00:01" },
		"duplicate mac":      func(c *DomainConfig) { c.VIFs = append(c.VIFs, c.VIFs[0]) },
		"long bridge":        func(c *DomainConfig) { c.VIFs[0].Bridge = "a234567890123456" },
		"unknown lifecycle":  func(c *DomainConfig) { c.OnReboot = "reboot" },
		"control in cmdline": func(c *DomainConfig) { c.Cmdline = "a\x00b" },
	}
	for name, mutate := range cases {
		c := baseConfig()
		mutate(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: want ErrInvalidConfig, got %v", name, err)
		}
	}
}

func TestWriteConfigFileIsAtomicAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "domains")
	c := baseConfig()
	path, err := WriteConfigFile(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, c.Name+".cfg") {
		t.Errorf("path %s", path)
	}
	c.MemoryMiB = 2048
	if _, err := WriteConfigFile(dir, c); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(data), "memory = 2048\n") {
		t.Fatalf("rewrite not visible: %v\n%s", err, data)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	// An invalid config writes nothing and leaves the old file.
	c.Name = "bad name"
	if _, err := WriteConfigFile(dir, c); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("want ErrInvalidConfig, got %v", err)
	}
	if err := RemoveConfigFile(dir, "vm-team-a-web-01"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveConfigFile(dir, "vm-team-a-web-01"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
}

// FuzzRenderNoInjection fuzzes every string field at once: whatever Render accepts parses back
// to exactly the expected keys, with each value intact.
func FuzzRenderNoInjection(f *testing.F) {
	f.Add("vm-1", "quiet", "/dev/vg0/c1", "xvda", "00:16:3e:00:00:01", "xenbr0", "/boot/k")
	f.Add("vm-2", `"];evil="1`, "/dev/vg0/a,b", "xvdb", "00:16:3e:00:00:01,x=1", "br=0", "/boot/k\"")
	f.Add("x", "a\nb=1", "/x]", "hda", "02:00:00:00:00:01", "b", "")
	f.Fuzz(func(t *testing.T, name, cmdline, target, vdev, mac, bridge, kernel string) {
		c := baseConfig()
		c.Name, c.Cmdline = name, cmdline
		c.Disks[0] = Disk{Target: target, Vdev: vdev}
		c.VIFs[0] = VIF{MAC: mac, Bridge: bridge}
		if kernel != "" {
			c.Bootloader, c.Kernel = "", kernel
		}
		out, err := Render(c)
		if err != nil {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("error %v does not wrap ErrInvalidConfig", err)
			}
			return
		}
		assertRoundTrip(t, c, out)
	})
}
