// Command image assembles xenclone's one container image as an OCI archive, without a
// container engine: one layer built from the files named on the command line, written with
// fixed owners, modes and times so that the same files give the same digest on any machine.
// hack/image.sh gathers the files (the static binary, busybox-static as nsenter, the CA
// bundle) and calls it; `make image` calls that.
//
//	go run ./hack/image -out bin/xenclone-image.tar -tag ghcr.io/xenclone/xenclone:latest \
//	    -file usr/local/bin/xenclone=/tmp/xenclone:0755 ...
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// file is one regular file of the image's layer.
type file struct {
	Dest string // path in the image, relative ("usr/bin/nsenter")
	Src  string // path on this machine
	Mode int64  // permission bits as tar writes them (0o755, 0o1777)
}

// spec is everything the image is made of: the same spec gives the same digest.
type spec struct {
	Files   []file
	Dirs    map[string]int64 // extra empty directories ("tmp": 01777)
	Created time.Time
	Arch    string
	Config  v1.Config
}

// parseFile reads "dest=src:mode".
func parseFile(s string) (file, error) {
	dest, rest, ok := strings.Cut(s, "=")
	if !ok {
		return file{}, fmt.Errorf("-file %q: want dest=src:mode, e.g. usr/bin/nsenter=/bin/busybox:0755", s)
	}
	src, modeStr, ok := strings.Cut(rest, ":")
	if !ok {
		return file{}, fmt.Errorf("-file %q: no :mode after the source path (e.g. :0644)", s)
	}
	mode, err := strconv.ParseUint(modeStr, 8, 32)
	if err != nil || mode > 0o7777 {
		return file{}, fmt.Errorf("-file %q: mode %q is not an octal permission like 0755", s, modeStr)
	}
	dest = strings.TrimPrefix(path.Clean("/"+dest), "/")
	if dest == "" {
		return file{}, fmt.Errorf("-file %q: empty destination", s)
	}
	return file{Dest: dest, Src: src, Mode: int64(mode)}, nil
}

// layerTar writes the layer's tar: every parent directory once, entries sorted by path,
// owned by root, all times the image's creation time, no names or extended headers from
// this machine.
func layerTar(sp spec) ([]byte, error) {
	dirs := map[string]int64{}
	for d, m := range sp.Dirs {
		dirs[path.Clean(d)] = m
	}
	files := map[string]file{}
	for _, f := range sp.Files {
		if _, dup := files[f.Dest]; dup {
			return nil, fmt.Errorf("%s is given twice", f.Dest)
		}
		files[f.Dest] = f
		for d := path.Dir(f.Dest); d != "."; d = path.Dir(d) {
			if _, ok := dirs[d]; !ok {
				dirs[d] = 0o755
			}
		}
	}
	for d := range dirs {
		for p := path.Dir(d); p != "."; p = path.Dir(p) {
			if _, ok := dirs[p]; !ok {
				dirs[p] = 0o755
			}
		}
	}
	names := make([]string, 0, len(dirs)+len(files))
	for d := range dirs {
		if _, clash := files[d]; clash {
			return nil, fmt.Errorf("%s is both a file and a directory", d)
		}
		names = append(names, d)
	}
	for f := range files {
		names = append(names, f)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		hdr := &tar.Header{Name: n, ModTime: sp.Created, Format: tar.FormatPAX, Uname: "root", Gname: "root"}
		if m, ok := dirs[n]; ok {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, n+"/", m
			if err := tw.WriteHeader(hdr); err != nil {
				return nil, err
			}
			continue
		}
		f := files[n]
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.Dest, err)
		}
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, f.Mode, int64(len(data))
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// build makes the image: one OCI layer and an OCI config, no history from this machine.
func build(sp spec) (v1.Image, error) {
	data, err := layerTar(sp)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: sp.Created}, CreatedBy: "hack/image", Comment: "xenclone"},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", sp.Arch
	cfg.Created = v1.Time{Time: sp.Created}
	cfg.Config = sp.Config
	return mutate.ConfigFile(img, cfg)
}

// writeArchive writes img as an OCI image layout in one tar (what `ctr images import`,
// `podman load` and `skopeo copy oci-archive:` read), named tag in the index.
func writeArchive(out, tag string, img v1.Image, created time.Time) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", tag, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(out), ".image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	// containerd names an imported image after io.containerd.image.name; other tools after
	// the OCI ref name.
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ref.Name(),
		"org.opencontainers.image.ref.name": ref.TagStr(),
	})); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	tmp := out + ".tmp"
	if err := tarDir(dir, tmp, created); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, out)
}

// tarDir tars an OCI layout directory with sorted entries and fixed metadata.
func tarDir(dir, out string, created time.Time) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, n := range names {
		st, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return errors.Join(err, f.Close())
		}
		hdr := &tar.Header{Name: n, ModTime: created, Mode: 0o644, Typeflag: tar.TypeReg, Size: st.Size(), Format: tar.FormatPAX}
		if st.IsDir() {
			hdr.Name, hdr.Mode, hdr.Typeflag, hdr.Size = n+"/", 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return errors.Join(err, f.Close())
		}
		if !st.IsDir() {
			data, err := os.ReadFile(filepath.Join(dir, n))
			if err != nil {
				return errors.Join(err, f.Close())
			}
			if _, err := tw.Write(data); err != nil {
				return errors.Join(err, f.Close())
			}
		}
	}
	return errors.Join(tw.Close(), f.Close())
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	var files, dirs, labels multi
	out := flag.String("out", "bin/xenclone-image.tar", "the OCI archive to write")
	tag := flag.String("tag", "ghcr.io/xenclone/xenclone:latest", "the image's name in the archive")
	arch := flag.String("arch", "amd64", "the image's architecture (that of the files given)")
	created := flag.Int64("created", 0, "the image's creation time, seconds since 1970 (e.g. the commit's time)")
	user := flag.String("user", "65532:65532", "the user the image runs as unless the pod says otherwise")
	entrypoint := flag.String("entrypoint", "/usr/local/bin/xenclone", "the image's entrypoint (the lab's pause image has its own)")
	flag.Var(&files, "file", "dest=src:mode, a file of the image (repeatable)")
	flag.Var(&dirs, "dir", "dest:mode, an empty directory of the image (repeatable)")
	flag.Var(&labels, "label", "key=value, an image label (repeatable)")
	flag.Parse()

	digest, err := run(*out, *tag, *arch, *user, *entrypoint, *created, files, dirs, labels)
	if err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s@%s\n", *out, *tag, digest)
}

// run builds and writes the archive and returns the image's digest.
func run(out, tag, arch, user, entrypoint string, created int64, files, dirs, labels []string) (v1.Hash, error) {
	sp := spec{
		Dirs:    map[string]int64{},
		Created: time.Unix(created, 0).UTC(),
		Arch:    arch,
		Config: v1.Config{
			Entrypoint: []string{entrypoint},
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			User:       user,
			WorkingDir: "/",
			Labels:     map[string]string{},
		},
	}
	for _, s := range files {
		f, err := parseFile(s)
		if err != nil {
			return v1.Hash{}, err
		}
		sp.Files = append(sp.Files, f)
	}
	for _, s := range dirs {
		d, modeStr, ok := strings.Cut(s, ":")
		mode, err := strconv.ParseUint(modeStr, 8, 32)
		if !ok || err != nil {
			return v1.Hash{}, fmt.Errorf("-dir %q: want dest:mode, e.g. tmp:1777", s)
		}
		sp.Dirs[strings.TrimPrefix(path.Clean("/"+d), "/")] = int64(mode)
	}
	for _, s := range labels {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return v1.Hash{}, fmt.Errorf("-label %q: want key=value", s)
		}
		sp.Config.Labels[k] = v
	}
	img, err := build(sp)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := writeArchive(out, tag, img, sp.Created); err != nil {
		return v1.Hash{}, err
	}
	return img.Digest()
}
