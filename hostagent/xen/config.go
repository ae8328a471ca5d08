package xen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/xenclone/xenclone/hostagent/atomicfile"
	"github.com/xenclone/xenclone/hostagent/xen/xlcfg"
)

// GuestType is the Xen guest type (xl.cfg type=).
type GuestType string

const (
	GuestPV  GuestType = "pv"
	GuestPVH GuestType = "pvh"
	GuestHVM GuestType = "hvm"
)

// LifecycleAction is what happens when a guest powers off, reboots or crashes (xl.cfg
// on_poweroff/on_reboot/on_crash). With `xl create -e` (see Driver.Create) xl does not apply
// these; the node agent does, through DecideAction.
type LifecycleAction string

const (
	ActionDestroy         LifecycleAction = "destroy"
	ActionRestart         LifecycleAction = "restart"
	ActionRenameRestart   LifecycleAction = "rename-restart"
	ActionPreserve        LifecycleAction = "preserve"
	ActionCoredumpDestroy LifecycleAction = "coredump-destroy"
	ActionCoredumpRestart LifecycleAction = "coredump-restart"
)

var lifecycleActions = map[LifecycleAction]bool{ActionDestroy: true, ActionRestart: true,
	ActionRenameRestart: true, ActionPreserve: true, ActionCoredumpDestroy: true, ActionCoredumpRestart: true}

// Disk is one block device of the guest.
type Disk struct {
	// Target is the absolute dom0 path of the block device or image file (the clone's LV, the
	// seed image).
	Target string
	// Vdev is the device the guest sees, e.g. xvda (whole disk) or xvda1 (bare filesystem).
	Vdev string
	// ReadOnly attaches the disk read-only (the cloud-init seed).
	ReadOnly bool
}

// VIF is one virtual network interface.
type VIF struct {
	// MAC is the interface's fixed MAC address, lowercase and colon-separated. Without it libxl
	// picks a new random MAC on every create, so it is required.
	MAC string
	// Bridge is the dom0 bridge to plug the interface into.
	Bridge string
}

// DomainConfig is the fully resolved configuration of one domain: everything the xl.cfg needs,
// already defaulted. It is deliberately independent of the Kubernetes API types; the node agent
// maps a VMClone onto it.
type DomainConfig struct {
	Name string
	UUID string
	Type GuestType
	// MemoryMiB is the memory at start; MaxMemoryMiB (0 = same) the balloon ceiling.
	MemoryMiB    int64
	MaxMemoryMiB int64
	// VCPUs online at start; MaxVCPUs (0 = same) the most the guest may bring online.
	VCPUs    int
	MaxVCPUs int
	// Bootloader is "pygrub" or empty; when empty, Kernel (with optional Ramdisk) boots the
	// guest directly. HVM guests may have neither (they boot from their disk).
	Bootloader string
	Kernel     string
	Ramdisk    string
	// Cmdline is the kernel command line; with pygrub it is appended to the guest's grub entry.
	Cmdline string
	Disks   []Disk
	VIFs    []VIF
	// VNC turns on a VNC console listening on 127.0.0.1 only.
	VNC        bool
	OnPoweroff LifecycleAction
	OnReboot   LifecycleAction
	OnCrash    LifecycleAction
}

// ErrInvalidConfig is wrapped by every validation error of a DomainConfig.
var ErrInvalidConfig = errors.New("invalid domain config")

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	digitsRE = regexp.MustCompile(`^[0-9]+$`)
	uuidRE   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	// Paths go inside disk specs, where ',' '=' ':' and quotes have meaning: allow only what a
	// device or image path needs.
	pathRE   = regexp.MustCompile(`^/[A-Za-z0-9._/+-]+$`)
	vdevRE   = regexp.MustCompile(`^(xvd[a-z]{1,2}|hd[a-z]|sd[a-z]{1,2})[0-9]{0,2}$`)
	macRE    = regexp.MustCompile(`^[0-9a-f]{2}(:[0-9a-f]{2}){5}$`)
	bridgeRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
)

// ValidateName checks a domain name: letters, digits and _ . - (so it is safe in a file name, an
// xl argument and xl.cfg), at most 64 characters, and not all digits, because xl reads an
// all-digit argument as a domain id.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: domain name %q must be 1-64 letters, digits, '_', '.', '-', starting with a letter or digit", ErrInvalidConfig, name)
	}
	if digitsRE.MatchString(name) {
		return fmt.Errorf("%w: domain name %q is all digits; xl would read it as a domain id", ErrInvalidConfig, name)
	}
	return nil
}

func validatePath(what, p string) error {
	if !pathRE.MatchString(p) {
		return fmt.Errorf("%w: %s %q must be an absolute path of letters, digits and . _ / + -", ErrInvalidConfig, what, p)
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return fmt.Errorf("%w: %s %q must not contain '..'", ErrInvalidConfig, what, p)
		}
	}
	return nil
}

// Validate checks every field; a config that passes renders to an xl.cfg in which each field is
// exactly one key. Errors wrap ErrInvalidConfig and name the field.
func (c *DomainConfig) Validate() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	if !uuidRE.MatchString(c.UUID) {
		return fmt.Errorf("%w: uuid %q must be a lowercase 8-4-4-4-12 hex UUID", ErrInvalidConfig, c.UUID)
	}
	switch c.Type {
	case GuestPV, GuestPVH, GuestHVM:
	default:
		return fmt.Errorf("%w: type %q must be pv, pvh or hvm", ErrInvalidConfig, c.Type)
	}
	if c.MemoryMiB < 1 {
		return fmt.Errorf("%w: memory %d MiB must be positive", ErrInvalidConfig, c.MemoryMiB)
	}
	if c.MaxMemoryMiB != 0 && c.MaxMemoryMiB < c.MemoryMiB {
		return fmt.Errorf("%w: maxmem %d MiB is below memory %d MiB", ErrInvalidConfig, c.MaxMemoryMiB, c.MemoryMiB)
	}
	if c.VCPUs < 1 {
		return fmt.Errorf("%w: vcpus %d must be at least 1", ErrInvalidConfig, c.VCPUs)
	}
	if c.MaxVCPUs != 0 && c.MaxVCPUs < c.VCPUs {
		return fmt.Errorf("%w: maxvcpus %d is below vcpus %d", ErrInvalidConfig, c.MaxVCPUs, c.VCPUs)
	}
	switch {
	case c.Bootloader != "" && c.Bootloader != "pygrub":
		return fmt.Errorf("%w: bootloader %q: only pygrub is supported", ErrInvalidConfig, c.Bootloader)
	case c.Bootloader != "" && c.Type == GuestHVM:
		return fmt.Errorf("%w: bootloader pygrub is for pv and pvh guests, not hvm", ErrInvalidConfig)
	case c.Bootloader != "" && (c.Kernel != "" || c.Ramdisk != ""):
		return fmt.Errorf("%w: set either bootloader or kernel/ramdisk, not both", ErrInvalidConfig)
	case c.Bootloader == "" && c.Kernel == "" && c.Type != GuestHVM:
		return fmt.Errorf("%w: a %s guest needs bootloader pygrub or a kernel", ErrInvalidConfig, c.Type)
	case c.Ramdisk != "" && c.Kernel == "":
		return fmt.Errorf("%w: ramdisk needs a kernel", ErrInvalidConfig)
	}
	if c.Kernel != "" {
		if err := validatePath("kernel", c.Kernel); err != nil {
			return err
		}
	}
	if c.Ramdisk != "" {
		if err := validatePath("ramdisk", c.Ramdisk); err != nil {
			return err
		}
	}
	if _, err := xlcfg.Quote(c.Cmdline); err != nil {
		return fmt.Errorf("%w: cmdline: %v", ErrInvalidConfig, err)
	}
	if len(c.Disks) == 0 {
		return fmt.Errorf("%w: at least one disk is needed", ErrInvalidConfig)
	}
	vdevs := map[string]bool{}
	for i, d := range c.Disks {
		if err := validatePath(fmt.Sprintf("disk[%d] target", i), d.Target); err != nil {
			return err
		}
		if !vdevRE.MatchString(d.Vdev) {
			return fmt.Errorf("%w: disk[%d] vdev %q must look like xvda, xvda1, hda or sda", ErrInvalidConfig, i, d.Vdev)
		}
		if vdevs[d.Vdev] {
			return fmt.Errorf("%w: disk[%d] vdev %q is used twice", ErrInvalidConfig, i, d.Vdev)
		}
		vdevs[d.Vdev] = true
	}
	macs := map[string]bool{}
	for i, v := range c.VIFs {
		if !macRE.MatchString(v.MAC) {
			return fmt.Errorf("%w: vif[%d] mac %q must be six lowercase hex pairs separated by ':'", ErrInvalidConfig, i, v.MAC)
		}
		if b, _ := strconv.ParseUint(v.MAC[:2], 16, 8); b&1 == 1 {
			return fmt.Errorf("%w: vif[%d] mac %q is a multicast address", ErrInvalidConfig, i, v.MAC)
		}
		if macs[v.MAC] {
			return fmt.Errorf("%w: vif[%d] mac %q is used twice", ErrInvalidConfig, i, v.MAC)
		}
		macs[v.MAC] = true
		if !bridgeRE.MatchString(v.Bridge) {
			return fmt.Errorf("%w: vif[%d] bridge %q must be 1-15 letters, digits, '_', '.', '-'", ErrInvalidConfig, i, v.Bridge)
		}
	}
	for key, a := range map[string]LifecycleAction{"on_poweroff": c.OnPoweroff, "on_reboot": c.OnReboot, "on_crash": c.OnCrash} {
		if a != "" && !lifecycleActions[a] {
			return fmt.Errorf("%w: %s %q must be one of destroy, restart, rename-restart, preserve, coredump-destroy, coredump-restart", ErrInvalidConfig, key, a)
		}
	}
	return nil
}

// Policy returns the lifecycle actions with xl's defaults filled in
// (destroy / restart / destroy).
func (c *DomainConfig) Policy() LifecyclePolicy {
	return LifecyclePolicy{OnPoweroff: c.OnPoweroff, OnReboot: c.OnReboot, OnCrash: c.OnCrash}.withDefaults()
}

// Render validates c and returns its xl.cfg text. Every value is either a number we format or a
// string passed through xlcfg.Quote; values that go inside disk and vif specs (paths, vdevs,
// MACs, bridges) are validated to a character set without ',' '=' or quotes, so no spec can add
// a key to the file or to a device.
func Render(c DomainConfig) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var b strings.Builder
	q := func(s string) string {
		out, err := xlcfg.Quote(s)
		if err != nil { // Validate guarantees quotable values
			panic(fmt.Sprintf("xen: unquotable value after validation: %v", err))
		}
		return out
	}
	line := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	list := func(items []string) string {
		if len(items) == 0 {
			return "[]"
		}
		return "[ " + strings.Join(items, ", ") + " ]"
	}

	b.WriteString("# Generated by xenclone. Do not edit: the node agent rewrites this file.\n")
	line("name", q(c.Name))
	line("uuid", q(c.UUID))
	line("type", q(string(c.Type)))
	line("memory", strconv.FormatInt(c.MemoryMiB, 10))
	if c.MaxMemoryMiB != 0 {
		line("maxmem", strconv.FormatInt(c.MaxMemoryMiB, 10))
	}
	line("vcpus", strconv.Itoa(c.VCPUs))
	if c.MaxVCPUs != 0 {
		line("maxvcpus", strconv.Itoa(c.MaxVCPUs))
	}
	if c.Bootloader != "" {
		line("bootloader", q(c.Bootloader))
	}
	if c.Kernel != "" {
		line("kernel", q(c.Kernel))
	}
	if c.Ramdisk != "" {
		line("ramdisk", q(c.Ramdisk))
	}
	if c.Cmdline != "" {
		line("cmdline", q(c.Cmdline))
	}

	disks := make([]string, 0, len(c.Disks))
	for _, d := range c.Disks {
		access := "rw"
		if d.ReadOnly {
			access = "ro"
		}
		// Keyword form with target= last: libxlu takes the rest of the spec as the path.
		disks = append(disks, q(fmt.Sprintf("format=raw,vdev=%s,access=%s,target=%s", d.Vdev, access, d.Target)))
	}
	line("disk", list(disks))

	vifs := make([]string, 0, len(c.VIFs))
	for _, v := range c.VIFs {
		vifs = append(vifs, q(fmt.Sprintf("mac=%s,bridge=%s", v.MAC, v.Bridge)))
	}
	line("vif", list(vifs))

	switch {
	case c.Type == GuestHVM:
		// HVM guests get an emulated display whose VNC server is on by default: say so
		// explicitly either way.
		if c.VNC {
			line("vnc", "1")
			line("vnclisten", q("127.0.0.1"))
		} else {
			line("vnc", "0")
		}
	case c.VNC:
		line("vfb", "[ "+q("vnc=1,vnclisten=127.0.0.1")+" ]")
	}

	p := c.Policy()
	line("on_poweroff", q(string(p.OnPoweroff)))
	line("on_reboot", q(string(p.OnReboot)))
	line("on_crash", q(string(p.OnCrash)))
	return []byte(b.String()), nil
}

// ConfigPath is where WriteConfigFile puts the config of domain name under dir.
func ConfigPath(dir, name string) string { return filepath.Join(dir, name+".cfg") }

// WriteConfigFile renders c and writes it to ConfigPath(dir, c.Name) atomically: a temporary file
// in the same directory, fsync, rename over the old one, fsync of the directory. A crash leaves
// either the old file or the new one, never a torn config that xl would half-read. dir is created
// (0700) if missing; the file is 0600 because it names host devices.
func WriteConfigFile(dir string, c DomainConfig) (string, error) {
	data, err := Render(c)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create config dir %s: %w", dir, err)
	}
	path := ConfigPath(dir, c.Name)
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return "", fmt.Errorf("domain config: %w", err)
	}
	return path, nil
}

// RemoveConfigFile removes the config of domain name under dir; a missing file is not an error.
func RemoveConfigFile(dir, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := os.Remove(ConfigPath(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove config of %s: %w", name, err)
	}
	return nil
}
