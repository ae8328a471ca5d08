package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// sign writes a filesystem signature at the start of a byte range, as mkfs would.
func sign(d []byte, off int64, c Content) {
	b := d[off:]
	switch c {
	case ContentExt4:
		binary.LittleEndian.PutUint16(b[1080:], 0xef53)
	case ContentXFS:
		copy(b, "XFSB")
	case ContentBtrfs:
		copy(b[65536+64:], "_BHRfS_M")
	case ContentLVM2:
		copy(b[512:], "LABELONE")
		copy(b[512+24:], "LVM2 001")
	case ContentSwap:
		copy(b[4096-10:], "SWAPSPACE2")
	}
}

func TestProbe(t *testing.T) {
	for _, c := range []Content{ContentExt4, ContentXFS, ContentBtrfs, ContentLVM2, ContentSwap, ContentUnknown} {
		d := make([]byte, 128<<10)
		sign(d, 0, c)
		got, err := Probe(bytes.NewReader(d), 0, int64(len(d)))
		if err != nil || got != c {
			t.Errorf("Probe(%q) = %q, %v", c, got, err)
		}
	}
	// A range shorter than the Btrfs superblock offset is probed without reading past it.
	if got, err := Probe(bytes.NewReader(make([]byte, 2048)), 0, 2048); err != nil || got != ContentUnknown {
		t.Errorf("short range: %q, %v", got, err)
	}
}

// layout builds a GPT disk with equal partitions of 400 sectors, each holding the given
// content, and inspects it.
func layout(t *testing.T, contents ...Content) *Layout {
	t.Helper()
	var parts [][3]uint64
	lba := uint64(40)
	for range contents {
		parts = append(parts, [3]uint64{lba, lba + 399, 0})
		lba += 400
	}
	d := gptDisk(int(lba)+40, parts...)
	for i, c := range contents {
		sign(d, int64(parts[i][0])*512, c)
	}
	l, err := Inspect(bytes.NewReader(d), int64(len(d)))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCandidates(t *testing.T) {
	cases := []struct {
		name     string
		contents []Content
		hint     Hint
		want     []int
		err      error
	}{
		{"one ext4", []Content{ContentSwap, ContentExt4}, Hint{}, []int{2}, nil},
		{"all filesystems, equal size: table order", []Content{ContentExt4, ContentXFS, ContentBtrfs}, Hint{}, []int{1, 2, 3}, nil},
		{"type hint", []Content{ContentExt4, ContentXFS}, Hint{Filesystem: ContentXFS}, []int{2}, nil},
		{"partition hint", []Content{ContentExt4, ContentXFS}, Hint{Partition: 2}, []int{2}, nil},
		{"partition and type hint disagree", []Content{ContentExt4, ContentXFS}, Hint{Partition: 2, Filesystem: ContentExt4}, nil, nil},
		{"hinted partition missing", []Content{ContentExt4}, Hint{Partition: 3}, nil, nil},
		{"hinted partition is swap", []Content{ContentSwap, ContentExt4}, Hint{Partition: 1}, nil, nil},
		{"hinted partition is a PV", []Content{ContentExt4, ContentLVM2}, Hint{Partition: 2}, nil, ErrLVMUnsupported},
		{"only a PV", []Content{ContentSwap, ContentLVM2}, Hint{}, nil, ErrLVMUnsupported},
		{"nothing", []Content{ContentSwap, ContentUnknown}, Hint{}, nil, ErrNoRoot},
		{"bad type hint", []Content{ContentExt4}, Hint{Filesystem: "vfat"}, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := layout(t, tc.contents...).Candidates(tc.hint)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("got %+v, want an error", got)
				}
				if tc.err != nil && !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v", err, tc.err)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var nums []int
			for _, c := range got {
				nums = append(nums, c.Number)
			}
			if len(nums) != len(tc.want) {
				t.Fatalf("candidates %v, want %v", nums, tc.want)
			}
			for i := range nums {
				if nums[i] != tc.want[i] {
					t.Fatalf("candidates %v, want %v", nums, tc.want)
				}
			}
		})
	}
}

func TestCandidatesPreferRootTypeThenSize(t *testing.T) {
	l := &Layout{Table: &Table{Scheme: SchemeGPT, Partitions: []Partition{
		{Number: 1, Size: 1 << 20, Kind: KindLinux},
		{Number: 2, Size: 8 << 20, Kind: KindLinux},
		{Number: 3, Size: 2 << 20, Kind: KindLinuxRoot},
		{Number: 4, Size: 9 << 20, Kind: KindOther},
	}}, Contents: map[int]Content{1: ContentExt4, 2: ContentExt4, 3: ContentXFS, 4: ContentBtrfs}}
	got, err := l.Candidates(Hint{})
	if err != nil {
		t.Fatal(err)
	}
	want := []int{3, 2, 1, 4}
	for i, c := range got {
		if c.Number != want[i] {
			t.Fatalf("order %+v, want %v", got, want)
		}
	}
	if _, err := (&Layout{Table: whole(1 << 20), Contents: map[int]Content{0: ContentExt4}}).Candidates(Hint{Partition: 1}); err == nil {
		t.Fatal("a partition number on a bare filesystem was accepted")
	}
}
