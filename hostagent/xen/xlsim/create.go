package xlsim

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/xenclone/xenclone/hostagent/xen/xlcfg"
)

// The libxl log lines below reproduce the texts, the "libxl: error: <file>:<line>:<func>: " shape
// and the line numbers of Xen's stable-4.17 sources (tools/libs/light, tools/libs/guest,
// tools/xl). Line numbers differ between releases: callers must match the messages only.

// parsedConfig is what create takes from an xl.cfg.
type parsedConfig struct {
	name, uuid, typ                      string
	memMiB, maxMemMiB                    int64
	vcpus, maxVCPUs                      int
	kernel, ramdisk, cmdline, bootloader string
	disks                                []xlcfg.Disk
	vifs                                 []map[string]string
	vnc                                  bool
	policy                               map[string]string
}

// exitErr is an xl failure: what to print on stderr and the exit status.
type exitErr struct {
	code int
	msg  string
}

func fail(code int, format string, args ...any) *exitErr {
	return &exitErr{code: code, msg: fmt.Sprintf(format, args...)}
}

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

var validActions = map[string]bool{"destroy": true, "restart": true, "rename-restart": true, "preserve": true,
	"coredump-destroy": true, "coredump-restart": true, "soft-reset": true}

// parseConfig reads an xl.cfg the way xl_parse.c does for the keys we support. Errors carry xl's
// messages and exit status 1.
func parseConfig(source string, data []byte) (*parsedConfig, *exitErr) {
	f, err := xlcfg.Parse(data)
	if err != nil {
		msg := err.Error()
		if se, ok := err.(*xlcfg.SyntaxError); ok {
			msg = se.Format(source)
		}
		return nil, fail(1, "%s\nFailed to parse config: Invalid argument\n", msg)
	}
	c := &parsedConfig{typ: "pv", vcpus: 1, memMiB: 32, policy: map[string]string{
		"on_poweroff": "destroy", "on_reboot": "restart", "on_crash": "destroy",
		"on_watchdog": "destroy", "on_soft_reset": "soft-reset"}}
	str := func(key string) string { s, _ := f.String(key); return s }
	num := func(key string) (int64, bool, *exitErr) {
		v, ok := f.Get(key)
		if !ok {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(v.Str, 0, 64)
		if err != nil || v.IsList {
			return 0, false, fail(1, "Failed to parse config: %s: %q is not a number\n", key, v.Str)
		}
		return n, true, nil
	}
	if t, ok := f.String("type"); ok {
		switch t {
		case "pv", "pvh", "hvm":
			c.typ = t
		default:
			return nil, fail(1, "Invalid domain type %s.\n", t)
		}
	}
	if c.name = str("name"); c.name == "" {
		return nil, fail(1, "Domain name must be specified.\n")
	}
	if u, ok := f.String("uuid"); ok {
		if !uuidRE.MatchString(u) {
			return nil, fail(1, "Failed to parse UUID: %s\n", u)
		}
		c.uuid = strings.ToLower(u)
	} else {
		c.uuid = newUUID()
	}
	if n, ok, e := num("memory"); e != nil {
		return nil, e
	} else if ok {
		c.memMiB = n
	}
	c.maxMemMiB = c.memMiB
	if n, ok, e := num("maxmem"); e != nil {
		return nil, e
	} else if ok {
		c.maxMemMiB = n
	}
	if c.maxMemMiB < c.memMiB {
		c.maxMemMiB = c.memMiB
	}
	if n, ok, e := num("vcpus"); e != nil {
		return nil, e
	} else if ok {
		c.vcpus = int(n)
	}
	c.maxVCPUs = c.vcpus
	if n, ok, e := num("maxvcpus"); e != nil {
		return nil, e
	} else if ok {
		c.maxVCPUs = int(n)
	}
	c.kernel, c.ramdisk, c.cmdline, c.bootloader = str("kernel"), str("ramdisk"), str("cmdline"), str("bootloader")
	if disks, ok := f.StringList("disk"); ok {
		for _, spec := range disks {
			d, err := xlcfg.ParseDisk(spec)
			if err != nil {
				return nil, fail(1, "%s: config parsing error in disk specification: %v\n", source, err)
			}
			c.disks = append(c.disks, d)
		}
	}
	if vifs, ok := f.StringList("vif"); ok {
		for _, spec := range vifs {
			v, err := xlcfg.ParseVif(spec)
			if err != nil {
				return nil, fail(1, "%s: config parsing error in vif: %v in `%s'\n", source, err, spec)
			}
			c.vifs = append(c.vifs, v)
		}
	}
	if c.typ == "hvm" {
		if v, ok := f.Get("vnc"); !ok || v.Str != "0" {
			c.vnc = true // HVM's emulated display has VNC on unless vnc=0
		}
	} else if vfbs, ok := f.StringList("vfb"); ok {
		for _, spec := range vfbs {
			if strings.Contains(spec, "vnc=1") {
				c.vnc = true
			}
		}
	}
	for _, key := range []string{"on_poweroff", "on_reboot", "on_crash", "on_watchdog", "on_soft_reset"} {
		if a, ok := f.String(key); ok {
			if !validActions[a] {
				return nil, fail(1, "Unknown %s \"%s\" specified\n", key, a)
			}
			c.policy[key] = a
		}
	}
	return c, nil
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomMAC picks 00:16:3e plus random bits, as libxl does for a vif without mac=.
func randomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("00:16:3e:%02x:%02x:%02x", b[0]&0x7f, b[1], b[2])
}

// libxlJSONAction is libxl's JSON spelling of an xl.cfg action.
func libxlJSONAction(a string) string {
	switch a {
	case "rename-restart":
		return "restart_rename"
	default:
		return strings.ReplaceAll(a, "-", "_")
	}
}

// storedConfig builds the libxl_domain_config JSON `xl list -l` prints: the field order of
// libxl_types.idl, defaults left out as libxl's generator does.
func (c *parsedConfig) storedConfig() json.RawMessage {
	type obj = orderedObject
	cinfo := obj{{"type", c.typ}, {"name", c.name}, {"uuid", c.uuid}, {"run_hotplug_scripts", "True"}}
	avail := make([]int, c.vcpus)
	for i := range avail {
		avail[i] = i
	}
	binfo := obj{{"max_vcpus", c.maxVCPUs}, {"avail_vcpus", avail},
		{"max_memkb", c.maxMemMiB * 1024}, {"target_memkb", c.memMiB * 1024},
		{"sched_params", obj{}}, {"claim_mode", "True"}}
	for _, kv := range [][2]string{{"kernel", c.kernel}, {"cmdline", c.cmdline}, {"ramdisk", c.ramdisk}, {"bootloader", c.bootloader}} {
		if kv[1] != "" {
			binfo = append(binfo, field{kv[0], kv[1]})
		}
	}
	switch c.typ {
	case "hvm":
		u := obj{}
		if c.vnc {
			u = append(u, field{"vnc", obj{{"enable", "True"}, {"listen", "127.0.0.1"}}})
		} else {
			u = append(u, field{"vnc", obj{{"enable", "False"}}})
		}
		binfo = append(binfo, field{"type.hvm", u})
	default:
		binfo = append(binfo, field{"type." + c.typ, obj{}})
	}
	var disks []any
	for _, d := range c.disks {
		o := obj{{"pdev_path", d.Target}, {"vdev", d.Vdev}, {"backend", "phy"}, {"format", d.Format}}
		if !d.ReadOnly() {
			o = append(o, field{"readwrite", 1})
		}
		disks = append(disks, o)
	}
	var nics []any
	for i, v := range c.vifs {
		mac := v["mac"]
		if mac == "" {
			mac = randomMAC()
		}
		bridge := v["bridge"]
		if bridge == "" {
			bridge = "xenbr0"
		}
		nics = append(nics, obj{{"devid", i}, {"mac", mac}, {"bridge", bridge}, {"script", "vif-bridge"}, {"nictype", "vif"}})
	}
	cfg := obj{{"c_info", cinfo}, {"b_info", binfo}}
	if len(disks) > 0 {
		cfg = append(cfg, field{"disks", disks})
	}
	if len(nics) > 0 {
		cfg = append(cfg, field{"nics", nics})
	}
	if c.vnc && c.typ != "hvm" {
		cfg = append(cfg, field{"vfbs", []any{obj{{"devid", 0}, {"vnc", obj{{"enable", "True"}, {"listen", "127.0.0.1"}}}, {"sdl", obj{{"enable", "False"}}}}}})
	}
	for _, key := range []string{"on_poweroff", "on_reboot", "on_watchdog", "on_crash", "on_soft_reset"} {
		if a := c.policy[key]; a != "destroy" {
			cfg = append(cfg, field{key, libxlJSONAction(a)})
		}
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return out
}

// field and orderedObject keep JSON keys in libxl's order.
type field struct {
	k string
	v any
}
type orderedObject []field

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.k)
		v, err := json.Marshal(f.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

type createOpts struct {
	config      string
	extra       []string
	monitor     bool
	paused      bool
	quiet       bool
	dryrun      bool
	ignoreFlags bool
}

func (s *sim) create(args []string) int {
	o := createOpts{monitor: true}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") && !strings.Contains(args[0], "=") {
		o.config, args = args[0], args[1:]
	}
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-e":
			o.monitor = false
		case a == "-p":
			o.paused = true
		case a == "-q" || a == "--quiet":
			o.quiet = true
		case a == "-n" || a == "--dryrun":
			o.dryrun = true
		case a == "-F", a == "-c", a == "-d", a == "-V", a == "-A", a == "-i":
			// foreground/console/debug/vnc viewer: nothing to simulate
		case a == "-f" || a == "--defconfig":
			if i+1 >= len(args) {
				return s.usage("create")
			}
			o.config = args[i+1]
			i++
		case strings.HasPrefix(a, "-") && len(a) > 1:
			return s.usage("create")
		default:
			rest = append(rest, a)
		}
	}
	for _, a := range rest {
		switch {
		case strings.Contains(a, "="):
			o.extra = append(o.extra, a)
		case o.config == "":
			o.config = a
		default:
			s.usage("create")
			return 2
		}
	}
	if o.config == "" {
		fmt.Fprint(s.stderr, "Config file not specified and none in save file\n")
		return 6
	}
	data, err := os.ReadFile(o.config)
	if err != nil {
		fmt.Fprintf(s.stderr, "Failed to read config file: %s: %s\n", o.config, errnoText(err))
		return 3
	}
	if len(o.extra) > 0 {
		data = append(data, []byte("\n"+strings.Join(o.extra, "\n")+"\n")...)
	}
	if !o.quiet {
		fmt.Fprintf(s.stderr, "Parsing config from %s\n", o.config)
	}
	cfg, perr := parseConfig(o.config, data)
	if perr != nil {
		fmt.Fprint(s.stderr, perr.msg)
		return perr.code
	}
	if o.dryrun || s.dryrun {
		out, _ := indentYAJL(cfg.storedConfig())
		fmt.Fprintln(s.stdout, string(out))
		return 0
	}

	var result *exitErr
	abort := false
	err = s.store.locked(s.now(), func(h *host) (bool, error) {
		mode := h.takeFailure("create")
		switch mode {
		case "error":
			result = fail(3, "libxl: error: xlsim: injected failure of create\n")
			return true, nil
		case "abort":
			abort = true
		}
		result = s.createLocked(h, cfg, data, o, mode == "nomem")
		return true, nil
	})
	if err != nil {
		fmt.Fprintf(s.stderr, "xlsim: %v\n", err)
		return 1
	}
	if result != nil {
		fmt.Fprint(s.stderr, result.msg)
		return result.code
	}
	if abort {
		// Seen on real xl 4.17 in the lab: SIGABRT after the domain was created.
		return 134
	}
	return 0
}

func errnoText(err error) string {
	switch {
	case os.IsNotExist(err):
		return "No such file or directory"
	case os.IsPermission(err):
		return "Permission denied"
	}
	return err.Error()
}

// createLocked is the part of create that must be atomic with respect to other xl processes:
// the name check, the memory check and the insertion.
func (s *sim) createLocked(h *host, cfg *parsedConfig, data []byte, o createOpts, forceNoMem bool) *exitErr {
	now := s.now()
	if h.Knobs.Autoballoon && (forceNoMem || cfg.memMiB > h.freeMiB()) {
		return fail(3, "failed to free memory for the domain\n")
	}
	// libxl creates the domain (and so uses up a domid) before it names it or builds it.
	domid := h.allocDomID()
	for _, d := range h.Domains {
		if h.visibleName(d) == cfg.name {
			return fail(3, "libxl: error: libxl_domain.c:81:libxl__domain_rename: Domain %d:Domain with name \"%s\" already exists.\n"+
				"libxl: error: libxl_create.c:1294:initiate_domain_create: Domain %d:cannot make domain: -6\n", domid, cfg.name, domid)
		}
	}
	if forceNoMem || cfg.memMiB > h.freeMiB() {
		// PV, PVH and HVM guests all allocate through xc_dom_boot_mem_init in 4.17.
		return fail(3, "xc: error: panic: xg_dom_boot.c:119: xc_dom_boot_mem_init: can't allocate low memory for domain: Out of memory\n"+
			"libxl: error: libxl_dom.c:586:libxl__build_dom: xc_dom_boot_mem_init failed: Cannot allocate memory\n"+
			"libxl: error: libxl_create.c:1638:domcreate_rebuild_done: Domain %d:cannot (re-)build domain: -3\n"+
			"libxl: error: libxl_domain.c:1183:libxl__destroy_domid: Domain %d:Non-existant domain\n"+
			"libxl: error: libxl_domain.c:1137:domain_destroy_callback: Domain %d:Unable to destroy guest\n"+
			"libxl: error: libxl_domain.c:1064:domain_destroy_cb: Domain %d:Destruction of domain failed\n", domid, domid, domid, domid)
	}
	if h.Knobs.CheckDisks {
		for _, d := range cfg.disks {
			if _, err := os.Stat(d.Target); err != nil {
				h.NextPID++
				return fail(3, "libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: /etc/xen/scripts/block add [%d] exited with error status 1\n"+
					"libxl: error: libxl_device.c:1337:device_hotplug_child_death_cb: script: %s does not exist.\n"+
					"libxl: error: libxl_create.c:1919:domcreate_attach_devices: Domain %d:unable to add disk devices\n", h.NextPID, d.Target, domid)
			}
		}
	}
	for _, v := range cfg.vifs {
		bridge := v["bridge"]
		if bridge == "" {
			bridge = "xenbr0"
		}
		if !contains(h.Bridges, bridge) {
			h.NextPID++
			return fail(3, "libxl: error: libxl_exec.c:117:libxl_report_child_exitstatus: /etc/xen/scripts/vif-bridge online [%d] exited with error status 1\n"+
				"libxl: error: libxl_device.c:1337:device_hotplug_child_death_cb: script: Could not find bridge device %s\n"+
				"libxl: error: libxl_create.c:1919:domcreate_attach_devices: Domain %d:unable to add vif devices\n", h.NextPID, bridge, domid)
		}
	}
	h.Domains = append(h.Domains, &domain{
		DomID: domid, Name: cfg.name, UUID: cfg.uuid, Type: cfg.typ,
		MemMiB: cfg.memMiB, MaxMemMiB: cfg.maxMemMiB, VCPUs: cfg.vcpus, MaxVCPUs: cfg.maxVCPUs,
		Monitored: o.monitor, Created: now, Paused: o.paused, Guest: h.Knobs.GuestDefault,
		ConfigPath: o.config, ConfigData: string(data), Policy: cfg.policy, Config: cfg.storedConfig(),
		Cmdline: cfg.cmdline, NICs: simNICs(cfg.vifs), VNCPort: vncPort(cfg.vnc, domid),
	})
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
