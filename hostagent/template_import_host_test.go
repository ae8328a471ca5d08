package hostagent

// Host-real: the import pipeline (a real HTTP download, hashing, verification) against the real
// lvm2 on a loop device for the LV bookkeeping. This kernel has no device-mapper, so lvm runs
// with activation off and an LV has no device node: its data goes to a sparse file of the LV's
// size instead (the data write into a real LV is the host lab's part).

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/internal/hosttest"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// fileTargets is LVMStorage whose import volumes are written into files standing in for their
// device nodes.
type fileTargets struct {
	LVMStorage
	dir string
}

func (f fileTargets) ImportTarget(lv lvm.LV) imageimport.Target {
	p := filepath.Join(f.dir, lv.Name)
	if fh, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		_ = fh.Truncate(int64(lv.Size))
		_ = fh.Close()
	}
	return imageimport.Target{OpenPath: p, HostPath: p}
}

func TestImportOnRealLVM(t *testing.T) {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	vg := hosttest.NewVG(t, "xcimport_"+hex.EncodeToString(b), 64<<20) // 15 extents of 4 MiB
	client := &lvm.Client{Binary: vg.LVM, Config: vg.Config}
	store := fileTargets{LVMStorage{LVM: client}, t.TempDir()}
	imp := &TemplateImporter{Storage: store, Images: store}
	fetch := &imageimport.Importer{ScratchDir: t.TempDir(), StallTimeout: 2 * time.Second}

	img := make([]byte, 9<<20)
	_, _ = rand.Read(img)
	big := make([]byte, 80<<20) // more than the VG holds
	sum := func(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/golden.raw":
			http.ServeContent(w, r, "golden.raw", time.Time{}, bytes.NewReader(img))
		case "/big.raw":
			http.ServeContent(w, r, "big.raw", time.Time{}, bytes.NewReader(big))
		case "/truncated.raw":
			w.Header().Set("Content-Length", "9437184")
			_, _ = w.Write(img[:1<<20])
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					_ = c.(*net.TCPConn).SetLinger(0)
					c.Close()
				}
			}
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	ctx := context.Background()
	owner := lvm.TemplateOwner{UID: "5e1f0c2a-0b1d-4c3e-9f00-aabbccddeeff", Name: "golden"}
	run := func(path, checksum, origin string) error {
		src := imageimport.Source{URL: srv.URL + path, Checksum: checksum, Format: vmv1alpha1.ImageRaw, MaxBytes: 1 << 30}
		vol := &importVolume{t: imp, tmp: lvm.Ref{VG: vg.Name, Name: origin + ImportSuffix}, origin: origin, owner: owner}
		_, err := fetch.Import(ctx, src, vol)
		return err
	}
	lvNames := func() []string {
		rep, err := client.Report(ctx, vg.Name)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, lv := range rep.LVs {
			out = append(out, lv.Name)
		}
		return out
	}

	// A foreign LV of an origin's name is never taken over, nor touched.
	if _, err := vg.Run("lvcreate", "--yes", "-n", "taken", "-L", "4m", vg.Name); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, checksum, origin, reason, msg string
	}{
		{"/golden.raw", "sha256:" + strings.Repeat("0", 64), "bad", vmv1alpha1.ReasonImportChecksumMismatch, sum(img)[len("sha256:"):]},
		{"/big.raw", sum(big), "big", vmv1alpha1.ReasonImportOutOfSpace, "bytes free, the origin needs 83886080"},
		{"/truncated.raw", sum(img), "cut", vmv1alpha1.ReasonImportTruncated, "of 9437184"},
		{"/missing.raw", sum(img), "gone", vmv1alpha1.ReasonImportHTTPError, "404"},
		{"/golden.raw", sum(img), "taken", vmv1alpha1.ReasonImportNameTaken, "left untouched"},
	} {
		err := run(tc.path, tc.checksum, tc.origin)
		var ie *imageimport.Error
		if !errors.As(err, &ie) || ie.Reason != tc.reason || !strings.Contains(ie.Message, tc.msg) {
			t.Errorf("%s as %s: %v, want %s with %q", tc.path, tc.origin, err, tc.reason, tc.msg)
		}
		for _, n := range lvNames() {
			if n != "taken" {
				t.Errorf("%s as %s left LV %s", tc.path, tc.origin, n)
			}
		}
	}
	if got := lvNames(); len(got) != 1 || got[0] != "taken" {
		t.Fatalf("LVs after the failures: %v", got)
	}

	if err := run("/golden.raw", sum(img), "golden"); err != nil {
		t.Fatalf("import: %v", err)
	}
	lv, err := client.LookupLV(ctx, lvm.Ref{VG: vg.Name, Name: "golden"})
	if err != nil {
		t.Fatal(err)
	}
	if !lv.ImportedFor(owner.UID) || !lv.Attr.ReadOnly() || lv.ImageChecksum() != sum(img) || lv.HasTag(lvm.ImportingTag) || lv.Size != 12<<20 {
		t.Errorf("origin after the import: %+v", lv)
	}
	data, err := os.ReadFile(filepath.Join(store.dir, "golden"+ImportSuffix))
	if err != nil || !bytes.Equal(data[:len(img)], img) {
		t.Errorf("the volume's data is not the image (%v)", err)
	}
	taken, err := client.LookupLV(ctx, lvm.Ref{VG: vg.Name, Name: "taken"})
	if err != nil || len(taken.Tags) != 0 || taken.Attr.ReadOnly() {
		t.Errorf("the foreign LV was changed: %+v, %v", taken, err)
	}
}
