package disk

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/xenclone/xenclone/hostagent/internal/hosttest"
)

// sfdiskImage partitions a sparse file with the real sfdisk (no root needed on a file) and
// returns the image and sfdisk's own --json view of it, the oracle for our reader.
func sfdiskImage(t *testing.T, size int64, script string) (string, sfdiskTable) {
	t.Helper()
	hosttest.RequireCommands(t, "sfdisk")
	sfdisk, _ := hosttest.LookPath("sfdisk")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sfdisk, "-q", "--no-reread", "--no-tell-kernel", img)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v: %s", err, out)
	}
	out, err := exec.Command(sfdisk, "--json", img).Output()
	if err != nil {
		t.Fatalf("sfdisk --json: %v", err)
	}
	var st struct {
		PT sfdiskTable `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		t.Fatal(err)
	}
	return img, st.PT
}

type sfdiskTable struct {
	Label      string `json:"label"`
	SectorSize int64  `json:"sectorsize"`
	Partitions []struct {
		Node  string `json:"node"`
		Start int64  `json:"start"`
		Size  int64  `json:"size"`
		Type  string `json:"type"`
	} `json:"partitions"`
}

func readImage(t *testing.T, img string) (*Table, error) {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	return ReadTable(f, st.Size())
}

func TestReadTableMatchesSfdisk(t *testing.T) {
	cases := []struct {
		name   string
		script string
		scheme Scheme
		kinds  map[int]Kind
	}{
		{"gpt bios+root+swap", "label: gpt\n,1M,21686148-6449-6E6F-744E-656564454649\n,8M,L\n,,S\n", SchemeGPT,
			map[int]Kind{1: KindBIOSBoot, 2: KindLinux, 3: KindSwap}},
		{"gpt efi+root(x86-64)+lvm", "label: gpt\n,2M,U\n,8M,4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709\n,,E6D6D379-F507-44C2-A23C-238F2A3DF928\n", SchemeGPT,
			map[int]Kind{1: KindEFI, 2: KindLinuxRoot, 3: KindLVM}},
		{"mbr boot+root", "label: dos\n,2M,83,*\n,,83\n", SchemeMBR,
			map[int]Kind{1: KindLinux, 2: KindLinux}},
		{"mbr root+extended(swap,lvm)", "label: dos\n,8M,83\n,,5\n,2M,82\n,,8e\n", SchemeMBR,
			map[int]Kind{1: KindLinux, 2: KindExtended, 5: KindSwap, 6: KindLVM}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img, want := sfdiskImage(t, 24<<20, tc.script)
			got, err := readImage(t, img)
			if err != nil {
				t.Fatal(err)
			}
			if got.Scheme != tc.scheme {
				t.Fatalf("scheme %s, want %s", got.Scheme, tc.scheme)
			}
			if len(got.Partitions) != len(want.Partitions) {
				t.Fatalf("%d partitions, sfdisk sees %d: %+v", len(got.Partitions), len(want.Partitions), got.Partitions)
			}
			for i, wp := range want.Partitions {
				gp := got.Partitions[i]
				num := strings.TrimPrefix(wp.Node, img)
				if gp.Start != wp.Start*want.SectorSize || gp.Size != wp.Size*want.SectorSize || num == "" {
					t.Errorf("partition %d: start %d size %d; sfdisk %s start %d size %d (×%d)",
						gp.Number, gp.Start, gp.Size, wp.Node, wp.Start, wp.Size, want.SectorSize)
				}
				if k := tc.kinds[gp.Number]; k != gp.Kind {
					t.Errorf("partition %d kind %s, want %s", gp.Number, gp.Kind, k)
				}
				if got.Scheme == SchemeGPT && !strings.EqualFold(gp.Type, wp.Type) {
					t.Errorf("partition %d type %s, sfdisk %s", gp.Number, gp.Type, wp.Type)
				}
			}
		})
	}
}

func TestGPTCorruption(t *testing.T) {
	img, _ := sfdiskImage(t, 8<<20, "label: gpt\n,1M,L\n,,L\n")
	orig, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) string {
		p := filepath.Join(t.TempDir(), "d.img")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	last := int64(len(orig)) - 512
	t.Run("primary header damaged, backup used", func(t *testing.T) {
		b := bytes.Clone(orig)
		b[512+40] ^= 0xff // first usable LBA: header CRC no longer matches
		tab, err := readImage(t, write(b))
		if err != nil || len(tab.Partitions) != 2 {
			t.Fatalf("got %+v, %v; want the backup's 2 partitions", tab, err)
		}
	})
	t.Run("primary entries damaged, backup used", func(t *testing.T) {
		b := bytes.Clone(orig)
		b[1024+32] ^= 0x01 // first LBA of entry 1: entries CRC no longer matches
		tab, err := readImage(t, write(b))
		if err != nil || tab.Partitions[0].Start != 2048*512 {
			t.Fatalf("got %+v, %v; want the backup's entries", tab, err)
		}
	})
	t.Run("both headers damaged", func(t *testing.T) {
		b := bytes.Clone(orig)
		b[512+40] ^= 0xff
		b[last+40] ^= 0xff
		if _, err := readImage(t, write(b)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("err %v, want ErrCorrupt", err)
		}
	})
}

// mbrSector builds a sector 0 with the given primary entries (type, start LBA, sectors).
func mbrSector(entries ...[3]uint32) []byte {
	b := make([]byte, 512)
	for i, e := range entries {
		o := 446 + 16*i
		b[o+4] = byte(e[0])
		binary.LittleEndian.PutUint32(b[o+8:], e[1])
		binary.LittleEndian.PutUint32(b[o+12:], e[2])
	}
	b[510], b[511] = 0x55, 0xaa
	return b
}

// gptDisk builds a minimal valid protective MBR + GPT (primary only) in memory: the fuzz
// corpus seed that does not depend on sfdisk.
func gptDisk(sectors int, parts ...[3]uint64) []byte {
	const ss = 512
	d := make([]byte, sectors*ss)
	copy(d, mbrSector([3]uint32{0xee, 1, uint32(sectors - 1)}))
	ents := d[2*ss : 2*ss+128*128]
	linux := []byte{0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47, 0x7d, 0xe4}
	for i, p := range parts {
		e := ents[i*128:]
		copy(e, linux)
		e[0] ^= byte(p[2]) // vary the type when asked
		binary.LittleEndian.PutUint64(e[32:], p[0])
		binary.LittleEndian.PutUint64(e[40:], p[1])
	}
	h := d[ss : 2*ss]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], uint64(sectors-1))
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], uint64(sectors-34))
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return d
}

func TestReadTableSynthetic(t *testing.T) {
	cases := []struct {
		name    string
		disk    []byte
		scheme  Scheme
		parts   int
		corrupt bool
	}{
		{"empty disk is bare", make([]byte, 4096), SchemeNone, 1, false},
		{"mbr two primaries", append(mbrSector([3]uint32{0x83, 2048, 100}, [3]uint32{0x83, 2148, 100}), make([]byte, 2300*512)...), SchemeMBR, 2, false},
		{"mbr partition past end", append(mbrSector([3]uint32{0x83, 2048, 1 << 30}), make([]byte, 4096)...), "", 0, true},
		{"mbr overlap", append(mbrSector([3]uint32{0x83, 2048, 100}, [3]uint32{0x83, 2100, 100}), make([]byte, 2300*512)...), "", 0, true},
		{"boot sector without entries is bare", mbrSector(), SchemeNone, 1, false},
		{"gpt", gptDisk(200, [3]uint64{40, 99, 0}, [3]uint64{100, 160, 0}), SchemeGPT, 2, false},
		{"gpt entry outside usable", gptDisk(200, [3]uint64{40, 190, 0}), "", 0, true},
		{"gpt overlap", gptDisk(200, [3]uint64{40, 120, 0}, [3]uint64{100, 160, 0}), "", 0, true},
		{"protective mbr without gpt", append(mbrSector([3]uint32{0xee, 1, 99}), make([]byte, 99*512)...), "", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := ReadTable(bytes.NewReader(tc.disk), int64(len(tc.disk)))
			if tc.corrupt {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("got %+v, %v; want ErrCorrupt", tab, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tab.Scheme != tc.scheme || len(tab.Partitions) != tc.parts {
				t.Fatalf("got %s with %d partitions, want %s with %d", tab.Scheme, len(tab.Partitions), tc.scheme, tc.parts)
			}
		})
	}
}

// FuzzParsePartitionTable feeds arbitrary disks to the reader. It must never panic, never
// allocate without bound, and every partition it returns must lie inside the disk without
// overlapping another.
func FuzzParsePartitionTable(f *testing.F) {
	f.Add(gptDisk(200, [3]uint64{40, 99, 0}, [3]uint64{100, 160, 7}))
	f.Add(append(mbrSector([3]uint32{0x83, 4, 10}, [3]uint32{0x05, 20, 40}), make([]byte, 70*512)...))
	f.Add(mbrSector())
	f.Fuzz(func(t *testing.T, d []byte) {
		tab, err := ReadTable(bytes.NewReader(d), int64(len(d)))
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size <= 0 || p.Start+p.Size > int64(len(d)) {
				t.Fatalf("partition %d [%d,+%d) is outside the %d-byte disk", p.Number, p.Start, p.Size, len(d))
			}
			if tab.Scheme != SchemeNone && p.Number < 1 {
				t.Fatalf("partition number %d", p.Number)
			}
		}
		if checkOverlap(tab.Partitions) != nil {
			t.Fatal("overlapping partitions returned")
		}
		l := &Layout{Table: tab, Contents: map[int]Content{}}
		_, _ = l.Candidates(Hint{})
	})
}
