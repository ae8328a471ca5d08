package controllers

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"testing"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

var macPattern = regexp.MustCompile(`^00:16:3e(:[0-9a-f]{2}){3}$`)

// macSet is a MAC index for tests: MAC → owner.
type macSet map[string]string

func (m macSet) inUse(mac string) string { return m[mac] }

func seqDraw(vals ...[3]byte) func() [3]byte {
	i := 0
	return func() [3]byte {
		v := vals[i%len(vals)]
		i++
		return v
	}
}

func TestAllocateInterfaces(t *testing.T) {
	nics2 := []vmv1alpha1.NIC{{Bridge: "xenbr0"}, {Bridge: "xenbr1"}}
	tests := []struct {
		name     string
		nics     []vmv1alpha1.NIC
		current  []vmv1alpha1.InterfaceStatus
		used     macSet
		draw     func() [3]byte
		want     []string
		conflict bool
	}{
		{
			name: "fresh draws",
			nics: nics2, draw: seqDraw([3]byte{1, 2, 3}, [3]byte{0xaa, 0xbb, 0xcc}),
			want: []string{"00:16:3e:01:02:03", "00:16:3e:aa:bb:cc"},
		},
		{
			name: "collision with another clone is re-drawn",
			nics: nics2[:1], used: macSet{"00:16:3e:01:02:03": "ns/other"},
			draw: seqDraw([3]byte{1, 2, 3}, [3]byte{4, 5, 6}),
			want: []string{"00:16:3e:04:05:06"},
		},
		{
			name: "two NICs of one clone never share a draw",
			nics: nics2, draw: seqDraw([3]byte{1, 2, 3}, [3]byte{1, 2, 3}, [3]byte{7, 8, 9}),
			want: []string{"00:16:3e:01:02:03", "00:16:3e:07:08:09"},
		},
		{
			name:    "allocated MACs are kept across reconciles",
			nics:    nics2,
			current: []vmv1alpha1.InterfaceStatus{{Index: 0, MAC: "00:16:3e:00:00:01"}, {Index: 1, MAC: "00:16:3e:00:00:02"}},
			draw:    func() [3]byte { t.Fatal("no draw expected"); return [3]byte{} },
			want:    []string{"00:16:3e:00:00:01", "00:16:3e:00:00:02"},
		},
		{
			name:    "a NIC added later gets a new MAC, the others keep theirs",
			nics:    nics2,
			current: []vmv1alpha1.InterfaceStatus{{Index: 0, MAC: "00:16:3e:00:00:01"}},
			draw:    seqDraw([3]byte{9, 9, 9}),
			want:    []string{"00:16:3e:00:00:01", "00:16:3e:09:09:09"},
		},
		{
			name: "pinned MAC honoured",
			nics: []vmv1alpha1.NIC{{MAC: "02:00:00:00:00:01"}},
			want: []string{"02:00:00:00:00:01"},
		},
		{
			name: "pinned MAC used by another clone is refused",
			nics: []vmv1alpha1.NIC{{MAC: "00:16:3e:00:00:05"}}, used: macSet{"00:16:3e:00:00:05": "ns/first"},
			conflict: true,
		},
		{
			name: "the whole space taken gives up after bounded draws",
			nics: nics2[:1], used: macSet{"00:16:3e:00:00:00": "ns/x"},
			draw: seqDraw([3]byte{0, 0, 0}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			used := tt.used
			if used == nil {
				used = macSet{}
			}
			var claimed []string
			got, err := AllocateInterfaces(tt.nics, tt.current, used.inUse, tt.draw, func(m string) { claimed = append(claimed, m) })
			var conflict *MACConflictError
			if tt.conflict {
				if !errors.As(err, &conflict) {
					t.Fatalf("want MACConflictError, got %v", err)
				}
				if conflict.Owner != "ns/first" {
					t.Errorf("owner = %q", conflict.Owner)
				}
				return
			}
			if tt.want == nil {
				if err == nil {
					t.Fatalf("want an error, got %v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d interfaces, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				if got[i].MAC != w || got[i].Index != int32(i) {
					t.Errorf("interface %d = %+v, want MAC %s", i, got[i], w)
				}
				if got[i].Bridge == "" {
					t.Errorf("interface %d has no bridge", i)
				}
			}
		})
	}
}

// TestMACsUniqueOverManyAllocations is the property test: thousands of clones with one to
// three NICs each, drawn from a deliberately small random space so collisions happen often;
// every MAC stays in 00:16:3e, none is ever given twice.
func TestMACsUniqueOverManyAllocations(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// 16 bits of randomness instead of 24: with 6,000 MACs, the birthday bound makes
	// collisions certain, so re-drawing is exercised thousands of times.
	draw := func() [3]byte {
		v := rng.Uint32()
		return [3]byte{0x42, byte(v >> 8), byte(v)}
	}
	used := macSet{}
	redraws := 0
	counting := func(mac string) string {
		if o := used[mac]; o != "" {
			redraws++
			return o
		}
		return ""
	}
	clones := 3000
	total := 0
	for c := range clones {
		nics := make([]vmv1alpha1.NIC, 1+c%3)
		ifaces, err := AllocateInterfaces(nics, nil, counting, draw, func(string) {})
		if err != nil {
			t.Fatalf("clone %d: %v", c, err)
		}
		for _, i := range ifaces {
			if !macPattern.MatchString(i.MAC) {
				t.Fatalf("MAC %q outside 00:16:3e", i.MAC)
			}
			if o := used[i.MAC]; o != "" {
				t.Fatalf("MAC %s given twice (first to %s)", i.MAC, o)
			}
			used[i.MAC] = "clone"
			total++
		}
	}
	if total != 6000 || redraws == 0 {
		t.Fatalf("allocated %d MACs with %d re-draws; want 6000 and some re-draws", total, redraws)
	}
	t.Logf("%d MACs for %d clones, %d collisions re-drawn", total, clones, redraws)
}

func TestHostname(t *testing.T) {
	tests := map[string]string{
		"web-1":           "web-1",
		"web.example.com": "web-example-com",
		"a23456789012345678901234567890123456789012345678901234567890abcdef": "a23456789012345678901234567890123456789012345678901234567890abc",
	}
	for name, want := range tests {
		if got := cloneHostname(testClone(name)); got != want {
			t.Errorf("cloneHostname(%q) = %q, want %q", name, got, want)
		}
	}
	c := testClone("x")
	c.Spec.Hostname = "chosen"
	if got := cloneHostname(c); got != "chosen" {
		t.Errorf("spec.hostname ignored: %q", got)
	}
}
