package lvm

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var fixtureOwnerTags = []string{"xenclone.clone=team-a/box-1", "xenclone.managed", "xenclone.owner-uid=3f1c2a9e-7b44-4d0e-9a51-1d2f0c6e8b7a"}

func TestParseVGReportReal(t *testing.T) {
	for _, file := range []string{"real/vgs.json", "real/fullreport-thick.json"} {
		t.Run(file, func(t *testing.T) {
			vgs, err := ParseVGReport(readFixture(t, file))
			if err != nil {
				t.Fatal(err)
			}
			want := []VG{{
				Name: "xenclonefixture", UUID: "EooIxm-U1Wq-6pBl-hFsd-bp6r-HRYo-rWtdfH",
				Size: 62914560, Free: 46137344, ExtentSize: 4194304, ExtentCount: 15, FreeCount: 11,
				MetadataSize: 1044480, MetadataFree: 519168, LVCount: 3, Tags: []string{"rack/7", "site=lab1"},
			}}
			if !reflect.DeepEqual(vgs, want) {
				t.Errorf("got  %+v\nwant %+v", vgs, want)
			}
			// 1044480-byte area: one copy may take (1044480-512)/2-512 = 521472 bytes; the
			// metadata of this small VG takes 521472-519168 = 2304 of them.
			if c, p := vgs[0].MetadataCapacity(), vgs[0].MetadataUsedPercent(); c != 521472 || p < 0.44 || p > 0.45 {
				t.Errorf("metadata capacity %d, used %.3f%%", c, p)
			}
		})
	}
}

func TestParseFullReportReal(t *testing.T) {
	reps, err := ParseFullReport(readFixture(t, "real/fullreport-thick.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].VG.Name != "xenclonefixture" || len(reps[0].LVs) != 3 {
		t.Fatalf("reports = %+v", reps)
	}
	tmpl, ok := reps[0].LV("tmpl")
	if !ok || !tmpl.Attr.ReadOnly() || tmpl.Size != 8*mib || tmpl.Managed() {
		t.Errorf("tmpl = %+v", tmpl)
	}
	a, _ := reps[0].LV("clone-a")
	// Report asks for epoch seconds; lvs-thick-tags.json has the default layout of the same
	// instant (2026-11-25 18:52:16 +0000).
	if want := time.Date(2026, 11, 25, 18, 52, 16, 0, time.UTC); !a.Created.Equal(want) {
		t.Errorf("created %v, want %v", a.Created, want)
	}
	if !a.OwnedBy(ownerA.UID) || a.OwnedBy(ownerB.UID) || a.OwnedBy("") {
		t.Errorf("clone-a ownership wrong: %q", a.Tags)
	}

	if m := reps[0].Managed(); len(m) != 2 || m[0].Name != "clone-a" || m[1].Name != "clone-b" {
		t.Errorf("managed = %+v", m)
	}

	empty, err := ParseFullReport(readFixture(t, "real/fullreport-empty-vg.json"))
	if err != nil || len(empty) != 1 || len(empty[0].LVs) != 0 || empty[0].VG.LVCount != 0 || empty[0].VG.Free != empty[0].VG.Size {
		t.Errorf("empty VG: %+v, %v", empty, err)
	}
}

// TestParseLVReport pins every decoded field of real and constructed layouts.
func TestParseLVReport(t *testing.T) {
	pct := func(v float64) Percent { return Percent{Value: v, Valid: true} }
	created := func(s string) time.Time {
		t, err := time.Parse(lvTimeLayout, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	cases := []struct {
		file string
		want []LV
	}{
		{"real/lvs-thick-tags.json", []LV{
			{Name: "clone-a", VG: "xenclonefixture", UUID: "0fWb21-ionI-ZawF-gfjN-28lB-40Rq-kIALg8",
				Attr: mustAttr("-wi-XX----"), Size: 4 * mib, Tags: fixtureOwnerTags, Created: created("2026-11-25 18:52:16 +0000")},
			{Name: "clone-b", VG: "xenclonefixture", UUID: "ceGetS-MFsu-Awwe-bhpQ-aslK-FT7C-uTl6je",
				Attr: mustAttr("-wi-XX----"), Size: 4 * mib, Tags: ownerB.sortedTags(), Created: created("2026-11-25 18:52:16 +0000")},
			{Name: "tmpl", VG: "xenclonefixture", UUID: "7UDa9U-90Sm-9UQW-C0jc-19nW-xuf0-IqDeDI",
				Attr: mustAttr("-ri-XX----"), Size: 8 * mib, Created: created("2026-11-25 18:52:16 +0000")},
		}},
		{"constructed/lvs-classic-snapshot-in-use.json", []LV{
			{Name: "c1", VG: "vg0", UUID: "Zq0VvS-8hUd-3mLk-0pQa-Yb1C-cD2e-Ef3GhI", Attr: mustAttr("swi-aos---"),
				Size: 1 << 30, Origin: "tmpl", OriginSize: 8 << 30, DataPercent: pct(42.17), SnapPercent: pct(42.17),
				Tags: fixtureOwnerTags, Created: created("2026-11-20 09:15:02 +0000"), Active: true},
			{Name: "tmpl", VG: "vg0", UUID: "Ab1CdE-2fGh-3IjK-4lMn-5OpQ-6rSt-7UvWxY", Attr: mustAttr("ori-aos---"),
				Size: 8 << 30, Created: created("2026-11-01 12:00:00 +0000"), Active: true},
		}},
		{"constructed/lvs-invalid-snapshot.json", []LV{
			{Name: "c1", VG: "vg0", UUID: "Zq0VvS-8hUd-3mLk-0pQa-Yb1C-cD2e-Ef3GhI", Attr: mustAttr("swi-Ios---"),
				Size: 1 << 30, Origin: "tmpl", OriginSize: 8 << 30, DataPercent: pct(100), SnapPercent: pct(100),
				Tags: fixtureOwnerTags, Created: created("2026-11-20 09:15:02 +0000"), Active: true},
		}},
		{"constructed/lvs-thin-snapshot-inactive.json", []LV{
			{Name: "c3", VG: "vg0", UUID: "Kl3MnO-4pQr-5StU-6vWx-7YzA-8bCd-9EfGhI", Attr: mustAttr("Vwi---tz-k"),
				Size: 10 << 30, Origin: "tmpl-thin", OriginSize: 10 << 30, Pool: "pool0",
				Tags: fixtureOwnerTags, Created: time.Unix(1795600100, 0).UTC()},
		}},
		{"constructed/lvs-external-origin.json", []LV{
			{Name: "c4", VG: "vg0", UUID: "Mn5OpQ-6rSt-7UvW-8xYz-9AbC-0dEf-1GhIjK", Attr: mustAttr("Vwi-a-tz--"),
				Size: 8 << 30, Origin: "tmpl", OriginSize: 8 << 30, Pool: "pool0", DataPercent: pct(0), SnapPercent: pct(0),
				Tags: fixtureOwnerTags, Created: time.Unix(1795600200, 0).UTC(), Active: true},
			{Name: "tmpl", VG: "vg0", UUID: "Ab1CdE-2fGh-3IjK-4lMn-5OpQ-6rSt-7UvWxY", Attr: mustAttr("ori-------"),
				Size: 8 << 30, Created: time.Unix(1795000000, 0).UTC()},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got, err := ParseLVReport(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got:\n%+v\nwant:\n%+v", got, tc.want)
			}
		})
	}
}

// TestParseLVReportAttrs checks what the node reconciler reads from each constructed layout.
func TestParseLVReportAttrs(t *testing.T) {
	cases := []struct {
		file, lv string
		check    func(LV) bool
	}{
		{"constructed/lvs-classic-snapshot-in-use.json", "c1", func(l LV) bool {
			return l.Attr.IsClassicSnapshot() && l.Attr.Open == Open && l.Attr.Target == TargetSnapshot && !l.Attr.Invalid()
		}},
		{"constructed/lvs-classic-snapshot-in-use.json", "tmpl", func(l LV) bool { return l.Attr.IsOrigin() && l.Attr.ReadOnly() }},
		{"constructed/lvs-invalid-snapshot.json", "c1", func(l LV) bool { return l.Attr.Invalid() && l.Attr.State == StateInvalidSnapshot }},
		{"constructed/lvs-thin-pool.json", "pool0", func(l LV) bool {
			return l.Attr.IsThinPool() && l.Attr.Zeroing && l.Attr.Health == HealthOK &&
				l.DataPercent == Percent{45.30, true} && l.MetadataPercent == Percent{12.05, true}
		}},
		{"constructed/lvs-thin-pool.json", "c2", func(l LV) bool {
			return l.Attr.IsThin() && l.Pool == "pool0" && l.Origin == "tmpl-thin" && l.Attr.Open == Open && !l.MetadataPercent.Valid
		}},
		{"constructed/lvs-thin-snapshot-inactive.json", "c3", func(l LV) bool {
			return l.Attr.SkipActivation && l.Attr.State == StateInactive && !l.Active && !l.DataPercent.Valid
		}},
		{"constructed/lvs-pool-out-of-data.json", "pool0", func(l LV) bool { return l.Attr.Health == HealthOutOfData }},
		{"constructed/lvs-pool-out-of-data.json", "pool1", func(l LV) bool { return l.Attr.Health == HealthMetadataReadOnly }},
		{"constructed/lvs-external-origin.json", "tmpl", func(l LV) bool {
			return l.Attr.IsOrigin() && l.Attr.ReadOnly() && l.Attr.State == StateInactive
		}},
	}
	for _, tc := range cases {
		t.Run(tc.file+"/"+tc.lv, func(t *testing.T) {
			lvs, err := ParseLVReport(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lvs {
				if l.Name == tc.lv {
					if !tc.check(l) {
						t.Errorf("%+v", l)
					}
					return
				}
			}
			t.Fatalf("no LV %s", tc.lv)
		})
	}
}

func TestParseReportErrors(t *testing.T) {
	lv := func(fields string) string {
		return `{"report":[{"lv":[{"lv_name":"a","vg_name":"v","lv_attr":"-wi-a-----","lv_size":"4096"` + fields + `}]}]}`
	}
	cases := []struct {
		name string
		data string
		ok   bool
	}{
		{"minimal", lv(""), true},
		{"not json", "  WARNING: something\n", false},
		{"size with suffix", lv(`,"lv_size":"4.00m"`), false},
		{"size with B suffix", lv(`,"lv_size":"4096B"`), false},
		{"short attr", lv(`,"lv_attr":"-wi-a"`), false},
		{"longer attr from a future lvm", lv(`,"lv_attr":"-wi-a-----x"`), true},
		{"percent garbage", lv(`,"data_percent":"abc"`), false},
		{"percent NaN", lv(`,"data_percent":"NaN"`), false},
		{"percent empty is n/a", lv(`,"data_percent":""`), true},
		{"unknown time format is zero", lv(`,"lv_time":"yesterday"`), true},
		{"empty name", `{"report":[{"lv":[{"lv_name":"","vg_name":"v","lv_attr":"-wi-a-----","lv_size":"1"}]}]}`, false},
		{"log section ignored", `{"report":[{"lv":[]}],"log":[{"log_seq_num":"1"}]}`, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLVReport([]byte(tc.data))
			if (err == nil) != tc.ok {
				t.Errorf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	if _, err := ParseFullReport([]byte(`{"report":[{"vg":[],"lv":[]}]}`)); err == nil {
		t.Error("fullreport element without vg accepted")
	}
}

func TestAttrRoundTrip(t *testing.T) {
	for _, s := range []string{"-wi-XX----", "-ri-XX----", "swi-aos---", "swi-Ios---", "owi-aos---",
		"twi-aotz--", "twi-aotzD-", "twi-aotzM-", "Vwi---tz-k", "Vwi-a-tz--", "ori-------", "-wimao----"} {
		a, err := ParseAttr(s)
		if err != nil {
			t.Fatal(err)
		}
		if a.String() != s {
			t.Errorf("%s round-trips to %s", s, a)
		}
	}
}

func mustAttr(s string) Attr {
	a, err := ParseAttr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// sortedTags is Tags in lvm's report order (lvm sorts tags).
func (o Owner) sortedTags() []string {
	return []string{CloneTagPrefix + o.Namespace + "/" + o.Name, ManagedTag, o.OwnerTag()}
}
