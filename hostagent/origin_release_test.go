package hostagent_test

import (
	"context"
	"testing"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/sim"
)

// TestOriginReleasedAfterAgentRestart: the template was deleted while the agent was down, so no
// template names the volume group any more; the restarted agent still makes the origin it
// protected writable again (from the volume groups its stored XenHost status lists).
func TestOriginReleasedAfterAgentRestart(t *testing.T) {
	ctx := context.Background()
	st := sim.NewStorage()
	st.AddVG("vg0", 20<<30)
	if err := st.AddOrigin("vg0", "golden", 4<<30); err != nil {
		t.Fatal(err)
	}
	ref := lvm.Ref{VG: "vg0", Name: "golden"}
	if err := st.SetOriginReadOnly(ctx, ref); err != nil {
		t.Fatal(err)
	}
	remembered, err := hostagent.ReleaseOriginsAfterRestart(ctx, hostagent.Host{Storage: st},
		vmv1alpha1.XenHostStatus{VolumeGroups: []vmv1alpha1.VolumeGroupStatus{{Name: "vg0"}}})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := st.Report(ctx, "vg0")
	if err != nil {
		t.Fatal(err)
	}
	lv, _ := rep.LV("golden")
	if lv.Attr.ReadOnly() || lv.HasTag(lvm.MadeReadOnlyTag) {
		t.Fatalf("origin still protected after the restart: attr %s tags %v", lv.Attr, lv.Tags)
	}
	// A second report must not read the volume group again: nothing of ours is left in it.
	if remembered["vg0"] {
		t.Errorf("vg0 still remembered: %v", remembered)
	}
}
