package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Xen domain names. A domain name is unique on a host (xl refuses a second domain of the same
// name) and the controller keeps it unique across the cluster, so a clone can move hosts
// without meeting a namesake. The default, xc-<namespace>-<name>-<hash>, reads as the clone's
// and is unique by construction: the hash is of the clone's UID, so "a-b/c" and "a/b-c" (both
// "a-b-c" once joined) and a clone recreated under the same name all get different names.
const (
	// MaxDomainNameLength is the longest domain name xenclone writes or accepts (the CRD's
	// spec.domainName limit; xl itself takes longer names, but consoles and logs are named
	// after the domain).
	MaxDomainNameLength = 64
	// domainNamePrefix keeps default names clear of all-digit names (xl reads those as domain
	// ids) and marks them as xenclone's.
	domainNamePrefix = "xc-"
	// domainHashLen hex digits of sha256(UID): 40 bits. Only clones whose readable part is
	// the same could ever collide on it, and the controller refuses a taken name anyway.
	domainHashLen = 10
)

// DomainNameOf is the Xen domain name of a clone, the one answer for the controller and the
// host agent: the name the host agent recorded (status.domain.name), so a clone keeps the
// name its domain runs under across upgrades that change the default; else spec.domainName;
// else DefaultDomainName.
func DomainNameOf(c *VMClone) string {
	if d := c.Status.Domain; d != nil && d.Name != "" {
		return d.Name
	}
	if c.Spec.DomainName != "" {
		return string(c.Spec.DomainName)
	}
	return DefaultDomainName(c)
}

// DefaultDomainName is xc-<namespace>-<name>-<10 hex digits of sha256(UID)>, with the
// <namespace>-<name> part cut so the whole fits MaxDomainNameLength; the hash is always kept.
func DefaultDomainName(c *VMClone) string {
	sum := sha256.Sum256([]byte(c.UID))
	suffix := "-" + hex.EncodeToString(sum[:])[:domainHashLen]
	readable := c.Namespace + "-" + c.Name
	if room := MaxDomainNameLength - len(domainNamePrefix) - len(suffix); len(readable) > room {
		// No "--" or ".-" where the cut meets the hash.
		readable = strings.TrimRight(readable[:room], "-.")
	}
	return domainNamePrefix + readable + suffix
}
