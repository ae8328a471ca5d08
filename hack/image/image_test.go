package main

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// openArchive unpacks an OCI archive and returns its one image and the index annotations.
func openArchive(t *testing.T, archive string) (v1.Image, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("tar", "-xf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("untar %s: %v: %s", archive, err, out)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("not an OCI layout: %v", err)
	}
	m, err := idx.IndexManifest()
	if err != nil || len(m.Manifests) != 1 {
		t.Fatalf("index: %v, %d manifests (want 1)", err, len(m.Manifests))
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, m.Manifests[0].Annotations
}

// entries lists the image's one layer: name -> header.
func entries(t *testing.T, img v1.Image) ([]string, map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %v, %d (want 1)", err, len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	hdrs, data := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		hdrs[h.Name] = h
		data[h.Name], _ = io.ReadAll(tr)
	}
	return names, hdrs, data
}

func TestArchiveIsReproducibleAndWhatItSays(t *testing.T) {
	src := t.TempDir()
	bin := filepath.Join(src, "xenclone")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o600); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC).Unix()
	files := []string{"usr/local/bin/xenclone=" + bin + ":0755", "/etc/passwd=" + bin + ":0644"}
	var digests []string
	var archives [][]byte
	for i := range 2 {
		out := filepath.Join(t.TempDir(), "img.tar")
		// The second build sees the source with another mtime and mode: neither may show.
		if i == 1 {
			_ = os.Chtimes(bin, time.Now(), time.Now())
			_ = os.Chmod(bin, 0o644)
		}
		if _, err := run(out, "example.test/xenclone:v1", "amd64", "65532:65532", "/usr/local/bin/xenclone", created, files, []string{"tmp:1777"}, []string{"a=b"}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		archives = append(archives, b)
		img, ann := openArchive(t, out)
		d, _ := img.Digest()
		digests = append(digests, d.String())
		if ann["io.containerd.image.name"] != "example.test/xenclone:v1" || ann["org.opencontainers.image.ref.name"] != "v1" {
			t.Errorf("index annotations %v do not name the image for containerd and OCI tools", ann)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.OS != "linux" || cfg.Architecture != "amd64" || !cfg.Created.Time.Equal(time.Unix(created, 0)) ||
			!slices.Equal(cfg.Config.Entrypoint, []string{"/usr/local/bin/xenclone"}) || cfg.Config.User != "65532:65532" ||
			cfg.Config.Labels["a"] != "b" || !slices.ContainsFunc(cfg.Config.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=") && strings.Contains(e, "/usr/bin") }) {
			t.Errorf("config %+v / %+v", cfg, cfg.Config)
		}
		mt, _ := img.MediaType()
		if mt != "application/vnd.oci.image.manifest.v1+json" {
			t.Errorf("manifest media type %s, want OCI", mt)
		}
		names, hdrs, data := entries(t, img)
		want := []string{"etc/", "etc/passwd", "tmp/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/xenclone"}
		if !slices.Equal(names, want) {
			t.Errorf("layer entries %q, want %q (parents once, sorted)", names, want)
		}
		for n, h := range hdrs {
			if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(time.Unix(created, 0)) {
				t.Errorf("%s: owner %d:%d time %v, want root and the creation time", n, h.Uid, h.Gid, h.ModTime)
			}
		}
		if m := hdrs["usr/local/bin/xenclone"].Mode; m != 0o755 {
			t.Errorf("binary mode %o, want 755 from -file, not the source's", m)
		}
		if m := hdrs["tmp/"].Mode; m != 0o1777 {
			t.Errorf("tmp mode %o, want 1777", m)
		}
		if string(data["usr/local/bin/xenclone"]) != "#!binary" {
			t.Errorf("binary content %q", data["usr/local/bin/xenclone"])
		}
	}
	if digests[0] != digests[1] || !bytes.Equal(archives[0], archives[1]) {
		t.Errorf("two builds of the same files differ: %v", digests)
	}
}

func TestBadFlagsNameTheFix(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"usr/bin/x", "dest=src:mode"},
		{"usr/bin/x=/bin/true", "no :mode"},
		{"usr/bin/x=/bin/true:rwx", "octal permission"},
		{"/=/bin/true:0755", "empty destination"},
	} {
		_, err := run(filepath.Join(t.TempDir(), "x.tar"), "x:y", "amd64", "0", "/x", 0, []string{tc.file}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("-file %q: error %v, want one saying %q", tc.file, err, tc.want)
		}
	}
	_, err := run(filepath.Join(t.TempDir(), "x.tar"), "x:y", "amd64", "0", "/x", 0, []string{"a=/nonexistent:0644"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "a: ") {
		t.Errorf("missing source: %v, want an error naming the file", err)
	}
}

// TestTheRealImageRunsTheAgentsTools builds the image as `make image` does and runs what is
// in it with no host userland: the static binary, and nsenter into PID 1's namespaces reaching
// the host's own tools, as the DaemonSet's --command-prefix does. Needs root (chroot, nsenter)
// and apt-get/dpkg-deb for the pinned Debian packages.
func TestTheRealImageRunsTheAgentsTools(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true but this test needs root (chroot, nsenter)")
		}
		t.Skip("SKIP (loudly): needs root for chroot and nsenter; run `make test` as root")
	}
	for _, c := range []string{"apt-get", "dpkg-deb", "tar"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Fatalf("%s not found: the image build takes Debian's packages", c)
		}
	}
	var digests []string
	var archive string
	for range 2 {
		archive = filepath.Join(t.TempDir(), "xenclone-image.tar")
		cmd := exec.Command("../image.sh", archive)
		cmd.Env = append(os.Environ(), "VERSION=v0.0.0-test", "IMG=example.test/xenclone:test")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("hack/image.sh: %v\n%s", err, out)
		}
		img, _ := openArchive(t, archive)
		d, _ := img.Digest()
		digests = append(digests, d.String())
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds from the same tree give %v", digests)
	}
	img, _ := openArchive(t, archive)
	root := t.TempDir()
	names, _, data := entries(t, img)
	for _, n := range names {
		if strings.Contains(n, "lvm") || strings.HasSuffix(n, "/xl") {
			t.Errorf("%s is in the image: host tools must be the host's", n)
		}
	}
	layers, _ := img.Layers()
	rc, _ := layers[0].Uncompressed()
	untar := exec.Command("tar", "-x", "-C", root)
	untar.Stdin = rc
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("unpack layer: %v: %s", err, out)
	}
	rc.Close()
	if !strings.Contains(string(data["etc/ssl/certs/ca-certificates.crt"]), "BEGIN CERTIFICATE") {
		t.Error("no CA bundle: https template imports without caBundle would fail")
	}

	// The pod gets /proc from its runtime (the host's, with hostPID); a chroot must mount it.
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "proc", "proc", proc).CombinedOutput(); err != nil {
		t.Fatalf("mount proc: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", proc).Run() })

	chroot := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("chroot", append([]string{root}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("in the image: %q: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if v := chroot("/usr/local/bin/xenclone", "version"); v != "v0.0.0-test" {
		t.Errorf("xenclone version in the image says %q, want the VERSION it was built with", v)
	}
	// The agent's command prefix, from the DaemonSet, but into this test's namespaces rather
	// than PID 1's (a sandbox's PID 1 may refuse it; the lab's e2e enters the real PID 1): it
	// must reach the host's userland (the image has no uname of its own) and the host's
	// hostname (UTS namespace).
	host, _ := os.Hostname()
	pid := strconv.Itoa(os.Getpid())
	if got := chroot("nsenter", "-t", pid, "-m", "-u", "-i", "-n", "-p", "--", "uname", "-n"); got != host {
		t.Errorf("nsenter -t %s ran uname -n = %q, want the host's %q", pid, got, host)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/uname")); err == nil {
		t.Error("the image has its own uname: the nsenter check above proves nothing")
	}
	// The DaemonSet's own prefix must run the host's tool even where busybox has an applet of
	// that name (mount, ip, losetup): busybox prefers its applets over PATH.
	ds, err := os.ReadFile(filepath.Join("..", "..", "config", "hostagent", "daemonset.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`--command-prefix=(.*)`).FindSubmatch(ds)
	if m == nil {
		t.Fatal("config/hostagent/daemonset.yaml has no --command-prefix")
	}
	prefix := strings.Fields(string(m[1]))
	for i := range prefix {
		if i > 0 && prefix[i-1] == "-t" {
			prefix[i] = pid
		}
	}
	got := chroot(append(prefix, "mount", "--version")...)
	if !strings.Contains(got, "util-linux") {
		t.Errorf("the DaemonSet's prefix %q ran mount --version = %q, want the host's util-linux mount (busybox's applet ran instead?)", m[1], got)
	}
}
