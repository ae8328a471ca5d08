package lvm

import (
	"os"
	"path/filepath"
	"testing"
)

// addFixtureSeeds seeds a fuzzer with every captured and constructed report.
func addFixtureSeeds(f *testing.F) {
	for _, dir := range []string{"testdata/real", "testdata/constructed"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`{"report":[{"lv":[{"lv_name":"a","vg_name":"v","lv_attr":"swi-Ios---","lv_size":"1","data_percent":"100.00","lv_tags":"a,b"}]}]}`))
	f.Add([]byte(`{"report":[{"vg":[{"vg_name":"v","vg_size":"1","vg_free":"0","vg_extent_size":"1","vg_extent_count":"1","vg_free_count":"0","vg_mda_size":"9","vg_mda_free":"10","lv_count":"0"}]}]}`))
}

// FuzzParseLVReport: the parser never panics, and what it accepts is self-consistent.
func FuzzParseLVReport(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		lvs, err := ParseLVReport(data)
		if err != nil {
			return
		}
		for _, lv := range lvs {
			if lv.Name == "" {
				t.Errorf("accepted an LV without a name")
			}
			for _, p := range []Percent{lv.DataPercent, lv.SnapPercent, lv.MetadataPercent} {
				if p.Valid && !(p.Value >= 0) {
					t.Errorf("accepted percent %v", p.Value)
				}
				if !p.Valid && p.Value != 0 {
					t.Errorf("invalid percent carries %v", p.Value)
				}
			}
			for _, tag := range lv.Tags {
				if tag == "" && len(lv.Tags) == 1 {
					t.Errorf("empty tag list decoded as one empty tag")
				}
			}
			// Exercise the helpers the agent calls on every report.
			_ = lv.OwnedBy("x") || lv.Managed() || lv.Attr.Invalid() || lv.Attr.IsOrigin()
			_ = DefaultSnapshotPolicy.Decide(lv, VG{ExtentSize: 4 * mib, Free: 1 << 30})
			_ = DefaultPoolPolicy.Decide(lv)
		}
	})
}

// FuzzParseVGReport: the VG parser (vgs and fullreport) never panics and never returns an
// unnamed VG; fullreport reports at most what the VG parser sees.
func FuzzParseVGReport(f *testing.F) {
	addFixtureSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		vgs, err := ParseVGReport(data)
		if err == nil {
			for _, vg := range vgs {
				if vg.Name == "" {
					t.Errorf("accepted a VG without a name")
				}
				if p := vg.MetadataUsedPercent(); p < 0 || p > 100 {
					t.Errorf("metadata used %v%%", p)
				}
			}
		}
		reps, ferr := ParseFullReport(data)
		if ferr == nil && err == nil && len(reps) > len(vgs) {
			t.Errorf("fullreport found %d VGs, VG parser %d", len(reps), len(vgs))
		}
	})
}
