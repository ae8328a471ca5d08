package imageimport

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// crdChecksum is the CRD's validation rule of spec.source.checksum
// (api/v1alpha1/template_import_types.go).
var crdChecksum = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)

// FuzzParseChecksum: ParseChecksum accepts exactly what the API server accepts, and splits it
// losslessly.
func FuzzParseChecksum(f *testing.F) {
	for _, s := range []string{goodSHA256, goodSHA512, "sha256:", "md5:abc", ":", "sha256:" + strings.Repeat("A", 64), "sha512:" + strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		algo, digest, err := ParseChecksum(s)
		if (err == nil) != crdChecksum.MatchString(s) {
			t.Fatalf("ParseChecksum(%q) err=%v, CRD rule matches=%v", s, err, crdChecksum.MatchString(s))
		}
		if err == nil && algo+":"+digest != s {
			t.Fatalf("ParseChecksum(%q) = %q, %q", s, algo, digest)
		}
		if err != nil && (algo != "" || digest != "") {
			t.Fatalf("ParseChecksum(%q) failed but returned %q, %q", s, algo, digest)
		}
	})
}

// FuzzParseQemuInfo: the qemu-img info decoder never panics, and an image check lets through
// is a self-contained qcow2 within the limit.
func FuzzParseQemuInfo(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(infoFixtureDir, "*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in %s: %v", infoFixtureDir, err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"format":"qcow2","virtual-size":-1}`))
	f.Add([]byte(`{"format":"qcow2","virtual-size":1,"format-specific":{"data":{"data-file":""}}}`))
	const limit = 1 << 30
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := parseQemuInfo(data)
		if err != nil {
			return
		}
		if info.Format == "" {
			t.Fatal("accepted an info without format")
		}
		e := info.check(limit)
		if e != nil {
			if e.Reason != vmv1alpha1.ReasonImportBadImage && e.Reason != vmv1alpha1.ReasonImportTooLarge {
				t.Fatalf("check gave reason %q", e.Reason)
			}
			return
		}
		if info.Format != "qcow2" || info.VirtualSize <= 0 || info.VirtualSize > limit ||
			info.BackingFilename != "" || info.FullBackingFilename != "" || info.FormatSpecific.Data.DataFile != "" {
			t.Fatalf("check passed %+v", info)
		}
	})
}
