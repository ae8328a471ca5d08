package controllers

import (
	"fmt"
	"strings"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// xenOUI is Xen's own MAC prefix; allocated MACs are 00:16:3e plus three random bytes.
const xenOUI = "00:16:3e"

// macDrawAttempts bounds re-draws on collision. With 3 random bytes the odds of 32 collisions
// in a row stay negligible until the OUI holds millions of clones.
const macDrawAttempts = 32

// MACConflictError says a pinned MAC is already used by another clone.
type MACConflictError struct {
	NIC   int
	MAC   string
	Owner string
}

func (e *MACConflictError) Error() string {
	return fmt.Sprintf("spec.nics[%d].mac %s is already used by VMClone %s: pin another MAC or remove it to get one allocated", e.NIC, e.MAC, e.Owner)
}

// MACInUse reports the clone (namespace/name) holding mac, or "" when it is free.
type MACInUse func(mac string) (owner string)

// AllocateInterfaces returns one interface per NIC: the MAC already allocated to that NIC is
// kept (identity survives resets and restarts), a pinned MAC is used once checked free, and a
// missing one is drawn at random in 00:16:3e and re-drawn while inUse says it is taken.
// draw returns three random bytes. Newly drawn MACs are passed to claim so concurrent
// allocations see them before the cache does.
func AllocateInterfaces(nics []vmv1alpha1.NIC, current []vmv1alpha1.InterfaceStatus, inUse MACInUse, draw func() [3]byte, claim func(mac string)) ([]vmv1alpha1.InterfaceStatus, error) {
	out := make([]vmv1alpha1.InterfaceStatus, 0, len(nics))
	for i, nic := range nics {
		iface := vmv1alpha1.InterfaceStatus{Index: int32(i), Bridge: nic.Bridge}
		if iface.Bridge == "" {
			iface.Bridge = vmv1alpha1.DefaultBridge
		}
		var have string
		if i < len(current) {
			have = current[i].MAC
		}
		switch {
		case nic.MAC != "":
			pinned := strings.ToLower(nic.MAC)
			if pinned != have {
				if owner := inUse(pinned); owner != "" {
					return nil, &MACConflictError{NIC: i, MAC: pinned, Owner: owner}
				}
				claim(pinned)
			}
			iface.MAC = pinned
		case have != "":
			iface.MAC = have
		default:
			mac, err := drawMAC(inUse, draw, out)
			if err != nil {
				return nil, fmt.Errorf("nic %d: %w", i, err)
			}
			claim(mac)
			iface.MAC = mac
		}
		out = append(out, iface)
	}
	return out, nil
}

func drawMAC(inUse MACInUse, draw func() [3]byte, taken []vmv1alpha1.InterfaceStatus) (string, error) {
next:
	for range macDrawAttempts {
		b := draw()
		mac := fmt.Sprintf("%s:%02x:%02x:%02x", xenOUI, b[0], b[1], b[2])
		for _, t := range taken {
			if t.MAC == mac {
				continue next
			}
		}
		if inUse(mac) == "" {
			return mac, nil
		}
	}
	return "", fmt.Errorf("no free MAC in %s after %d draws", xenOUI, macDrawAttempts)
}

// cloneNICs, cloneHostname and hostnameLabel keep the names the clone and pool reconcilers
// call, so the agent and the controller read one resolution (vmv1alpha1.Effective).
// ensureIdentity asks for the host name only while status.hostname is empty, so Effective's
// preference for the recorded name does not make it sticky on a stale value.
func cloneNICs(clone *vmv1alpha1.VMClone, tmpl *vmv1alpha1.VMTemplate) []vmv1alpha1.NIC {
	return vmv1alpha1.Effective(clone, tmpl).NICs
}

func cloneHostname(clone *vmv1alpha1.VMClone) string {
	return vmv1alpha1.Effective(clone, nil).Hostname
}

func hostnameLabel(name string) string { return vmv1alpha1.HostnameLabel(name) }
