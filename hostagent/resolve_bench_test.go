package hostagent

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// BenchmarkDomainConfigFor resolves a clone's domain config from its template and identity,
// as the agent does before every xl create. The package's TestMain starts envtest first, so run
// it with KUBEBUILDER_ASSETS set (see docs/performance.md).
func BenchmarkDomainConfigFor(b *testing.B) {
	mem, maxMem := resource.MustParse("512Mi"), resource.MustParse("1Gi")
	tpl := &vmv1alpha1.VMTemplate{Spec: vmv1alpha1.VMTemplateSpec{Domain: vmv1alpha1.DomainSpec{
		Memory: &mem, MaxMemory: &maxMem, VCPUs: ptr.To[int32](1), MaxVCPUs: ptr.To[int32](2),
		Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"}, DiskVdev: "xvda",
	}}}
	c := testClone("default", "web-1", "1a2b3c4d-0000-4000-8000-000000000000")
	c.Status.UUID = string(c.UID)
	c.Status.Interfaces = []vmv1alpha1.InterfaceStatus{{Index: 0, MAC: "00:16:3e:00:00:01", Bridge: "xenbr1"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DomainConfigFor(tpl, c, "/dev/vg0/xc-web-1-1a2b3c4d", "/var/lib/xenclone/seed/x/cidata.img"); err != nil {
			b.Fatal(err)
		}
	}
}
