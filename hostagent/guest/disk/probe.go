package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// Content is what a byte range holds, by its on-disk signature.
type Content string

const (
	ContentExt4    Content = "ext4" // ext2/3/4: the kernel's ext4 driver mounts all three
	ContentXFS     Content = "xfs"
	ContentBtrfs   Content = "btrfs"
	ContentLVM2    Content = "LVM2_member"
	ContentSwap    Content = "swap"
	ContentUnknown Content = ""
)

// IsFilesystem reports whether c is a root filesystem type the agent can mount.
func (c Content) IsFilesystem() bool {
	return c == ContentExt4 || c == ContentXFS || c == ContentBtrfs
}

// Probe reads the signatures at the start of a byte range [off, off+size) and says what it
// holds. The checks follow each format's published layout: ext's magic 0xEF53 at 1080, XFS's
// "XFSB" at 0, Btrfs's "_BHRfS_M" in the superblock at 64 KiB, LVM2's "LABELONE"+"LVM2 001"
// in one of the first four sectors, swap's "SWAPSPACE2" at the end of the first page.
func Probe(r io.ReaderAt, off, size int64) (Content, error) {
	n := int64(64*1024 + 4096)
	if n > size {
		n = size
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return ContentUnknown, fmt.Errorf("read signatures at byte %d: %w", off, err)
	}
	at := func(o int, sig string) bool {
		return o+len(sig) <= len(buf) && bytes.Equal(buf[o:o+len(sig)], []byte(sig))
	}
	for s := 0; s < 4; s++ {
		if at(s*512, "LABELONE") && at(s*512+24, "LVM2 001") {
			return ContentLVM2, nil
		}
	}
	if at(0, "XFSB") {
		return ContentXFS, nil
	}
	if len(buf) >= 1082 && binary.LittleEndian.Uint16(buf[1080:1082]) == 0xef53 {
		return ContentExt4, nil
	}
	if at(65536+64, "_BHRfS_M") {
		return ContentBtrfs, nil
	}
	if at(4096-10, "SWAPSPACE2") || at(4096-10, "SWAP-SPACE") {
		return ContentSwap, nil
	}
	return ContentUnknown, nil
}

// Candidate is a byte range that may hold the guest's root filesystem.
type Candidate struct {
	Partition
	Filesystem Content
}

// Hint is what the template says about the root: a 1-based partition number (0: find it) and
// a filesystem type ("": any of ext4, xfs, btrfs).
type Hint struct {
	Partition  int
	Filesystem Content
}

// ErrLVMUnsupported is returned when the root lives in LVM inside the guest disk: its LVs
// would need the host's device-mapper and carry the template's VG and PV UUIDs in every
// clone, so opening them is not supported yet.
var ErrLVMUnsupported = errors.New("guest root filesystem is inside LVM on the guest disk, which is not supported yet: " +
	"install the template with a plain ext4, xfs or btrfs root partition")

// ErrNoRoot means no range holds a filesystem the agent can mount.
var ErrNoRoot = errors.New("no ext4, xfs or btrfs filesystem found on the guest disk")

// Layout is a disk's table and the content found in each partition.
type Layout struct {
	Table    *Table
	Contents map[int]Content // by partition number
	// Whole is what the disk holds at byte 0. mkfs leaves sector 0 alone, so a bare
	// filesystem made over a previously partitioned disk still shows the stale table: when
	// no partition holds a filesystem, a filesystem here wins.
	Whole Content

	diskSize int64 // as given to Inspect, for the whole-disk candidate
}

// HasLVM reports whether any partition is typed or labelled as an LVM2 physical volume.
func (l *Layout) HasLVM() bool {
	for _, p := range l.Table.Partitions {
		if p.Kind == KindLVM || l.Contents[p.Number] == ContentLVM2 {
			return true
		}
	}
	return false
}

// Inspect reads the table and probes every partition that could hold a filesystem.
func Inspect(r io.ReaderAt, size int64) (*Layout, error) {
	w, err := Probe(r, 0, size)
	if err != nil {
		return nil, fmt.Errorf("whole disk: %w", err)
	}
	t, err := ReadTable(r, size)
	if err != nil {
		// A filesystem superblock over a damaged table: the table is the stale part (mkfs
		// over the whole disk overwrites GPT entries, never the other way round).
		if !errors.Is(err, ErrCorrupt) || !w.IsFilesystem() {
			return nil, err
		}
		t = whole(size)
	}
	l := &Layout{Table: t, Contents: map[int]Content{}, Whole: w, diskSize: size}
	for _, p := range t.Partitions {
		if p.Kind == KindExtended || p.Kind == KindBIOSBoot {
			continue
		}
		c, err := Probe(r, p.Start, p.Size)
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p.Number, err)
		}
		l.Contents[p.Number] = c
	}
	return l, nil
}

// Candidates returns the ranges that may hold the root, best first, honouring the hint. With
// a partition number the answer is that partition or an error saying why not. Without one,
// every partition holding a mountable filesystem of the hinted type is a candidate, ordered
// GPT root type first, then Linux-typed, then larger first (a separate /boot is small); the
// caller mounts them in order and keeps the first that looks like a root (has /etc).
func (l *Layout) Candidates(h Hint) ([]Candidate, error) {
	if h.Filesystem != ContentUnknown && !h.Filesystem.IsFilesystem() {
		return nil, fmt.Errorf("filesystem %q is not one of ext4, xfs, btrfs", h.Filesystem)
	}
	if h.Partition != 0 {
		if l.Table.Scheme == SchemeNone {
			return nil, fmt.Errorf("the template names root partition %d, but the disk has no partition table "+
				"(a bare filesystem): set rootPartition to 0", h.Partition)
		}
		p, ok := l.Table.Partition(h.Partition)
		if !ok {
			return nil, fmt.Errorf("the template names root partition %d, but the %s table has no such partition",
				h.Partition, l.Table.Scheme)
		}
		c := l.Contents[p.Number]
		if p.Kind == KindLVM || c == ContentLVM2 {
			return nil, fmt.Errorf("partition %d: %w", p.Number, ErrLVMUnsupported)
		}
		if !c.IsFilesystem() {
			return nil, fmt.Errorf("partition %d (%s) holds no ext4, xfs or btrfs filesystem", p.Number, p.Kind)
		}
		if h.Filesystem != ContentUnknown && c != h.Filesystem {
			return nil, fmt.Errorf("partition %d holds %s, but the template says %s", p.Number, c, h.Filesystem)
		}
		return []Candidate{{Partition: p, Filesystem: c}}, nil
	}
	var out []Candidate
	for _, p := range l.Table.Partitions {
		c := l.Contents[p.Number]
		if !c.IsFilesystem() || (h.Filesystem != ContentUnknown && c != h.Filesystem) {
			continue
		}
		out = append(out, Candidate{Partition: p, Filesystem: c})
	}
	rank := func(k Kind) int {
		switch k {
		case KindLinuxRoot:
			return 0
		case KindLinux, KindWhole:
			return 1
		}
		return 2
	}
	sort.SliceStable(out, func(i, j int) bool {
		if ri, rj := rank(out[i].Kind), rank(out[j].Kind); ri != rj {
			return ri < rj
		}
		return out[i].Size > out[j].Size
	})
	if len(out) == 0 && l.Table.Scheme != SchemeNone && l.Whole.IsFilesystem() &&
		(h.Filesystem == ContentUnknown || h.Filesystem == l.Whole) {
		out = append(out, Candidate{Partition: Partition{Start: 0, Size: l.diskSize, Kind: KindWhole}, Filesystem: l.Whole})
	}
	if len(out) == 0 {
		if l.HasLVM() {
			return nil, ErrLVMUnsupported
		}
		if h.Filesystem != ContentUnknown {
			return nil, fmt.Errorf("%w of type %s", ErrNoRoot, h.Filesystem)
		}
		return nil, ErrNoRoot
	}
	return out, nil
}
