package v1alpha1_test

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func namedClone(ns, name, uid string) *vmv1alpha1.VMClone {
	return &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)}}
}

// validDomainName is the CRD's rule for spec.domainName (common_types.go DomainName).
var validDomainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func TestDomainNameOf(t *testing.T) {
	const uidA, uidB = "1a2b3c4d-0000-4000-8000-000000000001", "5e6f7a8b-0000-4000-8000-000000000002"
	ns63 := strings.Repeat("n", 63)
	for _, tc := range []struct {
		name  string
		clone *vmv1alpha1.VMClone
		// want is the exact name; wantPrefix only its readable start.
		want, wantPrefix string
	}{
		{name: "default", clone: namedClone("default", "web-1", uidA), want: "xc-default-web-1-" + hashOf(uidA)},
		{name: "a-b/c", clone: namedClone("a-b", "c", uidA), want: "xc-a-b-c-" + hashOf(uidA)},
		{name: "a/b-c", clone: namedClone("a", "b-c", uidB), want: "xc-a-b-c-" + hashOf(uidB)},
		{name: "63-char namespace", clone: namedClone(ns63, "web", uidA), wantPrefix: "xc-" + ns63[:50]},
		{name: "63-char namespace and name", clone: namedClone(ns63, strings.Repeat("w", 63), uidA), wantPrefix: "xc-" + ns63[:50]},
		{name: "cut before a dash", clone: namedClone(strings.Repeat("n", 49), "web", uidA), want: "xc-" + strings.Repeat("n", 49) + "-" + hashOf(uidA)},
		{name: "spec.domainName", clone: func() *vmv1alpha1.VMClone {
			c := namedClone("ns", "x", uidA)
			c.Spec.DomainName = "my-vm"
			return c
		}(), want: "my-vm"},
		{name: "recorded name wins (a domain started under the old default)", clone: func() *vmv1alpha1.VMClone {
			c := namedClone("ns", "x", uidA)
			c.Spec.DomainName = "my-vm"
			c.Status.Domain = &vmv1alpha1.DomainStatus{Name: "xc-ns-x"}
			return c
		}(), want: "xc-ns-x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := vmv1alpha1.DomainNameOf(tc.clone)
			if tc.want != "" && got != tc.want {
				t.Errorf("DomainNameOf = %q, want %q", got, tc.want)
			}
			if !strings.HasPrefix(got, tc.wantPrefix) {
				t.Errorf("DomainNameOf = %q, want it to start %q", got, tc.wantPrefix)
			}
			if len(got) > vmv1alpha1.MaxDomainNameLength || !validDomainName.MatchString(got) || strings.Contains(got, "--") {
				t.Errorf("DomainNameOf = %q (%d chars): not a valid domain name of at most %d", got, len(got), vmv1alpha1.MaxDomainNameLength)
			}
			if tc.clone.Spec.DomainName == "" && tc.clone.Status.Domain == nil && !strings.HasSuffix(got, "-"+hashOf(string(tc.clone.UID))) {
				t.Errorf("DomainNameOf = %q lost the UID hash", got)
			}
			if again := vmv1alpha1.DomainNameOf(tc.clone.DeepCopy()); again != got {
				t.Errorf("not stable: %q then %q", got, again)
			}
		})
	}

	// The collision of the old default: a-b/c and a/b-c both joined to xc-a-b-c.
	if a, b := vmv1alpha1.DomainNameOf(namedClone("a-b", "c", uidA)), vmv1alpha1.DomainNameOf(namedClone("a", "b-c", uidB)); a == b {
		t.Errorf("a-b/c and a/b-c share domain name %q", a)
	}
	// Long names that share their first 50 characters stay apart by the hash.
	long := strings.Repeat("a", 200)
	if a, b := vmv1alpha1.DomainNameOf(namedClone("ns", long, uidA)), vmv1alpha1.DomainNameOf(namedClone("ns", long, uidB)); a == b {
		t.Errorf("long names collide: %q", a)
	}
	// A clone deleted and recreated under the same name gets a new domain name: a dying
	// domain of the old one cannot block the new one's start.
	if a, b := vmv1alpha1.DomainNameOf(namedClone("ns", "web", uidA)), vmv1alpha1.DomainNameOf(namedClone("ns", "web", uidB)); a == b {
		t.Errorf("a recreated clone reuses domain name %q", a)
	}
}

// hashOf is the first 10 hex digits of sha256(uid), worked out here independently.
func hashOf(uid string) string {
	sum := sha256.Sum256([]byte(uid))
	return hex.EncodeToString(sum[:])[:10]
}
