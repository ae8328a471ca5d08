// Package disk reads a guest disk's layout in userspace: the partition table (MBR with its
// logical partitions, protective MBR + GPT with header and entry CRC checks) and the
// filesystem signatures that matter for finding the root (ext2/3/4, XFS, Btrfs, an LVM2
// physical volume, swap). dom0 kernels need not parse partition tables (this project's test
// kernel parses none), so the agent never relies on /dev/xvdaN-style partition devices: it
// computes each partition's byte range here and loop-attaches that range.
//
// Everything here is pure: it reads through an io.ReaderAt and never trusts a field it has not
// bounds-checked, since a clone's disk is data, not code.
package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"unicode/utf16"
)

// Scheme is how a disk is divided.
type Scheme string

const (
	// SchemeNone is a disk without a partition table: the filesystem starts at byte 0 (an LV
	// holding a bare filesystem, Xen's xvda1 style).
	SchemeNone Scheme = "none"
	// SchemeMBR is a DOS partition table, with logical partitions (5+) in an extended one.
	SchemeMBR Scheme = "mbr"
	// SchemeGPT is a GUID partition table behind a protective MBR.
	SchemeGPT Scheme = "gpt"
)

// Kind is what a partition's type code says it holds.
type Kind string

const (
	KindLinux     Kind = "linux"      // MBR 0x83, GPT Linux filesystem data
	KindLinuxRoot Kind = "linux-root" // GPT discoverable root partition (any architecture listed)
	KindLVM       Kind = "lvm"        // MBR 0x8e, GPT Linux LVM
	KindSwap      Kind = "swap"       // MBR 0x82, GPT Linux swap
	KindEFI       Kind = "efi"        // MBR 0xef, GPT EFI system partition
	KindBIOSBoot  Kind = "bios-boot"  // GPT BIOS boot (GRUB core image)
	KindExtended  Kind = "extended"   // MBR container of logical partitions, never a filesystem
	KindRAID      Kind = "raid"       // MBR 0xfd, GPT Linux RAID
	KindOther     Kind = "other"
	KindWhole     Kind = "whole-disk" // SchemeNone: the disk itself
)

// Partition is one entry of the table, in bytes.
type Partition struct {
	// Number is the 1-based partition number as Linux would name it (sda2 → 2; MBR logical
	// partitions start at 5). 0 for the whole disk of SchemeNone.
	Number int
	// Start and Size are byte offsets into the disk.
	Start, Size int64
	Kind        Kind
	// Type is the raw type: "0x83" for MBR, the type GUID in canonical form for GPT.
	Type string
	// Name is the GPT partition name ("" for MBR).
	Name string
}

// Table is a disk's layout.
type Table struct {
	Scheme Scheme
	// SectorSize is the logical sector size the table was found with (512 or 4096).
	SectorSize int
	Partitions []Partition
}

// Partition returns the partition numbered n.
func (t *Table) Partition(n int) (Partition, bool) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, true
		}
	}
	return Partition{}, false
}

// ErrNoTable means the disk carries no MBR or GPT.
var ErrNoTable = errors.New("no partition table")

// ErrCorrupt marks a partition table that is present but inconsistent (bad CRC, entries out of
// range, loops). The disk is not guessed at: a wrong offset would scrub the wrong bytes.
var ErrCorrupt = errors.New("corrupt partition table")

const (
	maxGPTEntriesBytes = 1 << 20 // 128 entries of 128 bytes is the norm; anything past 1 MiB is hostile
	maxLogical         = 128
)

// ReadTable reads the partition table of a disk of the given size. A disk with no table
// returns a Table with SchemeNone and a single whole-disk Partition; the caller probes it for
// a filesystem. Sector sizes 512 and 4096 are tried for GPT, 512 for MBR (an MBR in a
// 4Kn disk is rare enough to treat as unsupported).
func ReadTable(r io.ReaderAt, size int64) (*Table, error) {
	if size < 512 {
		return nil, fmt.Errorf("%w: disk of %d bytes is too small", ErrCorrupt, size)
	}
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read sector 0: %w", err)
	}
	if mbr[510] != 0x55 || mbr[511] != 0xaa {
		return whole(size), nil
	}
	entries, ok := mbrEntries(mbr)
	if !ok {
		// 0x55aa without plausible entries: a boot sector (e.g. a bootloader in a bare
		// filesystem's reserved area), not a partition table.
		return whole(size), nil
	}
	for _, e := range entries {
		if e.typ == 0xee {
			return readGPT(r, size)
		}
	}
	return readMBR(r, size, entries)
}

func whole(size int64) *Table {
	return &Table{Scheme: SchemeNone, SectorSize: 512, Partitions: []Partition{{
		Number: 0, Start: 0, Size: size, Kind: KindWhole,
	}}}
}

type mbrEntry struct {
	index       int // 0..3
	status, typ byte
	lba, count  uint32
}

// mbrEntries decodes the four primary entries and says whether they look like a partition
// table: every status byte 0x00 or 0x80 and at least one non-empty entry.
func mbrEntries(sector []byte) ([]mbrEntry, bool) {
	var out []mbrEntry
	for i := 0; i < 4; i++ {
		b := sector[446+16*i : 446+16*(i+1)]
		e := mbrEntry{
			index:  i,
			status: b[0],
			typ:    b[4],
			lba:    binary.LittleEndian.Uint32(b[8:12]),
			count:  binary.LittleEndian.Uint32(b[12:16]),
		}
		if e.status != 0x00 && e.status != 0x80 {
			return nil, false
		}
		if e.typ == 0 || e.count == 0 {
			continue
		}
		out = append(out, e)
	}
	return out, len(out) > 0
}

func isExtended(t byte) bool { return t == 0x05 || t == 0x0f || t == 0x85 }

func mbrKind(t byte) Kind {
	switch t {
	case 0x83:
		return KindLinux
	case 0x8e:
		return KindLVM
	case 0x82:
		return KindSwap
	case 0xef:
		return KindEFI
	case 0xfd:
		return KindRAID
	case 0x05, 0x0f, 0x85:
		return KindExtended
	}
	return KindOther
}

func readMBR(r io.ReaderAt, size int64, entries []mbrEntry) (*Table, error) {
	const ss = 512
	t := &Table{Scheme: SchemeMBR, SectorSize: ss}
	sectors := size / ss
	extended := 0
	for _, e := range entries {
		start, count := int64(e.lba), int64(e.count)
		if start == 0 || start+count > sectors {
			return nil, fmt.Errorf("%w: MBR partition %d (sectors %d+%d) is outside the %d-sector disk",
				ErrCorrupt, e.index+1, start, count, sectors)
		}
		t.Partitions = append(t.Partitions, Partition{
			Number: e.index + 1, Start: start * ss, Size: count * ss,
			Kind: mbrKind(e.typ), Type: fmt.Sprintf("0x%02x", e.typ),
		})
		if isExtended(e.typ) {
			extended++
			if extended > 1 {
				return nil, fmt.Errorf("%w: more than one extended partition", ErrCorrupt)
			}
			logical, err := readLogical(r, start, count, sectors)
			if err != nil {
				return nil, err
			}
			t.Partitions = append(t.Partitions, logical...)
		}
	}
	if err := checkOverlap(t.Partitions); err != nil {
		return nil, err
	}
	return t, nil
}

// readLogical walks the chain of extended boot records. Each EBR's first entry is a logical
// partition relative to that EBR; its second entry links to the next EBR relative to the
// start of the extended partition.
func readLogical(r io.ReaderAt, extStart, extCount, sectors int64) ([]Partition, error) {
	const ss = 512
	var out []Partition
	seen := map[int64]bool{}
	ebr := extStart
	buf := make([]byte, ss)
	for n := 5; ; n++ {
		if n-5 >= maxLogical {
			return nil, fmt.Errorf("%w: more than %d logical partitions", ErrCorrupt, maxLogical)
		}
		if seen[ebr] {
			return nil, fmt.Errorf("%w: extended boot record chain loops at sector %d", ErrCorrupt, ebr)
		}
		seen[ebr] = true
		if _, err := r.ReadAt(buf, ebr*ss); err != nil {
			return nil, fmt.Errorf("read extended boot record at sector %d: %w", ebr, err)
		}
		if buf[510] != 0x55 || buf[511] != 0xaa {
			return nil, fmt.Errorf("%w: extended boot record at sector %d has no signature", ErrCorrupt, ebr)
		}
		first := buf[446:462]
		if typ, count := first[4], int64(binary.LittleEndian.Uint32(first[12:16])); typ != 0 && count != 0 {
			start := ebr + int64(binary.LittleEndian.Uint32(first[8:12]))
			if start <= ebr || start+count > extStart+extCount || start+count > sectors {
				return nil, fmt.Errorf("%w: logical partition %d (sectors %d+%d) is outside its extended partition",
					ErrCorrupt, n, start, count)
			}
			out = append(out, Partition{
				Number: n, Start: start * ss, Size: count * ss,
				Kind: mbrKind(typ), Type: fmt.Sprintf("0x%02x", typ),
			})
		}
		next := buf[462:478]
		if next[4] == 0 || binary.LittleEndian.Uint32(next[12:16]) == 0 {
			return out, nil
		}
		ebr = extStart + int64(binary.LittleEndian.Uint32(next[8:12]))
		if ebr <= extStart || ebr >= extStart+extCount {
			return nil, fmt.Errorf("%w: extended boot record link to sector %d leaves the extended partition", ErrCorrupt, ebr)
		}
	}
}

func checkOverlap(ps []Partition) error {
	for i, a := range ps {
		for _, b := range ps[i+1:] {
			if a.Kind == KindExtended || b.Kind == KindExtended {
				continue // logical partitions live inside it by design
			}
			if a.Start < b.Start+b.Size && b.Start < a.Start+a.Size {
				return fmt.Errorf("%w: partitions %d and %d overlap", ErrCorrupt, a.Number, b.Number)
			}
		}
	}
	return nil
}

// GPT partition type GUIDs, canonical (lower-case) form.
var gptKinds = map[string]Kind{
	"0fc63daf-8483-4772-8e79-3d69d8477de4": KindLinux,
	"4f68bce3-e8cd-4db1-96e7-fbcaf984b709": KindLinuxRoot, // x86-64
	"44479540-f297-41b2-9af7-d131d5f0458a": KindLinuxRoot, // x86
	"b921b045-1df0-41c3-af44-4c6f280d3fae": KindLinuxRoot, // arm64
	"69dad710-2ce4-4e3c-b16c-21a1d49abed3": KindLinuxRoot, // arm
	"e6d6d379-f507-44c2-a23c-238f2a3df928": KindLVM,
	"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f": KindSwap,
	"c12a7328-f81f-11d2-ba4b-00a0c93ec93b": KindEFI,
	"21686148-6449-6e6f-744e-656564454649": KindBIOSBoot,
	"a19d880f-05fc-4d3b-a006-743f0f84911e": KindRAID,
}

func readGPT(r io.ReaderAt, size int64) (*Table, error) {
	var errs []error
	for _, ss := range []int64{512, 4096} {
		if size < 3*ss {
			continue
		}
		hdr := make([]byte, ss)
		if _, err := r.ReadAt(hdr, ss); err != nil {
			return nil, fmt.Errorf("read GPT header: %w", err)
		}
		if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
			continue
		}
		t, err := parseGPT(r, size, ss, hdr, 1)
		if err == nil {
			return t, nil
		}
		errs = append(errs, fmt.Errorf("primary header: %w", err))
		// The primary header is damaged: the backup in the last sector is the standard
		// recovery, and it is just as CRC-checked.
		last := size/ss - 1
		if _, err := r.ReadAt(hdr, last*ss); err != nil {
			return nil, fmt.Errorf("read backup GPT header: %w", err)
		}
		t, err = parseGPT(r, size, ss, hdr, uint64(last))
		if err == nil {
			return t, nil
		}
		return nil, errors.Join(append(errs, fmt.Errorf("backup header: %w", err))...)
	}
	return nil, fmt.Errorf("%w: protective MBR but no GPT header at LBA 1", ErrCorrupt)
}

func parseGPT(r io.ReaderAt, size, ss int64, hdr []byte, wantLBA uint64) (*Table, error) {
	le := binary.LittleEndian
	if !bytes.Equal(hdr[:8], []byte("EFI PART")) {
		return nil, fmt.Errorf("%w: no GPT signature", ErrCorrupt)
	}
	hsize := le.Uint32(hdr[12:16])
	if hsize < 92 || int64(hsize) > ss {
		return nil, fmt.Errorf("%w: GPT header size %d", ErrCorrupt, hsize)
	}
	h := make([]byte, hsize)
	copy(h, hdr[:hsize])
	wantCRC := le.Uint32(h[16:20])
	le.PutUint32(h[16:20], 0)
	if got := crc32.ChecksumIEEE(h); got != wantCRC {
		return nil, fmt.Errorf("%w: GPT header CRC %08x, want %08x", ErrCorrupt, got, wantCRC)
	}
	if lba := le.Uint64(hdr[24:32]); lba != wantLBA {
		return nil, fmt.Errorf("%w: GPT header says it is at LBA %d, read from LBA %d", ErrCorrupt, lba, wantLBA)
	}
	sectors := uint64(size / ss)
	firstUsable, lastUsable := le.Uint64(hdr[40:48]), le.Uint64(hdr[48:56])
	entriesLBA := le.Uint64(hdr[72:80])
	count, esize := le.Uint32(hdr[80:84]), le.Uint32(hdr[84:88])
	entriesCRC := le.Uint32(hdr[88:92])
	if firstUsable > lastUsable || lastUsable >= sectors {
		return nil, fmt.Errorf("%w: usable LBAs %d..%d on a %d-sector disk", ErrCorrupt, firstUsable, lastUsable, sectors)
	}
	if esize < 128 || esize%128 != 0 || esize&(esize-1) != 0 {
		return nil, fmt.Errorf("%w: GPT entry size %d", ErrCorrupt, esize)
	}
	total := uint64(count) * uint64(esize)
	if total > maxGPTEntriesBytes {
		return nil, fmt.Errorf("%w: %d GPT entries of %d bytes", ErrCorrupt, count, esize)
	}
	if entriesLBA < 2 || entriesLBA >= sectors || entriesLBA+(total+uint64(ss)-1)/uint64(ss) > sectors {
		return nil, fmt.Errorf("%w: GPT entries at LBA %d do not fit the disk", ErrCorrupt, entriesLBA)
	}
	buf := make([]byte, total)
	if _, err := r.ReadAt(buf, int64(entriesLBA)*ss); err != nil {
		return nil, fmt.Errorf("read GPT entries: %w", err)
	}
	if got := crc32.ChecksumIEEE(buf); got != entriesCRC {
		return nil, fmt.Errorf("%w: GPT entries CRC %08x, want %08x", ErrCorrupt, got, entriesCRC)
	}
	t := &Table{Scheme: SchemeGPT, SectorSize: int(ss)}
	for i := uint32(0); i < count; i++ {
		e := buf[uint64(i)*uint64(esize):][:128]
		typ := e[0:16]
		if bytes.Equal(typ, make([]byte, 16)) {
			continue
		}
		first, last := le.Uint64(e[32:40]), le.Uint64(e[40:48])
		if first < firstUsable || last > lastUsable || first > last {
			return nil, fmt.Errorf("%w: GPT partition %d (LBAs %d..%d) is outside the usable %d..%d",
				ErrCorrupt, i+1, first, last, firstUsable, lastUsable)
		}
		guid := formatGUID(typ)
		kind, ok := gptKinds[guid]
		if !ok {
			kind = KindOther
		}
		t.Partitions = append(t.Partitions, Partition{
			Number: int(i) + 1,
			Start:  int64(first) * ss,
			Size:   int64(last-first+1) * ss,
			Kind:   kind,
			Type:   guid,
			Name:   gptName(e[56:128]),
		})
	}
	if err := checkOverlap(t.Partitions); err != nil {
		return nil, err
	}
	return t, nil
}

// formatGUID renders a GPT GUID: the first three groups are stored little-endian.
func formatGUID(b []byte) string {
	le := binary.LittleEndian
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", le.Uint32(b[0:4]), le.Uint16(b[4:6]), le.Uint16(b[6:8]), b[8:10], b[10:16])
}

func gptName(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
