package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// The playground's image server stands in for the HTTP server a platform team keeps its
// images on: the simulated hosts' agents import the template it serves through the same code a
// real agent runs (HTTP download, checksum, import volume, commit), only the LV's data lands in
// a scratch file.

const (
	playgroundImageSize = 48 << 20
	// playgroundImageRate keeps the download slow enough to watch in `kubectl get vmt -o wide`.
	playgroundImageRate = 8 << 20
	// ImportedTemplateFile is what the README applies.
	importedTemplateFile = "vmtemplate-imported.yaml"
)

// startImageServer serves a generated raw image on 127.0.0.1 (a port of its own) and writes a
// VMTemplate that imports it into dir; it returns the template's path.
func startImageServer(ctx context.Context, log logr.Logger, dir string) (string, error) {
	img := make([]byte, playgroundImageSize)
	rng := rand.New(rand.NewChaCha8([32]byte{'x', 'e', 'n', 'c', 'l', 'o', 'n', 'e'}))
	for i := 0; i+8 <= len(img); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			img[i+j] = byte(v >> (8 * j))
		}
	}
	sum := sha256.Sum256(img)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("image server: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/images/debian-12-generic.raw" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(img)))
		const chunk = 256 << 10
		tick := time.NewTicker(time.Second * chunk / playgroundImageRate)
		defer tick.Stop()
		for off := 0; off < len(img); off += chunk {
			if _, err := w.Write(img[off:min(off+chunk, len(img))]); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	url := fmt.Sprintf("http://%s/images/debian-12-generic.raw", ln.Addr())
	log.Info("image server up", "url", url, "bytes", len(img))

	mem, maxMem, cow, maxSize := resource.MustParse("512Mi"), resource.MustParse("1Gi"), resource.MustParse("1Gi"), resource.MustParse("1Gi")
	tpl := vmv1alpha1.VMTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: vmv1alpha1.GroupVersion.String(), Kind: "VMTemplate"},
		ObjectMeta: metav1.ObjectMeta{Name: "debian12-imported"},
		Spec: vmv1alpha1.VMTemplateSpec{
			Origin: vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12-imported"},
			Source: &vmv1alpha1.TemplateSource{URL: url, Checksum: "sha256:" + hex.EncodeToString(sum[:]),
				Format: vmv1alpha1.ImageRaw, MaxSize: &maxSize},
			Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow},
			Domain: vmv1alpha1.DomainSpec{Type: "pv", Memory: &mem, MaxMemory: &maxMem, VCPUs: ptr.To[int32](1),
				Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"}, NICs: []vmv1alpha1.NIC{{Bridge: "xenbr0"}}},
		},
	}
	b, err := yaml.Marshal(tpl)
	if err != nil {
		return "", err
	}
	header := "# Written by `make run`: a template whose origin every host imports from the playground's\n" +
		"# image server (a generated raw image), checked against its sha256 before it is used.\n"
	path := filepath.Join(dir, importedTemplateFile)
	if err := os.WriteFile(path, append([]byte(header), b...), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}
