package lvm

import (
	"errors"
	"strings"
	"testing"

	"github.com/xenclone/xenclone/hostagent/command"
)

// Fuzz targets for the parsers that had none: the full report the agent reads on every
// reconcile, the lv_attr decoder, and the stderr classifier.

// FuzzParseFullReport: never panics; every LV it returns belongs to a VG it returns, and an
// ownership tag is only ever read from a whole tag.
func FuzzParseFullReport(f *testing.F) {
	addFixtureSeeds(f)
	f.Add([]byte(`{"report":[{"vg":[{"vg_name":"vg0","vg_size":"4194304","vg_free":"0","vg_extent_size":"4194304","vg_extent_count":"1","vg_free_count":"0","vg_mda_size":"1048576","vg_mda_free":"1000","lv_count":"1"}],"lv":[{"lv_name":"c1","vg_name":"vg0","lv_attr":"swi-a-s---","lv_size":"4194304","lv_tags":"xenclone.managed,xenclone.owner-uid=u1"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		reps, err := ParseFullReport(data)
		if err != nil {
			return
		}
		for _, r := range reps {
			if r.VG.Name == "" {
				t.Errorf("accepted a report without a VG name")
			}
			for _, lv := range r.LVs {
				if lv.VG != "" && lv.VG != r.VG.Name {
					t.Errorf("LV %s of VG %s listed under VG %s", lv.Name, lv.VG, r.VG.Name)
				}
				if uid := lv.OwnerUID(); uid != "" && !lv.HasTag(OwnerUIDTagPrefix+uid) {
					t.Errorf("owner %q read from tags %v without a whole tag", uid, lv.Tags)
				}
			}
		}
	})
}

// FuzzParseAttr: never panics; what it accepts is stable: printed and parsed again it is the
// same attribute set (unknown letters are kept lenient, for newer lvm versions).
func FuzzParseAttr(f *testing.F) {
	for _, s := range []string{"-wi-a-----", "swi-a-s---", "owi-aos---", "Vwi-a-tz-k", "twi-aotz--", "swi-I-s---", "-ri-a-----", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAttr(s)
		if err != nil {
			return
		}
		again, err := ParseAttr(a.String())
		if err != nil || again != a {
			t.Errorf("ParseAttr(%q) = %+v prints as %q, which parses to %+v (%v)", s, a, a.String(), again, err)
		}
		_ = a.Invalid() || a.ReadOnly() || a.IsThin() || a.IsClassicSnapshot() || a.IsOrigin()
	})
}

// FuzzClassify: any stderr and exit code give an *Error that keeps the command's stderr and
// matches at most the kinds whose message lvm printed.
func FuzzClassify(f *testing.F) {
	f.Add(5, `  Volume group "vg9" not found`)
	f.Add(5, "  Insufficient free space: 256 extents needed, but only 10 available")
	f.Add(3, "\x1b[31m\x00garbage")
	f.Fuzz(func(t *testing.T, exit int, stderr string) {
		cerr := &command.Error{Args: []string{"lvm", "lvs"}, ExitCode: exit, Stderr: stderr, Err: errors.New("exit status")}
		err := classify("op", cerr)
		if err == nil {
			t.Fatal("classify returned nil for a failed command")
		}
		var le *Error
		if !errors.As(err, &le) {
			t.Fatalf("classify returned %T, want *Error", err)
		}
		if strings.TrimSpace(stderr) != "" && command.Stderr(err) != stderr {
			t.Errorf("stderr lost")
		}
	})
}
