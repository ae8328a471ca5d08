package guest

import (
	"os"
	"reflect"
	"testing"
)

// The fixtures are real outputs captured on the test host (util-linux 2.38.1): one of our loop
// devices (partition 2 at 1 MiB) and a mount table with a guest mounted below a state dir.
func TestParseLoops(t *testing.T) {
	b, err := os.ReadFile("testdata/losetup-list.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseLoops(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []Loop{{Name: "/dev/loop0", BackFile: "/tmp/fx.img", Offset: 1048576, SizeLimit: 16777216}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v", got)
	}
	// Older util-linux printed numbers as strings; a deleted backing file gets a suffix;
	// no loop devices at all prints nothing.
	got, err = ParseLoops([]byte(`{"loopdevices":[{"name":"/dev/loop3","back-file":"/var/x.img (deleted)","offset":"512","sizelimit":"0"}]}`))
	if err != nil || !reflect.DeepEqual(got, []Loop{{Name: "/dev/loop3", BackFile: "/var/x.img", Offset: 512}}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	if got, err := ParseLoops(nil); err != nil || got != nil {
		t.Fatalf("empty: %v %v", got, err)
	}
	if _, err := ParseLoops([]byte(`{"loopdevices":[{"offset":"x"}]}`)); err == nil {
		t.Fatal("bad offset accepted")
	}
}

func TestParseMounts(t *testing.T) {
	b, err := os.ReadFile("testdata/findmnt-list.json")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMounts(b)
	if err != nil {
		t.Fatal(err)
	}
	last := got[len(got)-1]
	if want := (Mount{Target: "/tmp/xcstate/mnt/6f1c2a4e", Source: "/dev/loop0", FSType: "ext4"}); last != want || len(got) != 20 {
		t.Fatalf("got %d mounts, last %+v", len(got), last)
	}
}

func TestRecordMatches(t *testing.T) {
	r := record{Device: "/dev/vg0/c1", DeviceReal: "/dev/dm-3", Offset: 1 << 20, SizeLimit: 8 << 20, Loop: "/dev/loop4"}
	for _, tc := range []struct {
		l    Loop
		want bool
	}{
		{Loop{Name: "/dev/loop4", BackFile: "/dev/dm-3", Offset: 1 << 20, SizeLimit: 8 << 20}, true},
		{Loop{Name: "/dev/loop4", BackFile: "/dev/vg0/c1", Offset: 1 << 20, SizeLimit: 8 << 20}, true},
		{Loop{Name: "/dev/loop5", BackFile: "/dev/dm-3", Offset: 1 << 20, SizeLimit: 8 << 20}, false}, // another loop
		{Loop{Name: "/dev/loop4", BackFile: "/dev/dm-3", Offset: 0, SizeLimit: 0}, false},             // Xen's block script
		{Loop{Name: "/dev/loop4", BackFile: "/dev/dm-4", Offset: 1 << 20, SizeLimit: 8 << 20}, false},
	} {
		if got := r.matches(tc.l); got != tc.want {
			t.Errorf("matches(%+v) = %v", tc.l, got)
		}
	}
}

func FuzzParseLoops(f *testing.F) {
	if b, err := os.ReadFile("testdata/losetup-list.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"loopdevices":[{"name":"/dev/loop3","offset":"512","sizelimit":null}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		loops, err := ParseLoops(b)
		if err != nil {
			return
		}
		for _, l := range loops {
			r := record{Device: l.BackFile, Offset: l.Offset, SizeLimit: l.SizeLimit}
			if l.BackFile != "" && !r.matches(l) {
				t.Fatalf("a record built from %+v does not match it", l)
			}
		}
	})
}

func FuzzParseMounts(f *testing.F) {
	if b, err := os.ReadFile("testdata/findmnt-list.json"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseMounts(b) })
}
