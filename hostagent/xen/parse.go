package xen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// DomainInfo is one row of `xl list`.
type DomainInfo struct {
	// Name is the domain name. While a domain is torn down xl may no longer find its name and
	// prints "(null)" (glibc's rendering of a NULL %s); such rows have a Dying state.
	Name       string
	ID         int
	MemoryMiB  int64
	VCPUs      int
	State      RunState
	CPUSeconds float64
}

// ParseList parses the plain `xl list` table (xl_info.c list_domains, row format
// "%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f"). Each row is read from the right: the last five
// fields are fixed-format numbers and the state, and everything before them is the name, which
// may be longer than 40 characters and then shifts every column.
func ParseList(out []byte) ([]DomainInfo, error) {
	var doms []DomainInfo
	for i, raw := range strings.Split(string(out), "\n") {
		line := strings.TrimRight(raw, " \t\r")
		if line == "" {
			continue
		}
		if i == 0 && strings.HasPrefix(line, "Name") && strings.Contains(line, "State") {
			continue
		}
		d, err := parseListRow(line)
		if err != nil {
			return nil, fmt.Errorf("xl list line %d %q: %w", i+1, line, err)
		}
		doms = append(doms, d)
	}
	return doms, nil
}

// lastField splits s (no trailing blanks) into what comes before its last blank-separated field
// (right-trimmed) and that field.
func lastField(s string) (rest, field string) {
	i := strings.LastIndexAny(s, " \t")
	if i < 0 {
		return "", s
	}
	return strings.TrimRight(s[:i], " \t"), s[i+1:]
}

func parseListRow(line string) (DomainInfo, error) {
	var f [5]string
	rest := line
	for k := 4; k >= 0; k-- {
		rest, f[k] = lastField(rest)
		if f[k] == "" {
			return DomainInfo{}, fmt.Errorf("want name, ID, Mem, VCPUs, State, Time(s)")
		}
	}
	var d DomainInfo
	var err error
	d.Name = rest
	if d.ID, err = strconv.Atoi(f[0]); err != nil || d.ID < 0 {
		return DomainInfo{}, fmt.Errorf("ID %q is not a domain id", f[0])
	}
	if d.MemoryMiB, err = strconv.ParseInt(f[1], 10, 64); err != nil || d.MemoryMiB < 0 {
		return DomainInfo{}, fmt.Errorf("Mem %q is not a size in MiB", f[1])
	}
	if d.VCPUs, err = strconv.Atoi(f[2]); err != nil || d.VCPUs < 0 {
		return DomainInfo{}, fmt.Errorf("VCPUs %q is not a count", f[2])
	}
	if d.State, err = ParseState(f[3]); err != nil {
		return DomainInfo{}, err
	}
	if d.CPUSeconds, err = strconv.ParseFloat(f[4], 64); err != nil || d.CPUSeconds < 0 {
		return DomainInfo{}, fmt.Errorf("Time(s) %q is not a number of seconds", f[4])
	}
	if d.Name == "" {
		return DomainInfo{}, fmt.Errorf("empty domain name")
	}
	return d, nil
}

// DomainDetail is one domain of `xl list -l`: its stored libxl configuration. It has no run
// state (xl does not report one there); join it with ParseList by domid.
type DomainDetail struct {
	// DomID is -1 when xl printed null (a config not bound to a domain).
	DomID        int
	Name         string
	UUID         string
	Type         GuestType
	MaxMemoryKiB int64
	MemoryKiB    int64
	MaxVCPUs     int
	Bootloader   string
	Kernel       string
	Ramdisk      string
	Cmdline      string
	Disks        []Disk
	VIFs         []VIF
	Policy       LifecyclePolicy
}

type jsonDomain struct {
	DomID  *int `json:"domid"`
	Config struct {
		CInfo struct {
			Type string `json:"type"`
			Name string `json:"name"`
			UUID string `json:"uuid"`
		} `json:"c_info"`
		BInfo struct {
			MaxVCPUs    int    `json:"max_vcpus"`
			MaxMemKB    int64  `json:"max_memkb"`
			TargetMemKB int64  `json:"target_memkb"`
			Kernel      string `json:"kernel"`
			Ramdisk     string `json:"ramdisk"`
			Cmdline     string `json:"cmdline"`
			Bootloader  string `json:"bootloader"`
			// Before Xen 4.10 the PV boot fields lived in the type union.
			PV struct {
				Kernel     string `json:"kernel"`
				Ramdisk    string `json:"ramdisk"`
				Cmdline    string `json:"cmdline"`
				Bootloader string `json:"bootloader"`
			} `json:"type.pv"`
		} `json:"b_info"`
		Disks []struct {
			PdevPath  string `json:"pdev_path"`
			Vdev      string `json:"vdev"`
			Readwrite int    `json:"readwrite"`
		} `json:"disks"`
		Nics []struct {
			MAC    string `json:"mac"`
			Bridge string `json:"bridge"`
		} `json:"nics"`
		OnPoweroff string `json:"on_poweroff"`
		OnReboot   string `json:"on_reboot"`
		OnCrash    string `json:"on_crash"`
	} `json:"config"`
}

// libxlAction maps libxl's JSON spelling of libxl_action_on_shutdown to the xl.cfg spelling. An
// omitted field is libxl's init value, destroy (libxl's JSON generator leaves out defaults).
func libxlAction(s string) (LifecycleAction, error) {
	switch s {
	case "", "destroy":
		return ActionDestroy, nil
	case "restart":
		return ActionRestart, nil
	case "restart_rename":
		return ActionRenameRestart, nil
	case "preserve":
		return ActionPreserve, nil
	case "coredump_destroy":
		return ActionCoredumpDestroy, nil
	case "coredump_restart":
		return ActionCoredumpRestart, nil
	case "soft_reset":
		// Only xl's monitor can soft-reset; the agent restarts instead.
		return ActionRestart, nil
	}
	return "", fmt.Errorf("unknown lifecycle action %q", s)
}

// ParseListLong parses `xl list -l` JSON output (an array of {"domid":N,"config":{…}}).
func ParseListLong(out []byte) ([]DomainDetail, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	var raw []jsonDomain
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("xl list -l: %w", err)
	}
	doms := make([]DomainDetail, 0, len(raw))
	for i, r := range raw {
		c := r.Config
		d := DomainDetail{
			DomID:        -1,
			Name:         c.CInfo.Name,
			UUID:         c.CInfo.UUID,
			Type:         GuestType(c.CInfo.Type),
			MaxMemoryKiB: c.BInfo.MaxMemKB,
			MemoryKiB:    c.BInfo.TargetMemKB,
			MaxVCPUs:     c.BInfo.MaxVCPUs,
			Bootloader:   firstNonEmpty(c.BInfo.Bootloader, c.BInfo.PV.Bootloader),
			Kernel:       firstNonEmpty(c.BInfo.Kernel, c.BInfo.PV.Kernel),
			Ramdisk:      firstNonEmpty(c.BInfo.Ramdisk, c.BInfo.PV.Ramdisk),
			Cmdline:      firstNonEmpty(c.BInfo.Cmdline, c.BInfo.PV.Cmdline),
		}
		if r.DomID != nil {
			d.DomID = *r.DomID
		}
		if d.Name == "" {
			return nil, fmt.Errorf("xl list -l: entry %d has no c_info.name", i)
		}
		for _, disk := range c.Disks {
			d.Disks = append(d.Disks, Disk{Target: disk.PdevPath, Vdev: disk.Vdev, ReadOnly: disk.Readwrite == 0})
		}
		for _, nic := range c.Nics {
			d.VIFs = append(d.VIFs, VIF{MAC: nic.MAC, Bridge: nic.Bridge})
		}
		var err error
		if d.Policy.OnPoweroff, err = libxlAction(c.OnPoweroff); err != nil {
			return nil, fmt.Errorf("xl list -l: %s on_poweroff: %w", d.Name, err)
		}
		if d.Policy.OnReboot, err = libxlAction(c.OnReboot); err != nil {
			return nil, fmt.Errorf("xl list -l: %s on_reboot: %w", d.Name, err)
		}
		if d.Policy.OnCrash, err = libxlAction(c.OnCrash); err != nil {
			return nil, fmt.Errorf("xl list -l: %s on_crash: %w", d.Name, err)
		}
		doms = append(doms, d)
	}
	return doms, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// HostInfo is what the agent needs from `xl info`. Memory is in MiB, as xl prints it.
type HostInfo struct {
	Host           string
	NrCPUs         int
	FreeCPUs       int
	TotalMemoryMiB int64
	// FreeMemoryMiB already excludes outstanding claims.
	FreeMemoryMiB        int64
	OutstandingClaimsMiB int64
	XenVersion           string
	XenCaps              string
	// Fields holds every "key : value" line, for what the typed fields do not cover.
	Fields map[string]string
}

// ParseInfo parses `xl info` ("key<padding>: value" lines, xl_info.c). total_memory,
// free_memory, nr_cpus and xen_version are required.
func ParseInfo(out []byte) (HostInfo, error) {
	info := HostInfo{Fields: map[string]string{}}
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" || strings.ContainsAny(k, " \t") {
			continue // numa/topology table rows, not key lines
		}
		if _, dup := info.Fields[k]; !dup {
			info.Fields[k] = strings.TrimSpace(v)
		}
	}
	num := func(key string, required bool) (int64, error) {
		s, ok := info.Fields[key]
		if !ok {
			if required {
				return 0, fmt.Errorf("xl info: no %s", key)
			}
			return 0, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("xl info: %s %q is not a count", key, s)
		}
		return n, nil
	}
	var err error
	if info.TotalMemoryMiB, err = num("total_memory", true); err != nil {
		return HostInfo{}, err
	}
	if info.FreeMemoryMiB, err = num("free_memory", true); err != nil {
		return HostInfo{}, err
	}
	if info.OutstandingClaimsMiB, err = num("outstanding_claims", false); err != nil {
		return HostInfo{}, err
	}
	n, err := num("nr_cpus", true)
	if err != nil {
		return HostInfo{}, err
	}
	info.NrCPUs = int(n)
	if n, err = num("free_cpus", false); err != nil {
		return HostInfo{}, err
	}
	info.FreeCPUs = int(n)
	info.XenVersion = info.Fields["xen_version"]
	if info.XenVersion == "" {
		return HostInfo{}, fmt.Errorf("xl info: no xen_version")
	}
	info.Host = info.Fields["host"]
	info.XenCaps = info.Fields["xen_caps"]
	return info, nil
}
