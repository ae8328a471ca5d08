package xen

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// What a guest agent publishes in its domain's xenstore tree. xen-guest-agent (XCP-ng) and
// xe-guest-utilities write the same keys (xen-guest-agent's "xenstore-std" schema, the one
// XAPI and Xen Orchestra read):
//
//	attr/vif/<devid>/ipv4/<n>, attr/vif/<devid>/ipv6/<n>   the NIC's addresses (n from 0)
//	attr/PVAddons/MajorVersion, MinorVersion, MicroVersion, BuildVersion   the agent's version
//	data/os_name, data/os_uname                               the OS and its kernel release
//
// console/vnc-port is written by the domain's device model (QEMU) in dom0, not by the guest.
// Everything under attr/ and data/ is written by the guest, which is not trusted: values are
// parsed strictly, bounded, and what does not parse is left out.

// Bounds on what one report may carry (xen-guest-agent publishes at most 10 addresses per
// family per NIC).
const (
	MaxGuestNICs         = 8
	MaxAddressesPerNIC   = 10
	maxGuestStringLength = 128
	maxAgentVersionLen   = 64
)

// GuestReport is what a domain's xenstore tree says about the guest running in it.
type GuestReport struct {
	// AgentVersion is the guest agent's version ("1.0.0-proto"); empty until an agent wrote it.
	AgentVersion string
	OS           string
	Kernel       string
	// NICs are the addresses per vif devid (the NIC's index in the domain config).
	NICs map[int]NICAddresses
	// VNCPort is the port QEMU's VNC server listens on, 0 when there is none.
	VNCPort int
}

// NICAddresses are one NIC's addresses in the guest agent's order.
type NICAddresses struct {
	IPv4 []netip.Addr
	IPv6 []netip.Addr
}

// AgentReported says whether a guest agent has written anything we read: its version or an
// address.
func (r GuestReport) AgentReported() bool { return r.AgentVersion != "" || len(r.NICs) > 0 }

// GuestReportFrom reads a report out of a domain's tree (paths relative to
// /local/domain/<domid>/, as ReadTree returns them).
func GuestReportFrom(tree map[string]string) GuestReport {
	var r GuestReport
	type slot struct {
		n    int
		addr netip.Addr
	}
	found := map[int]map[bool][]slot{} // devid -> is IPv6 -> slots
	for path, val := range tree {
		rest, ok := strings.CutPrefix(path, "attr/vif/")
		if !ok {
			continue
		}
		parts := strings.Split(rest, "/")
		if len(parts) != 3 || (parts[1] != "ipv4" && parts[1] != "ipv6") {
			continue
		}
		dev, err1 := strconv.Atoi(parts[0])
		n, err2 := strconv.Atoi(parts[2])
		if err1 != nil || err2 != nil || dev < 0 || dev >= MaxGuestNICs || n < 0 || n > 1000 {
			continue
		}
		addr, err := netip.ParseAddr(strings.TrimSpace(val))
		v6 := parts[1] == "ipv6"
		if err != nil || addr.Zone() != "" || addr.Is4In6() || addr.Is6() != v6 || addr.IsUnspecified() || addr.IsLoopback() || addr.IsMulticast() {
			continue
		}
		if found[dev] == nil {
			found[dev] = map[bool][]slot{}
		}
		found[dev][v6] = append(found[dev][v6], slot{n, addr})
	}
	for dev, fams := range found {
		var nic NICAddresses
		for _, v6 := range []bool{false, true} {
			s := fams[v6]
			slices.SortFunc(s, func(a, b slot) int { return a.n - b.n })
			var addrs []netip.Addr
			for _, x := range s {
				if len(addrs) < MaxAddressesPerNIC && !slices.Contains(addrs, x.addr) {
					addrs = append(addrs, x.addr)
				}
			}
			if v6 {
				nic.IPv6 = addrs
			} else {
				nic.IPv4 = addrs
			}
		}
		if r.NICs == nil {
			r.NICs = map[int]NICAddresses{}
		}
		r.NICs[dev] = nic
	}

	if major, ok := tree["attr/PVAddons/MajorVersion"]; ok {
		v := cleanGuestString(major, 16)
		for _, k := range []string{"MinorVersion", "MicroVersion"} {
			if p, ok := tree["attr/PVAddons/"+k]; ok {
				v += "." + cleanGuestString(p, 16)
			}
		}
		if b := cleanGuestString(tree["attr/PVAddons/BuildVersion"], 16); b != "" {
			v += "-" + b
		}
		if v == "" {
			v = "unknown"
		}
		r.AgentVersion = truncate(v, maxAgentVersionLen)
	}
	r.OS = cleanGuestString(tree["data/os_name"], maxGuestStringLength)
	r.Kernel = cleanGuestString(tree["data/os_uname"], maxGuestStringLength)
	if p, err := strconv.Atoi(strings.TrimSpace(tree["console/vnc-port"])); err == nil && p > 0 && p < 65536 {
		r.VNCPort = p
	}
	return r
}

// cleanGuestString keeps printable ASCII (a guest may write any bytes), collapses the rest to
// spaces, trims and bounds it.
func cleanGuestString(s string, max int) string {
	b := []byte(s)
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = ' '
		}
	}
	return truncate(strings.Join(strings.Fields(string(b)), " "), max)
}

func truncate(s string, max int) string {
	if len(s) > max {
		return s[:max]
	}
	return s
}
