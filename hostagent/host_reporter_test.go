package hostagent

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func baseHostStatus() vmv1alpha1.XenHostStatus {
	return vmv1alpha1.XenHostStatus{
		XenVersion: "4.17.5", CPUs: 32, Clones: 10,
		Memory: vmv1alpha1.HostMemory{TotalMiB: 65536, FreeMiB: 40000},
		VolumeGroups: []vmv1alpha1.VolumeGroupStatus{{
			Name: "vg0", SizeBytes: 4 << 40, FreeBytes: 2 << 40, MetadataFreeBytes: 400_000, LVCount: 12,
			ThinPools: []vmv1alpha1.ThinPoolStatus{{Name: "pool", SizeBytes: 1 << 40, DataPercent: "10.00", MetadataPercent: "2.00"}},
		}},
		Templates:  []vmv1alpha1.HostTemplateStatus{{Name: "tpl", LVUUID: "u", SizeBytes: 10 << 30, ReadOnly: true}},
		Conditions: []metav1.Condition{{Type: vmv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "HostToolsAnswer"}},
	}
}

func TestCapacityMoved(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*vmv1alpha1.XenHostStatus)
		want bool
	}{
		{"nothing", func(*vmv1alpha1.XenHostStatus) {}, false},
		{"one more clone, 512 MiB, one LV", func(s *vmv1alpha1.XenHostStatus) {
			s.Clones++
			s.Memory.FreeMiB -= 512
			s.VolumeGroups[0].LVCount++
			s.VolumeGroups[0].FreeBytes -= 256 << 20
			s.VolumeGroups[0].MetadataFreeBytes -= 340
			s.VolumeGroups[0].ThinPools[0].DataPercent = "10.40"
		}, false},
		{"free memory by 1 GiB", func(s *vmv1alpha1.XenHostStatus) { s.Memory.FreeMiB -= 1024 }, true},
		{"free memory by 5% of a small host", func(s *vmv1alpha1.XenHostStatus) {
			s.Memory.TotalMiB, s.Memory.FreeMiB = 8192, 4000
		}, true},
		{"VG free by 1 GiB", func(s *vmv1alpha1.XenHostStatus) { s.VolumeGroups[0].FreeBytes += 1 << 30 }, true},
		{"pool data by a point", func(s *vmv1alpha1.XenHostStatus) { s.VolumeGroups[0].ThinPools[0].DataPercent = "11.00" }, true},
		{"pool metadata by a point", func(s *vmv1alpha1.XenHostStatus) { s.VolumeGroups[0].ThinPools[0].MetadataPercent = "3.10" }, true},
		{"metadata headroom by 5%", func(s *vmv1alpha1.XenHostStatus) { s.VolumeGroups[0].MetadataFreeBytes -= 20_000 }, true},
		{"a template", func(s *vmv1alpha1.XenHostStatus) { s.Templates[0].ReadOnly = false }, true},
		{"Xen version", func(s *vmv1alpha1.XenHostStatus) { s.XenVersion = "4.18.0" }, true},
		{"a condition", func(s *vmv1alpha1.XenHostStatus) { s.Conditions[0].Status = metav1.ConditionFalse }, true},
		{"a condition's message", func(s *vmv1alpha1.XenHostStatus) { s.Conditions[0].Message = "xl info failed" }, true},
		{"a new VG", func(s *vmv1alpha1.XenHostStatus) {
			s.VolumeGroups = append(s.VolumeGroups, vmv1alpha1.VolumeGroupStatus{Name: "vg1"})
		}, true},
		{"a pool gone", func(s *vmv1alpha1.XenHostStatus) { s.VolumeGroups[0].ThinPools = nil }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, cur := baseHostStatus(), baseHostStatus()
			tc.edit(&cur)
			if got := capacityMoved(old, cur); got != tc.want {
				t.Errorf("capacityMoved = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReportPokesCoalesce: a burst of pokes (one per clone) makes one report at the end of
// ReportInterval, not one each; the heartbeat keeps its own pace while a report hangs.
func TestReportPokesCoalesce(t *testing.T) {
	g := NewWithT(t)
	clk := clocktesting.NewFakeClock(time.Unix(1_700_000_000, 0))
	var reports, renewals atomic.Int64
	var mu sync.Mutex
	var at []time.Time
	hang := make(chan struct{})
	var hanging atomic.Bool
	h := &HostReporter{
		NodeName: "xen-1", Clock: clk, RenewInterval: time.Hour, ReportInterval: 3 * time.Second,
		renew: func(context.Context) error { renewals.Add(1); return nil },
		report: func(ctx context.Context) error {
			reports.Add(1)
			mu.Lock()
			at = append(at, clk.Now())
			mu.Unlock()
			if hanging.Load() {
				select {
				case <-hang:
				case <-ctx.Done():
				}
			}
			return nil
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Start(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	g.Eventually(reports.Load).Should(BeEquivalentTo(1))
	g.Eventually(renewals.Load).Should(BeEquivalentTo(1))
	for range 200 {
		h.Poke()
	}
	// The loop waits out ReportInterval (two tickers and its timer wait on the clock).
	g.Eventually(clk.Waiters).Should(Equal(3))
	g.Consistently(reports.Load, 100*time.Millisecond).Should(BeEquivalentTo(1))
	clk.Step(2 * time.Second)
	g.Consistently(reports.Load, 100*time.Millisecond).Should(BeEquivalentTo(1))
	clk.Step(time.Second)
	g.Eventually(reports.Load).Should(BeEquivalentTo(2))
	g.Consistently(reports.Load, 200*time.Millisecond).Should(BeEquivalentTo(2), "the burst's pokes made one report")
	mu.Lock()
	g.Expect(at[1].Sub(at[0])).To(BeNumerically(">=", 3*time.Second))
	mu.Unlock()

	// A report that hangs on the host does not hold the heartbeat.
	hanging.Store(true)
	h.Poke()
	g.Eventually(clk.Waiters).Should(Equal(3))
	clk.Step(3 * time.Second)
	g.Eventually(reports.Load).Should(BeEquivalentTo(3))
	clk.Step(time.Hour)
	g.Eventually(renewals.Load).Should(BeEquivalentTo(2))
	clk.Step(time.Hour)
	g.Eventually(renewals.Load).Should(BeEquivalentTo(3))
	close(hang)
}
