package lvm

import (
	"strings"
	"testing"
)

func snap(attr string, size uint64, used string) LV {
	lv := LV{Name: "c1", VG: "vg0", Attr: mustAttr(attr), Size: size, Origin: "tmpl"}
	if used != "" {
		var p numParser
		lv.DataPercent = p.percent("data_percent", used)
		if p.err != nil {
			panic(p.err)
		}
	}
	return lv
}

func TestSnapshotPolicy(t *testing.T) {
	const ext = 4 * mib
	vg := VG{Name: "vg0", ExtentSize: ext, Free: 100 * ext}
	pol := SnapshotPolicy{ThresholdPercent: 80, StepPercent: 20, MaxSize: 1 << 30}
	cases := []struct {
		name   string
		pol    SnapshotPolicy
		lv     LV
		vg     VG
		want   Verdict
		by     uint64
		reason string
	}{
		{"below threshold", pol, snap("swi-aos---", 512*mib, "79.99"), vg, VerdictOK, 0, "below 80%"},
		{"at threshold extends", pol, snap("swi-aos---", 512*mib, "80.00"), vg, VerdictExtend, 104 * mib, "extending by"},
		{"over threshold extends", pol, snap("swi-aos---", 512*mib, "93.50"), vg, VerdictExtend, 104 * mib, "93.50%"},
		// 20% of 10 MiB is 2 MiB: rounded up to one whole extent.
		{"step rounds up to an extent", pol, snap("swi-a-s---", 10*mib, "85.00"), vg, VerdictExtend, ext, ""},
		{"step capped at max", pol, snap("swi-aos---", 1000*mib, "90.00"), vg, VerdictExtend, 24 * mib, ""},
		{"at max", pol, snap("swi-aos---", 1<<30, "90.00"), vg, VerdictAtRisk, 0, "maximum size"},
		{"over max", pol, snap("swi-aos---", 2<<30, "90.00"), vg, VerdictAtRisk, 0, "maximum size"},
		{"no cap", SnapshotPolicy{ThresholdPercent: 80, StepPercent: 50}, snap("swi-aos---", 2<<30, "90.00"), VG{ExtentSize: ext, Free: 2 << 30}, VerdictExtend, 1 << 30, ""},
		{"VG too small", pol, snap("swi-aos---", 512*mib, "90.00"), VG{Name: "vg0", ExtentSize: ext, Free: 100 * mib}, VerdictAtRisk, 0, "has only"},
		{"invalid snapshot", pol, snap("swi-Ios---", 512*mib, "100.00"), vg, VerdictFull, 0, "is invalid"},
		{"invalid suspended snapshot", pol, snap("swi-Sos---", 512*mib, "100.00"), vg, VerdictFull, 0, "is invalid"},
		{"100% but still valid", pol, snap("swi-aos---", 512*mib, "100.00"), vg, VerdictFull, 0, "100% full"},
		{"merge failed", pol, snap("Swi-mos---", 512*mib, ""), vg, VerdictAtRisk, 0, "merge"},
		{"inactive: usage unknown", pol, snap("swi---s---", 512*mib, ""), vg, VerdictOK, 0, "unknown"},
		{"thin LV is the pool's business", pol, snap("Vwi-aotz--", 512*mib, "99.00"), vg, VerdictOK, 0, "not a classic snapshot"},
		{"threshold 100 never extends", SnapshotPolicy{ThresholdPercent: 100, StepPercent: 20}, snap("swi-aos---", 512*mib, "99.99"), vg, VerdictOK, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.pol.Validate(); err != nil {
				t.Fatal(err)
			}
			d := tc.pol.Decide(tc.lv, tc.vg)
			if d.Verdict != tc.want || d.ExtendBy != tc.by || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("got %+v, want %s by %d with %q", d, tc.want, tc.by, tc.reason)
			}
			if d.ExtendBy%ext != 0 {
				t.Errorf("extend by %d is not whole extents", d.ExtendBy)
			}
		})
	}
}

func TestPoolPolicy(t *testing.T) {
	pool := func(attr, data, meta string) LV {
		lv := LV{Name: "pool0", VG: "vg0", Attr: mustAttr(attr)}
		var p numParser
		lv.DataPercent = p.percent("data", data)
		lv.MetadataPercent = p.percent("meta", meta)
		return lv
	}
	pol := PoolPolicy{DataThresholdPercent: 80, MetadataThresholdPercent: 70}
	cases := []struct {
		name   string
		lv     LV
		want   Verdict
		reason string
	}{
		{"healthy", pool("twi-aotz--", "45.30", "12.05"), VerdictOK, "data 45.30%"},
		{"data at threshold", pool("twi-aotz--", "80.00", "12.05"), VerdictAtRisk, "data 80.00% ≥ 80%"},
		{"metadata over threshold", pool("twi-aotz--", "10.00", "75.00"), VerdictAtRisk, "metadata 75.00% ≥ 70%"},
		{"both over", pool("twi-aotz--", "90.00", "75.00"), VerdictAtRisk, "and metadata"},
		{"out of data (D)", pool("twi-aotzD-", "100.00", "20.41"), VerdictFull, "out of data space"},
		{"data 100 without D yet", pool("twi-aotz--", "100.00", "20.00"), VerdictFull, "out of data space"},
		{"metadata read-only (M)", pool("twi-aotzM-", "61.00", "99.87"), VerdictFull, "read-only"},
		{"metadata 100", pool("twi-aotz--", "61.00", "100.00"), VerdictFull, "metadata"},
		{"failed (F)", pool("twi-aotzF-", "", ""), VerdictFull, "failed"},
		{"check needed", pool("twi-cotz--", "10.00", "10.00"), VerdictAtRisk, "check"},
		{"inactive", pool("twi---tz--", "", ""), VerdictOK, "unknown"},
		{"not a pool", pool("Vwi-aotz--", "99.00", ""), VerdictOK, "not a thin pool"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := pol.Decide(tc.lv)
			if d.Verdict != tc.want || d.ExtendBy != 0 || !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("got %+v, want %s with %q", d, tc.want, tc.reason)
			}
		})
	}
}

// TestPolicyOnFixtures runs the policies on the constructed report layouts.
func TestPolicyOnFixtures(t *testing.T) {
	vg := VG{Name: "vg0", ExtentSize: 4 * mib, Free: 10 << 30}
	cases := []struct {
		file, lv string
		decide   func(LV) Decision
		want     Verdict
	}{
		{"constructed/lvs-classic-snapshot-in-use.json", "c1", func(l LV) Decision { return DefaultSnapshotPolicy.Decide(l, vg) }, VerdictOK},
		{"constructed/lvs-invalid-snapshot.json", "c1", func(l LV) Decision { return DefaultSnapshotPolicy.Decide(l, vg) }, VerdictFull},
		{"constructed/lvs-thin-pool.json", "pool0", DefaultPoolPolicy.Decide, VerdictOK},
		{"constructed/lvs-pool-out-of-data.json", "pool0", DefaultPoolPolicy.Decide, VerdictFull},
		{"constructed/lvs-pool-out-of-data.json", "pool1", DefaultPoolPolicy.Decide, VerdictFull},
	}
	for _, tc := range cases {
		lvs, err := ParseLVReport(readFixture(t, tc.file))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lvs {
			if l.Name == tc.lv {
				if d := tc.decide(l); d.Verdict != tc.want {
					t.Errorf("%s/%s: %+v, want %s", tc.file, tc.lv, d, tc.want)
				}
			}
		}
	}
}

func TestPolicyValidate(t *testing.T) {
	bad := []interface{ Validate() error }{
		SnapshotPolicy{ThresholdPercent: 0, StepPercent: 20},
		SnapshotPolicy{ThresholdPercent: 101, StepPercent: 20},
		SnapshotPolicy{ThresholdPercent: 80, StepPercent: 0},
		PoolPolicy{DataThresholdPercent: 80},
		PoolPolicy{DataThresholdPercent: 180, MetadataThresholdPercent: 80},
	}
	for _, p := range bad {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	for _, p := range []interface{ Validate() error }{DefaultSnapshotPolicy, DefaultPoolPolicy} {
		if err := p.Validate(); err != nil {
			t.Errorf("default %+v: %v", p, err)
		}
	}
}
