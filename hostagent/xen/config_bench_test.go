package xen

import "testing"

// BenchmarkRender renders one domain's xl.cfg (validation included), as the agent does before
// every xl create. Compare runs with benchstat.
func BenchmarkRender(b *testing.B) {
	c := baseConfig()
	c.Disks = append(c.Disks, Disk{Target: "/var/lib/xenclone/seed/3f2504e0/cidata.img", Vdev: "xvdb", ReadOnly: true})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(c); err != nil {
			b.Fatal(err)
		}
	}
}
