package main

// Clone cost on real storage. This kernel has no device-mapper, so LVM snapshots cannot be
// taken here (the host lab has them); what is real here is copy-on-write at the filesystem
// level: a reflink copy on XFS (cp --reflink=always), which shares every extent with the
// template until one is written — the same cost model as a thin snapshot. Against it, the full
// copies the recipe's users compare with: dd with direct I/O (no page cache on either side) and
// cp --reflink=never. Bytes allocated are the filesystem's own count (statfs free blocks before
// and after), since st_blocks and du count shared extents once per file.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// CloneCost compares one clone's creation by reflink and by full copy.
type CloneCost struct {
	Filesystem    string   `json:"filesystem"`
	TemplateBytes int64    `json:"templateBytes"`
	Methods       []Method `json:"methods"`
	// AfterWrites is the reflink clone after the guest changed FirstBootBytes in 4 KiB
	// blocks (the recipe's ≈20 MB after a first boot and login): only those are new.
	FirstBootBytes       int64   `json:"firstBootBytes"`
	AfterWritesAllocated int64   `json:"afterWritesAllocatedBytes"`
	AfterWritesSeconds   float64 `json:"afterWritesSeconds"`
	Note                 string  `json:"note"`
}

// Method is one way to make a clone.
type Method struct {
	Name    string  `json:"name"`
	Command string  `json:"command"`
	Seconds float64 `json:"seconds"`
	// AllocatedBytes is the filesystem's free space before minus after.
	AllocatedBytes int64 `json:"allocatedBytes"`
	// FileBlocksBytes is st_blocks*512 of the new file (counts shared extents).
	FileBlocksBytes int64 `json:"fileBlocksBytes"`
}

func runCloneCost(ctx context.Context, dir string, size int64) (cc *CloneCost, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("clone cost needs root (loop device, mount): skipped")
	}
	cc = &CloneCost{Filesystem: "xfs (reflink=1) on a loop device backed by a file", TemplateBytes: size, FirstBootBytes: 20 << 20,
		Note: "no device-mapper in this kernel: LVM snapshot cost is measured in the host lab, not here"}
	work, err := os.MkdirTemp(dir, "clonecost-")
	if err != nil {
		return cc, err
	}
	defer os.RemoveAll(work)
	img, mnt := filepath.Join(work, "fs.img"), filepath.Join(work, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		return cc, err
	}
	// Room for the template, two full copies and the clones.
	if err := sh(ctx, "truncate", "-s", fmt.Sprint(3*size+(1<<30)), img); err != nil {
		return cc, err
	}
	if err := sh(ctx, "mkfs.xfs", "-q", "-m", "reflink=1", img); err != nil {
		return cc, err
	}
	out, err := exec.CommandContext(ctx, "losetup", "--find", "--show", img).Output()
	if err != nil {
		return cc, fmt.Errorf("losetup: %w", err)
	}
	loop := strings.TrimSpace(string(out))
	defer func() {
		if derr := sh(context.Background(), "losetup", "-d", loop); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	if err := sh(ctx, "mount", "-t", "xfs", "-o", "nodev,nosuid,noexec", loop, mnt); err != nil {
		return cc, err
	}
	defer func() {
		if uerr := sh(context.Background(), "umount", mnt); uerr != nil {
			err = errors.Join(err, uerr)
		}
	}()

	tpl := filepath.Join(mnt, "template.img")
	logf("clone cost: writing a %d MiB template", size>>20)
	if err := writeRandom(tpl, size); err != nil {
		return cc, err
	}
	measure := func(name, command, target string, argv ...string) error {
		_ = sh(ctx, "sync")
		free0, err := fsFree(mnt)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if err := sh(ctx, argv[0], argv[1:]...); err != nil {
			return err
		}
		if err := sh(ctx, "sync", "-f", target); err != nil {
			return err
		}
		took := time.Since(t0).Seconds()
		free1, err := fsFree(mnt)
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(target, &st); err != nil {
			return err
		}
		cc.Methods = append(cc.Methods, Method{Name: name, Command: command, Seconds: took, AllocatedBytes: free0 - free1, FileBlocksBytes: st.Blocks * 512})
		logf("clone cost: %s %.2fs, %d bytes allocated", name, took, free0-free1)
		return nil
	}
	if err := measure("reflink (CoW)", "cp --reflink=always template clone && sync", filepath.Join(mnt, "reflink.img"), "cp", "--reflink=always", tpl, filepath.Join(mnt, "reflink.img")); err != nil {
		return cc, err
	}
	if err := measure("full copy, dd direct I/O", "dd bs=4M iflag=direct oflag=direct conv=fsync", filepath.Join(mnt, "dd.img"), "dd", "if="+tpl, "of="+filepath.Join(mnt, "dd.img"),
		"bs=4M", "iflag=direct", "oflag=direct", "conv=fsync", "status=none"); err != nil {
		return cc, err
	}
	if err := os.Remove(filepath.Join(mnt, "dd.img")); err != nil {
		return cc, err
	}
	if err := measure("full copy, cp", "cp --reflink=never template clone && sync", filepath.Join(mnt, "cp.img"), "cp", "--reflink=never", tpl, filepath.Join(mnt, "cp.img")); err != nil {
		return cc, err
	}

	// First boot on the reflink clone: 20 MiB of 4 KiB writes at random offsets.
	_ = sh(ctx, "sync")
	free0, err := fsFree(mnt)
	if err != nil {
		return cc, err
	}
	t0 := time.Now()
	if err := scatterWrites(filepath.Join(mnt, "reflink.img"), size, cc.FirstBootBytes); err != nil {
		return cc, err
	}
	cc.AfterWritesSeconds = time.Since(t0).Seconds()
	free1, err := fsFree(mnt)
	if err != nil {
		return cc, err
	}
	cc.AfterWritesAllocated = free0 - free1
	return cc, nil
}

func sh(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func fsFree(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bfree) * st.Bsize, nil
}

// writeRandom writes size bytes of incompressible data and syncs them to disk.
func writeRandom(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		_, _ = rng.Read(buf)
		n := int64(len(buf))
		if left < n {
			n = left
		}
		if _, err := f.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	return f.Sync()
}

// scatterWrites overwrites total bytes of the file in 4 KiB blocks at distinct random
// offsets, then syncs.
func scatterWrites(path string, size, total int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const bs = 4096
	rng := rand.New(rand.NewPCG(1, 2))
	blocks := size / bs
	buf := make([]byte, bs)
	seen := map[int64]bool{}
	for n := int64(0); n < total/bs; {
		b := rng.Int64N(blocks)
		if seen[b] {
			continue
		}
		seen[b] = true
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, b*bs); err != nil {
			return err
		}
		n++
	}
	return f.Sync()
}
