// Package seed builds a clone's cloud-init NoCloud seed: a small vfat (or iso9660) image
// labelled "cidata" holding meta-data (instance-id = the clone's UID, local-hostname),
// user-data and a version 2 network-config matched on the clone's MACs. The image is built
// with userspace tools (mkfs.vfat + mcopy, or genisoimage), never mounted, and attached to the
// domain as a second read-only disk, so the guest's identity does not depend on editing its
// filesystem.
package seed

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/xenclone/xenclone/hostagent/command"
	"github.com/xenclone/xenclone/hostagent/guest/scrub"
)

// Format is the seed image's filesystem.
type Format string

const (
	// VFAT is the default: mkfs.vfat + mcopy (dosfstools, mtools).
	VFAT Format = "vfat"
	// ISO9660 uses genisoimage with Joliet and Rock Ridge names.
	ISO9660 Format = "iso9660"
)

// Label is the volume label cloud-init's NoCloud source looks for.
const Label = "cidata"

// Interface is one NIC of the clone.
type Interface struct {
	// Name is the guest interface name the config gives it (set-name), e.g. eth0.
	Name string
	// MAC is the clone's address on that NIC.
	MAC string
}

// Spec is what goes into a clone's seed.
type Spec struct {
	// InstanceID is the clone's UID: a new value is what makes cloud-init treat a boot as the
	// first boot of a new instance.
	InstanceID string
	// Hostname is the clone's host name (local-hostname).
	Hostname string
	// UserData is passed through as-is (#cloud-config, a script, MIME multipart). Empty
	// means a minimal "#cloud-config".
	UserData []byte
	// NetworkConfig is passed through as-is when set; otherwise a version 2 config with DHCP
	// on every interface, matched by MAC, is generated.
	NetworkConfig []byte
	// Interfaces are the clone's NICs, in order.
	Interfaces []Interface
	// Format defaults to VFAT.
	Format Format
}

// Files are the seed's files by name.
type Files map[string][]byte

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// ValidID accepts identifiers safe to use as a file name and a YAML scalar (a Kubernetes UID
// qualifies).
func ValidID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("instance id %q must be 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

// quote renders a string as a YAML double-quoted scalar (JSON strings are valid YAML).
func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Render produces the seed's files. It is pure, so the node reconciler can also hash the
// result to tell whether a seed on disk is current.
func Render(s Spec) (Files, error) {
	if err := ValidID(s.InstanceID); err != nil {
		return nil, err
	}
	if err := scrub.ValidHostname(s.Hostname); err != nil {
		return nil, err
	}
	f := Files{}
	f["meta-data"] = []byte("instance-id: " + quote(s.InstanceID) + "\nlocal-hostname: " + quote(s.Hostname) + "\n")
	if len(s.UserData) > 0 {
		f["user-data"] = s.UserData
	} else {
		f["user-data"] = []byte("#cloud-config\n")
	}
	if len(s.NetworkConfig) > 0 {
		f["network-config"] = s.NetworkConfig
		return f, nil
	}
	nc, err := networkConfig(s.Interfaces)
	if err != nil {
		return nil, err
	}
	if nc != nil {
		f["network-config"] = nc
	}
	return f, nil
}

var ifname = regexp.MustCompile(`^[a-z][a-z0-9]{0,14}$`)

// networkConfig renders cloud-init network config version 2 (no top-level "network:" key in
// a NoCloud network-config file): each NIC matched by its MAC, lower-case and quoted, renamed
// to its name, DHCPv4.
func networkConfig(ifaces []Interface) ([]byte, error) {
	if len(ifaces) == 0 {
		return nil, nil
	}
	var b bytes.Buffer
	b.WriteString("version: 2\nethernets:\n")
	seen := map[string]bool{}
	for _, i := range ifaces {
		hw, err := net.ParseMAC(i.MAC)
		if err != nil || len(hw) != 6 {
			return nil, fmt.Errorf("interface %s: MAC %q is not a 6-byte address", i.Name, i.MAC)
		}
		if !ifname.MatchString(i.Name) || seen[i.Name] {
			return nil, fmt.Errorf("interface name %q must be unique, lower-case letters and digits, up to 15 characters", i.Name)
		}
		seen[i.Name] = true
		fmt.Fprintf(&b, "  %s:\n    match:\n      macaddress: %s\n    set-name: %s\n    dhcp4: true\n",
			i.Name, quote(strings.ToLower(hw.String())), i.Name)
	}
	return b.Bytes(), nil
}

// Builder writes seed images with host tools.
type Builder struct {
	Runner command.Runner
	// HostRoot is prepended to host paths this process opens itself (see guest.Preparer).
	HostRoot string
}

// FileName is the seed image's name inside the per-clone directory.
func FileName(f Format) string {
	if f == ISO9660 {
		return "cidata.iso"
	}
	return "cidata.img"
}

// Build renders the seed and writes it to dir/cidata.img (or .iso), atomically: the image is
// built under a temporary name in dir and renamed over the old one, so a domain never sees a
// half-written seed and a rebuild is always safe. dir is created (0700) if missing.
func (b Builder) Build(ctx context.Context, dir string, s Spec) (string, error) {
	files, err := Render(s)
	if err != nil {
		return "", err
	}
	format := s.Format
	if format == "" {
		format = VFAT
	}
	if format != VFAT && format != ISO9660 {
		return "", fmt.Errorf("seed format %q is not vfat or iso9660", format)
	}
	local := func(p string) string { return filepath.Join(b.HostRoot, p) }
	if err := os.MkdirAll(local(dir), 0o700); err != nil {
		return "", fmt.Errorf("create seed directory: %w", err)
	}
	stage, err := os.MkdirTemp(local(dir), ".seed-")
	if err != nil {
		return "", fmt.Errorf("create seed staging directory: %w", err)
	}
	defer os.RemoveAll(stage)
	hostStage := filepath.Join(dir, filepath.Base(stage))
	var names []string
	for _, n := range []string{"meta-data", "user-data", "network-config"} {
		c, ok := files[n]
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(stage, n), c, 0o600); err != nil {
			return "", fmt.Errorf("stage %s: %w", n, err)
		}
		names = append(names, filepath.Join(hostStage, n))
	}
	img := filepath.Join(hostStage, "image")
	final := filepath.Join(dir, FileName(format))
	switch format {
	case VFAT:
		total := 0
		for _, c := range files {
			total += len(c)
		}
		// FAT12 overhead is small; leave room for clusters and long-name entries.
		kib := (2*total)/1024 + 1024
		if _, err := b.Runner.Run(ctx, "mkfs.vfat", "-n", Label, "-C", img, fmt.Sprint(kib)); err != nil {
			return "", fmt.Errorf("format seed image: %w", err)
		}
		args := append([]string{"-o", "-i", img}, names...)
		if _, err := b.Runner.Run(ctx, "mcopy", append(args, "::/")...); err != nil {
			return "", fmt.Errorf("copy files into seed image: %w", err)
		}
	case ISO9660:
		args := append([]string{"-quiet", "-output", img, "-volid", Label, "-joliet", "-rock"}, names...)
		if _, err := b.Runner.Run(ctx, "genisoimage", args...); err != nil {
			return "", fmt.Errorf("build seed image: %w", err)
		}
	}
	f, err := os.Open(local(img))
	if err != nil {
		return "", fmt.Errorf("open seed image: %w", err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return "", fmt.Errorf("sync seed image: %w", err)
	}
	if err := os.Chmod(local(img), 0o600); err != nil {
		return "", fmt.Errorf("chmod seed image: %w", err)
	}
	if err := os.Rename(local(img), local(final)); err != nil {
		return "", fmt.Errorf("install seed image: %w", err)
	}
	if d, err := os.Open(local(dir)); err == nil {
		_ = d.Sync() // make the rename durable; a failure here only risks an older seed
		d.Close()
	}
	return final, nil
}
