package v1alpha1_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/xenclone/xenclone/hack/testenv"
)

// Valid base manifests; each case edits one of them into something the API server must refuse.
const (
	baseTemplate = `
apiVersion: vm.xenclone.dev/v1alpha1
kind: VMTemplate
metadata: {name: NAME}
spec:
  origin: {volumeGroup: vg0, logicalVolume: debian12}
  snapshot: {mode: Classic, cowSize: 1Gi}
  domain:
    memory: 512Mi
    vcpus: 1
    boot: {bootloader: pygrub}
    nics: [{bridge: xenbr0}]
`
	baseClone = `
apiVersion: vm.xenclone.dev/v1alpha1
kind: VMClone
metadata: {name: NAME}
spec:
  templateRef: {name: debian12}
`
	basePool = `
apiVersion: vm.xenclone.dev/v1alpha1
kind: VMClonePool
metadata: {name: NAME}
spec:
  replicas: 2
  template:
    spec:
      templateRef: {name: debian12}
`
	baseClaim = `
apiVersion: vm.xenclone.dev/v1alpha1
kind: VMClaim
metadata: {name: NAME}
spec:
  poolRef: {name: ci}
`
	baseHost = `
apiVersion: vm.xenclone.dev/v1alpha1
kind: XenHost
metadata: {name: NAME}
spec: {maxClones: 10}
`
)

// baseSetup gives update cases a valid starting point that has the field they change.
var baseSetup = map[string]func(map[string]any){
	baseClone: all(set("spec.resetRequests", 3), set("spec.domainName", "web-1")),
}

type invalidCase struct {
	name string
	base string
	// edit changes the valid object into the invalid one (on create), or, with update set,
	// is applied as an update to the created valid object.
	edit   func(o map[string]any)
	update bool
	// want are substrings the API server's message must contain: the field path and the fix.
	want []string
}

// set writes v at a dotted path, creating maps on the way; "nics.0.mac" indexes a list.
func set(path string, v any) func(map[string]any) {
	return func(o map[string]any) {
		parts := strings.Split(path, ".")
		var cur any = o
		for i, p := range parts {
			last := i == len(parts)-1
			switch c := cur.(type) {
			case map[string]any:
				if last {
					c[p] = v
					return
				}
				if _, ok := c[p]; !ok {
					c[p] = map[string]any{}
				}
				cur = c[p]
			case []any:
				var idx int
				fmt.Sscan(p, &idx)
				if last {
					c[idx] = v
					return
				}
				cur = c[idx]
			}
		}
	}
}

func del(path string) func(map[string]any) {
	return func(o map[string]any) {
		parts := strings.Split(path, ".")
		cur := o
		for _, p := range parts[:len(parts)-1] {
			cur = cur[p].(map[string]any)
		}
		delete(cur, parts[len(parts)-1])
	}
}

func all(edits ...func(map[string]any)) func(map[string]any) {
	return func(o map[string]any) {
		for _, e := range edits {
			e(o)
		}
	}
}

var invalidCases = []invalidCase{
	// VMTemplate
	{"template snapshot mode not an enum", baseTemplate, set("spec.snapshot.mode", "Fast"), false, []string{"spec.snapshot.mode", `supported values: "Classic", "Thin"`}},
	{"template classic without cowSize", baseTemplate, del("spec.snapshot.cowSize"), false, []string{"spec.snapshot", "cowSize is required for mode Classic"}},
	{"template thin with cowSize", baseTemplate, set("spec.snapshot.mode", "Thin"), false, []string{"spec.snapshot", "cowSize applies to mode Classic only"}},
	{"template classic with thinPool", baseTemplate, set("spec.snapshot.thinPool", "pool0"), false, []string{"spec.snapshot", "thinPool applies to mode Thin only"}},
	{"template cowSize too small", baseTemplate, set("spec.snapshot.cowSize", "1Ki"), false, []string{"spec.snapshot.cowSize", "at least 4Mi"}},
	{"template cowSize negative", baseTemplate, set("spec.snapshot.cowSize", "-1Gi"), false, []string{"spec.snapshot.cowSize", "at least 4Mi"}},
	{"template LV name reserved prefix", baseTemplate, set("spec.origin.logicalVolume", "snapshot01"), false, []string{"spec.origin.logicalVolume", "reserves names starting with 'snapshot'"}},
	{"template LV name starts with hyphen", baseTemplate, set("spec.origin.logicalVolume", "-tpl"), false, []string{"spec.origin.logicalVolume", "must not start with a hyphen"}},
	{"template LV name with reserved suffix", baseTemplate, set("spec.origin.logicalVolume", "tpl_tmeta"), false, []string{"spec.origin.logicalVolume", "_tmeta"}},
	{"template LV name with slash", baseTemplate, set("spec.origin.logicalVolume", "../etc"), false, []string{"spec.origin.logicalVolume", "may contain only letters, digits and + _ . -"}},
	{"template VG name dot-dot", baseTemplate, set("spec.origin.volumeGroup", ".."), false, []string{"spec.origin.volumeGroup", "cannot be '.' or '..'"}},
	{"template memory too small", baseTemplate, set("spec.domain.memory", "16Mi"), false, []string{"spec.domain.memory", "between 32Mi and 4Ti"}},
	{"template maxMemory below memory", baseTemplate, set("spec.domain.maxMemory", "256Mi"), false, []string{"spec.domain", "maxMemory must be greater than or equal to spec.domain.memory"}},
	{"template vcpus zero", baseTemplate, set("spec.domain.vcpus", 0), false, []string{"spec.domain.vcpus", "greater than or equal to 1"}},
	{"template readiness TCP without a port", baseTemplate, set("spec.domain.readiness", map[string]any{"probe": "TCP"}), false, []string{"spec.domain.readiness", "probe TCP needs port"}},
	{"template readiness port without TCP", baseTemplate, set("spec.domain.readiness", map[string]any{"probe": "GuestAgent", "port": 22}), false, []string{"spec.domain.readiness", "port is only used by probe TCP"}},
	{"template readiness unknown probe", baseTemplate, set("spec.domain.readiness", map[string]any{"probe": "Ping"}), false, []string{"spec.domain.readiness.probe", "DomainRunning", "GuestAgent", "TCP"}},
	{"template vcpus too many", baseTemplate, set("spec.domain.vcpus", 1000), false, []string{"spec.domain.vcpus", "less than or equal to 512"}},
	{"template maxVCPUs below vcpus", baseTemplate, all(set("spec.domain.vcpus", 4), set("spec.domain.maxVCPUs", 2)), false, []string{"spec.domain", "maxVCPUs must be greater than or equal to spec.domain.vcpus"}},
	{"template two boot methods", baseTemplate, set("spec.domain.boot.kernel", "/boot/vmlinuz"), false, []string{"spec.domain.boot", "exactly one of bootloader or kernel"}},
	{"template ramdisk without kernel", baseTemplate, set("spec.domain.boot.ramdisk", "/boot/initrd.img"), false, []string{"spec.domain.boot", "ramdisk needs spec.domain.boot.kernel"}},
	{"template unknown bootloader", baseTemplate, set("spec.domain.boot.bootloader", "grub2"), false, []string{"spec.domain.boot.bootloader", `supported values: "pygrub"`}},
	{"template relative kernel path", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": "vmlinuz"}), false, []string{"spec.domain.boot.kernel", "must be an absolute path in dom0"}},
	{"template cmdline with newline", baseTemplate, set("spec.domain.boot", map[string]any{"kernel": "/boot/vmlinuz", "cmdline": "root=/dev/xvda1\nmemory=99999"}), false, []string{"spec.domain.boot.cmdline", "remove newlines and control characters"}},
	{"template hvm with pygrub", baseTemplate, set("spec.domain.type", "hvm"), false, []string{"spec.domain", "bootloader (pygrub) is for pv and pvh guests only"}},
	{"template domain type unknown", baseTemplate, set("spec.domain.type", "kvm"), false, []string{"spec.domain.type", `supported values: "pv", "pvh", "hvm"`}},
	{"template multicast MAC", baseTemplate, set("spec.domain.nics.0.mac", "01:16:3e:00:00:01"), false, []string{"spec.domain.nics[0].mac", "unicast MAC in Xen's OUI"}},
	{"template MAC outside Xen OUI and not local", baseTemplate, set("spec.domain.nics.0.mac", "00:11:22:33:44:55"), false, []string{"spec.domain.nics[0].mac", "or leave it empty to get a unique one"}},
	{"template bridge name with space", baseTemplate, set("spec.domain.nics.0.bridge", "xen br0"), false, []string{"spec.domain.nics[0].bridge", "must be a Linux interface name"}},
	{"template unknown scrub op", baseTemplate, set("spec.scrub", []any{"machine-id", "everything"}), false, []string{"spec.scrub[1]", "supported values"}},
	{"template autoExtend threshold too high", baseTemplate, set("spec.snapshot.autoExtend", map[string]any{"thresholdPercent": 99}), false, []string{"spec.snapshot.autoExtend.thresholdPercent", "less than or equal to 95"}},
	{"template autoExtend maxSize below cowSize", baseTemplate, set("spec.snapshot.autoExtend", map[string]any{"maxSize": "512Mi"}), false, []string{"spec.snapshot", "maxSize must be at least spec.snapshot.cowSize"}},
	{"template bad namespace name", baseTemplate, set("spec.allowedNamespaces", []any{"Team_A"}), false, []string{"spec.allowedNamespaces", "entries must be namespace names"}},
	{"template disk vdev unknown", baseTemplate, set("spec.domain.diskVdev", "vda"), false, []string{"spec.domain.diskVdev", "such as xvda (whole disk)"}},
	{"template origin changed", baseTemplate, set("spec.origin.logicalVolume", "debian13"), true, []string{"spec.origin", "immutable"}},

	// VMClone
	{"clone without templateRef", baseClone, del("spec.templateRef"), false, []string{"spec.templateRef", "Required value"}},
	{"clone run strategy unknown", baseClone, set("spec.runStrategy", "Sometimes"), false, []string{"spec.runStrategy", `supported values: "Always", "RerunOnFailure", "Once", "Halted"`}},
	{"clone hostname not RFC 1123", baseClone, set("spec.hostname", "Web_1"), false, []string{"spec.hostname", "must be an RFC 1123 label"}},
	{"clone hostname too long", baseClone, set("spec.hostname", strings.Repeat("a", 64)), false, []string{"spec.hostname", "may not be more than 63"}},
	{"clone all-digit domain name", baseClone, set("spec.domainName", "12345"), false, []string{"spec.domainName", "cannot be all digits"}},
	{"clone domain name with space", baseClone, set("spec.domainName", "web 1"), false, []string{"spec.domainName", "must start with a letter or digit"}},
	{"clone TTL not a duration", baseClone, set("spec.lifetime", map[string]any{"expireAfter": "forever"}), false, []string{"spec.lifetime.expireAfter", "written like 30m, 8h or 1h30m"}},
	{"clone TTL too short", baseClone, set("spec.lifetime", map[string]any{"expireAfter": "30s"}), false, []string{"spec.lifetime.expireAfter", "at least 1m"}},
	{"clone TTL action unknown", baseClone, set("spec.lifetime", map[string]any{"expireAfter": "1h", "onExpiry": "Archive"}), false, []string{"spec.lifetime.onExpiry", `supported values: "Delete", "Stop"`}},
	{"clone node name invalid", baseClone, set("spec.placement", map[string]any{"nodeName": "Xen_01"}), false, []string{"spec.placement.nodeName", "must be a Kubernetes node name"}},
	{"clone userData secret name invalid", baseClone, set("spec.cloudInit", map[string]any{"userData": map[string]any{"name": "User_Data", "key": "user-data"}}), false, []string{"spec.cloudInit.userData.name", "must be a Secret name"}},
	{"clone networkConfig secret name invalid", baseClone, set("spec.cloudInit", map[string]any{"networkConfig": map[string]any{"name": "net/config", "key": "network-config"}}), false, []string{"spec.cloudInit.networkConfig.name", "must be a Secret name"}},
	{"clone secret key invalid", baseClone, set("spec.cloudInit", map[string]any{"userData": map[string]any{"name": "ud", "key": "user data"}}), false, []string{"spec.cloudInit.userData.key", "must be a Secret data key"}},
	{"clone node pin and selector", baseClone, set("spec.placement", map[string]any{"nodeName": "xen-01", "hostSelector": map[string]any{"matchLabels": map[string]any{"rack": "a"}}}), false, []string{"spec.placement", "either nodeName"}},
	{"clone pinned and rescheduled", baseClone, set("spec.placement", map[string]any{"nodeName": "xen-01", "onNodeLost": "Reschedule"}), false, []string{"spec.placement.onNodeLost", "remove one of the two"}},
	{"clone onNodeLost unknown", baseClone, set("spec.placement", map[string]any{"onNodeLost": "Migrate"}), false, []string{"onNodeLost", "Wait", "Reschedule"}},
	{"clone memory zero", baseClone, set("spec.resources", map[string]any{"memory": "0"}), false, []string{"spec.resources.memory", "between 32Mi and 4Ti"}},
	{"clone maxMemory below memory", baseClone, set("spec.resources", map[string]any{"memory": "2Gi", "maxMemory": "1Gi"}), false, []string{"spec", "maxMemory must be greater than or equal to spec.resources.memory"}},
	{"clone duplicate pinned MACs", baseClone, set("spec.nics", []any{map[string]any{"mac": "00:16:3e:00:00:01"}, map[string]any{"mac": "00:16:3e:00:00:01"}}), false, []string{"spec.nics", "each pinned mac must be different"}},
	{"clone negative reset counter", baseClone, set("spec.resetRequests", -1), false, []string{"spec.resetRequests", "greater than or equal to 0"}},
	{"clone templateRef changed", baseClone, set("spec.templateRef.name", "other"), true, []string{"spec", "templateRef is immutable"}},
	{"clone reset counter decreased", baseClone, set("spec.resetRequests", 0), true, []string{"spec", "resetRequests can only grow"}},
	{"clone domainName changed", baseClone, set("spec.domainName", "web-2"), true, []string{"spec", "domainName is immutable"}},

	// VMClonePool
	{"pool negative replicas", basePool, set("spec.replicas", -1), false, []string{"spec.replicas", "greater than or equal to 0"}},
	{"pool member hostname invalid", basePool, set("spec.template.spec.hostname", "CI_Runner"), false, []string{"spec.template.spec.hostname", "must be an RFC 1123 label"}},
	{"pool member TTL too short", basePool, set("spec.template.spec.lifetime", map[string]any{"expireAfter": "5s"}), false, []string{"spec.template.spec.lifetime.expireAfter", "at least 1m"}},
	{"pool member pins a MAC", basePool, set("spec.template.spec.nics", []any{map[string]any{"bridge": "xenbr0"}, map[string]any{"mac": "00:16:3e:00:00:01"}}), false, []string{"spec.template.spec.nics", "remove mac"}},
	{"pool member pins a domain name", basePool, set("spec.template.spec.domainName", "ci-runner"), false, []string{"spec.template.spec.domainName", "remove spec.template.spec.domainName"}},
	{"pool member secret name invalid", basePool, set("spec.template.spec.cloudInit", map[string]any{"userData": map[string]any{"name": "Runner_UD", "key": "user-data"}}), false, []string{"spec.template.spec.cloudInit.userData.name", "must be a Secret name"}},
	{"pool template pauses itself", basePool, set("spec.template.spec.pause", map[string]any{"memory": "128Mi"}), false, []string{"spec.template.spec.pause", "spec.warmState: Paused"}},
	{"pool template carries guest data", basePool, set("spec.template.spec.guestData", map[string]any{"secretRef": map[string]any{"name": "tok"}}), false, []string{"spec.template.spec.guestData", "VMClaim's spec.data"}},
	{"pool paused with halted members", basePool, all(set("spec.warmState", "Paused"), set("spec.template.spec.runStrategy", "Halted")), false, []string{"spec.warmState", "runStrategy"}},
	{"pool paused memory too small", basePool, all(set("spec.warmState", "Paused"), set("spec.pause", map[string]any{"memory": "8Mi"})), false, []string{"spec.pause.memory", "at least 32Mi"}},
	{"clone paused and halted", baseClone, all(set("spec.pause", map[string]any{"memory": "128Mi"}), set("spec.runStrategy", "Halted")), false, []string{"spec.pause", "runStrategy Always"}},
	{"clone pause after not a duration", baseClone, set("spec.pause", map[string]any{"after": "soon"}), false, []string{"spec.pause.after", "30s"}},

	// VMClaim
	{"claim names pool and template", baseClaim, set("spec.templateRef", map[string]any{"name": "debian12"}), false, []string{"spec", "exactly one of spec.poolRef"}},
	{"claim names nothing", baseClaim, func(o map[string]any) { delete(o["spec"].(map[string]any), "poolRef") }, false, []string{"spec", "exactly one of spec.poolRef"}},
	{"claim of a template waits", baseClaim, all(func(o map[string]any) { delete(o["spec"].(map[string]any), "poolRef") }, set("spec.templateRef", map[string]any{"name": "debian12"}), set("spec.fallback", "Wait")), false, []string{"spec.fallback", "needs spec.poolRef"}},
	{"claim fallback unknown", baseClaim, set("spec.fallback", "Later"), false, []string{"spec.fallback", "Cold"}},
	{"claim lifetime too short", baseClaim, set("spec.lifetime", map[string]any{"expireAfter": "10s"}), false, []string{"spec.lifetime.expireAfter", "at least 1m"}},
	{"claim pool changed", baseClaim, set("spec.poolRef.name", "other"), true, []string{"spec", "poolRef is immutable"}},

	// XenHost
	{"host negative maxClones", baseHost, set("spec.maxClones", -1), false, []string{"spec.maxClones", "greater than or equal to 0"}},
	{"host negative reserved memory", baseHost, set("spec.reservedMemory", "-1Gi"), false, []string{"spec.reservedMemory", "must not be negative"}},
}

func decode(t *testing.T, doc, name, ns string) *unstructured.Unstructured {
	t.Helper()
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(doc, "NAME", name)), &obj); err != nil {
		t.Fatalf("bad base manifest: %v", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	if u.GetKind() == "VMClone" || u.GetKind() == "VMClonePool" || u.GetKind() == "VMClaim" {
		u.SetNamespace(ns)
	}
	return u
}

func testNamespace(t *testing.T) string {
	t.Helper()
	testenv.Need(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "validation-"}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), ns) })
	return ns.Name
}

// TestAPIServerRejectsInvalidManifests sends each invalid manifest to the real API server and
// checks the rejection names the field and says how to fix it.
func TestAPIServerRejectsInvalidManifests(t *testing.T) {
	ns := testNamespace(t)
	for i, tc := range invalidCases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			name := fmt.Sprintf("case-%d", i)
			obj := decode(t, tc.base, name, ns)
			if tc.update {
				if baseSetup[tc.base] != nil {
					baseSetup[tc.base](obj.Object)
				}
				if err := k8sClient.Create(ctx, obj); err != nil {
					t.Fatalf("valid base rejected: %v", err)
				}
				t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), obj) })
				tc.edit(obj.Object)
				err := k8sClient.Update(ctx, obj)
				assertRejected(t, err, tc.want)
				return
			}
			tc.edit(obj.Object)
			err := k8sClient.Create(ctx, obj)
			if err == nil {
				_ = k8sClient.Delete(context.Background(), obj)
			}
			assertRejected(t, err, tc.want)
		})
	}
}

func assertRejected(t *testing.T, err error, want []string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the API server accepted the manifest; want a rejection mentioning %q", want)
	}
	t.Logf("rejected: %v", err)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("want an Invalid (422) error, got %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("rejection does not mention %q:\n%v", w, err)
		}
	}
}

// TestSamplesAreAccepted applies every manifest in config/samples, unchanged.
func TestSamplesAreAccepted(t *testing.T) {
	ns := testNamespace(t)
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "vm_*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("want the four samples, found %v (%v)", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			obj := map[string]any{}
			if err := utilyaml.Unmarshal(data, &obj); err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{Object: obj}
			if u.GetNamespace() != "" {
				u.SetNamespace(ns)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := k8sClient.Create(ctx, u); err != nil {
				t.Fatalf("sample %s rejected: %v", f, err)
			}
			t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), u) })
		})
	}
}
