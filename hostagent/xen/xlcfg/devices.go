package xlcfg

import (
	"fmt"
	"regexp"
	"strings"
)

// Disk is one parsed disk specification (xl-disk-configuration(5)).
type Disk struct {
	Target string
	Format string // raw when unset
	Vdev   string
	Access string // "rw" or "ro"
}

// ReadOnly reports whether the disk is attached read-only.
func (d Disk) ReadOnly() bool { return d.Access == "ro" }

var (
	diskFormats = map[string]bool{"raw": true, "qcow": true, "qcow2": true, "vhd": true, "qed": true}
	diskAccess  = map[string]string{"r": "ro", "ro": "ro", "w": "rw", "rw": "rw"}
	vdevRE      = regexp.MustCompile(`^(xvd|hd|sd)[a-z]+[0-9]*$`)
	diskKeys    = map[string]bool{"format": true, "vdev": true, "access": true, "devtype": true,
		"backendtype": true, "backend": true, "script": true, "specification": true,
		"discard": true, "no-discard": true, "direct-io-safe": true, "cdrom": true}
)

// ParseDisk parses a disk specification in the keyword form (`format=raw,vdev=xvda,access=rw,
// target=/dev/vg/lv`), the positional form (`/dev/vg/lv,raw,xvda,rw`) or the legacy form
// (`phy:/dev/vg/lv,xvda,w`). As in libxlu, `target=` must come last and takes the rest of the
// string, commas included.
func ParseDisk(spec string) (Disk, error) {
	d := Disk{Format: "raw", Access: "rw"}
	rest := spec
	positional := 0
	for rest != "" {
		var tok string
		if strings.HasPrefix(strings.TrimLeft(rest, " "), "target=") {
			d.Target = strings.TrimPrefix(strings.TrimLeft(rest, " "), "target=")
			rest = ""
			break
		}
		if i := strings.IndexByte(rest, ','); i >= 0 {
			tok, rest = rest[:i], rest[i+1:]
		} else {
			tok, rest = rest, ""
		}
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		if k, v, ok := strings.Cut(tok, "="); ok {
			if !diskKeys[k] {
				return Disk{}, fmt.Errorf("unknown keyword %q in disk specification %q", k, spec)
			}
			switch k {
			case "format":
				if !diskFormats[v] {
					return Disk{}, fmt.Errorf("invalid format %q in disk specification %q", v, spec)
				}
				d.Format = v
			case "vdev":
				d.Vdev = v
			case "access":
				a, ok := diskAccess[v]
				if !ok {
					return Disk{}, fmt.Errorf("invalid access %q in disk specification %q", v, spec)
				}
				d.Access = a
			}
			continue
		}
		switch {
		case diskFormats[tok]:
			d.Format = tok
		case diskAccess[tok] != "" && d.Vdev != "":
			d.Access = diskAccess[tok]
		case vdevRE.MatchString(tok) && d.Target != "":
			d.Vdev = tok
		case positional == 0:
			t := tok
			for _, p := range []string{"phy:", "file:", "tap:aio:", "aio:"} {
				t = strings.TrimPrefix(t, p)
			}
			d.Target = t
		default:
			return Disk{}, fmt.Errorf("unexpected %q in disk specification %q", tok, spec)
		}
		positional++
	}
	if d.Vdev == "" {
		return Disk{}, fmt.Errorf("no vdev specified in disk specification %q", spec)
	}
	return d, nil
}

var vifKeys = map[string]bool{"mac": true, "bridge": true, "vifname": true, "script": true,
	"ip": true, "rate": true, "mtu": true, "model": true, "type": true, "backend": true,
	"gatewaydev": true, "devid": true, "vlan": true, "accel": true}

// ParseVif parses a vif specification (xl-network-configuration(5)): comma-separated key=value.
func ParseVif(spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, tok := range strings.Split(spec, ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		k, v, ok := strings.Cut(tok, "=")
		if !ok || !vifKeys[k] {
			return nil, fmt.Errorf("invalid parameter %q in vif %q", tok, spec)
		}
		out[k] = v
	}
	return out, nil
}
