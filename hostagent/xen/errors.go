package xen

import (
	"errors"
	"fmt"
	"strings"

	"github.com/xenclone/xenclone/hostagent/command"
)

// Classified xl failures. Match them with errors.Is; the *command.Error underneath (errors.As)
// keeps the argument list, exit code and stderr for the user.
var (
	// ErrDomainExists: a domain with this name already exists (possibly a dying one, which
	// still holds the name). xl exits 3 with `Domain with name "X" already exists.`
	ErrDomainExists = errors.New("domain name already in use")
	// ErrNoMemory: the host has not enough free memory for the domain.
	ErrNoMemory = errors.New("not enough free host memory")
	// ErrNoSuchDomain: no domain by that name or id (`X is an invalid domain identifier (rc=-6)`).
	ErrNoSuchDomain = errors.New("no such domain")
	// ErrMissingBridge: a vif names a bridge that does not exist in dom0 (the vif-bridge hotplug
	// script failed with "Could not find bridge device X").
	ErrMissingBridge = errors.New("network bridge missing")
	// ErrDeviceSetup: libxl could not attach one of the domain's devices: a hotplug script
	// (/etc/xen/scripts/block, vif-bridge…) failed or was killed after libxl's timeout. The
	// domain was not created; the script's own message, if any, is in the stderr.
	ErrDeviceSetup = errors.New("domain device setup failed")
	// ErrBadConfig: xl refused the config file (syntax, unknown type, missing name, unreadable
	// file, bad disk or vif spec).
	ErrBadConfig = errors.New("xl rejected the domain config")
	// ErrShutdownNotAcknowledged: the guest did not acknowledge the shutdown/reboot request in
	// time (xl waits up to 60 s, or the caller's context ended first). The request stays posted
	// in xenstore; the guest may still act on it.
	ErrShutdownNotAcknowledged = errors.New("guest did not acknowledge the shutdown request")
	// ErrNoPVControl: the guest (HVM without PV drivers) has no PV control interface, so a
	// graceful shutdown is not possible; destroy it.
	ErrNoPVControl = errors.New("guest has no PV control interface")
	// ErrNotOwned: a domain by that name exists but does not carry the expected UUID, so the
	// agent must not touch it.
	ErrNotOwned = errors.New("domain not owned by this clone")
)

// Error is a failed xl operation.
type Error struct {
	// Op is the xl subcommand (create, shutdown, destroy, list, info…).
	Op string
	// Domain is the domain name or config path the operation was about.
	Domain string
	// Kind is one of the Err* values above, or nil when the failure is not classified.
	Kind error
	// Err is the underlying error, usually a *command.Error.
	Err error
}

func (e *Error) Error() string {
	if e.Kind != nil {
		return fmt.Sprintf("xl %s %s: %v: %v", e.Op, e.Domain, e.Kind, e.Err)
	}
	return fmt.Sprintf("xl %s %s: %v", e.Op, e.Domain, e.Err)
}

// Unwrap exposes both the classification and the command error.
func (e *Error) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// classifyRules map stderr texts printed by xl and libxl (xen tools/xl, tools/libs/light,
// tools/hotplug) to a classification. First match wins, so specific texts come first.
var classifyRules = []struct {
	text string
	kind error
}{
	// Failed creates also print libxl's clean-up lines ("Non-existant domain", "Unable to
	// destroy guest"), so the create-specific causes are matched before ErrNoSuchDomain.
	{`Domain with name`, ErrDomainExists},                                    // libxl__domain_rename: ... already exists.
	{`Could not find bridge`, ErrMissingBridge},                              // hotplug vif-bridge
	{`can't allocate low memory`, ErrNoMemory},                               // xc_dom_boot_mem_init
	{`failed to free memory for the domain`, ErrNoMemory},                    // xl freemem (autoballoon)
	{`Could not allocate memory for HVM guest`, ErrNoMemory},                 // xc hvm build
	{`Cannot allocate memory`, ErrNoMemory},                                  // strerror(ENOMEM)
	{`Out of memory`, ErrNoMemory},                                           // xc panic text
	{`killing execution of`, ErrDeviceSetup},                                 // libxl async_exec_timeout: hotplug script killed
	{`unable to add `, ErrDeviceSetup},                                       // libxl_create.c: "unable to add %s devices"
	{`to execute hotplug script`, ErrDeviceSetup},                            // libxl_device.c: script could not be started
	{`config parsing error`, ErrBadConfig},                                   // libxlu cfg/disk/vif
	{`Failed to parse config`, ErrBadConfig},                                 // xl_parse
	{`Failed to read config file`, ErrBadConfig},                             // xl create
	{`Invalid domain type`, ErrBadConfig},                                    // xl_parse
	{`Domain name must be specified`, ErrBadConfig},                          // xl_parse
	{`Failed to parse UUID`, ErrBadConfig},                                   // xl_parse
	{`guest didn't acknowledge control request`, ErrShutdownNotAcknowledged}, // pvcontrol_cb
	{`PV control interface not available`, ErrNoPVControl},                   // xl shutdown/reboot
	{`is an invalid domain identifier`, ErrNoSuchDomain},                     // xl find_domain
	{`Can't get domid of domain name`, ErrNoSuchDomain},                      // xl domid
	{`does not exist.`, ErrNoSuchDomain},                                     // xl list <id>
	{`Non-existant domain`, ErrNoSuchDomain},                                 // libxl__destroy_domid (sic)
}

// classify wraps a failed xl run into an *Error with its Kind.
func classify(op, domain string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Domain: domain, Err: err}
	var ce *command.Error
	if !errors.As(err, &ce) {
		return e
	}
	for _, r := range classifyRules {
		// A failed create prints libxl's clean-up of the half-built domain ("Non-existant
		// domain", "Unable to destroy guest") after its cause; a create is never "no such
		// domain", even when the cause is a text not listed here.
		if op == "create" && r.kind == ErrNoSuchDomain {
			continue
		}
		if strings.Contains(ce.Stderr, r.text) {
			e.Kind = r.kind
			return e
		}
	}
	// Every config-parsing failure of xl_parse.c exits 1 with its own message, after xl printed
	// "Parsing config from <file>"; the other create failures return a negated libxl error
	// (3, 6…). Requiring the line keeps a failure of the command prefix (nsenter exits 1 too)
	// from passing for a bad config.
	if op == "create" && ce.ExitCode == 1 && strings.Contains(ce.Stderr, "Parsing config from") {
		e.Kind = ErrBadConfig
	}
	return e
}
