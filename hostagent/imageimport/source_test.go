package imageimport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

var (
	goodSHA256 = "sha256:" + strings.Repeat("ab", 32)
	goodSHA512 = "sha512:" + strings.Repeat("0f", 64)
)

// selfSignedPEM is a CA certificate made in the test.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestValidate(t *testing.T) {
	ca := selfSignedPEM(t)
	good := Source{URL: "https://images.example.com/debian-12.raw", Checksum: goodSHA256, Format: vmv1alpha1.ImageRaw, MaxBytes: 1 << 30, CABundle: ca}
	for _, tc := range []struct {
		name   string
		modify func(*Source)
		field  string // "" = valid
	}{
		{"valid", func(*Source) {}, ""},
		{"valid sha512 qcow2 no CA", func(s *Source) { s.Checksum = goodSHA512; s.Format = vmv1alpha1.ImageQCOW2; s.CABundle = nil }, ""},
		{"empty format is raw", func(s *Source) { s.Format = "" }, ""},
		{"empty url", func(s *Source) { s.URL = "" }, "spec.source.url"},
		{"ftp url", func(s *Source) { s.URL = "ftp://images.example.com/x" }, "spec.source.url"},
		{"file url", func(s *Source) { s.URL = "file:///etc/shadow" }, "spec.source.url"},
		{"no host", func(s *Source) { s.URL = "http:///x" }, "spec.source.url"},
		{"unparseable", func(s *Source) { s.URL = "http://exa mple.com/x" }, "spec.source.url"},
		{"relative", func(s *Source) { s.URL = "/images/x.raw" }, "spec.source.url"},
		{"no checksum", func(s *Source) { s.Checksum = "" }, "spec.source.checksum"},
		{"md5", func(s *Source) { s.Checksum = "md5:" + strings.Repeat("a", 32) }, "spec.source.checksum"},
		{"short", func(s *Source) { s.Checksum = "sha256:abc" }, "spec.source.checksum"},
		{"uppercase", func(s *Source) { s.Checksum = strings.ToUpper(goodSHA256[:7]) + strings.Repeat("AB", 32) }, "spec.source.checksum"},
		{"upper hex", func(s *Source) { s.Checksum = "sha256:" + strings.Repeat("AB", 32) }, "spec.source.checksum"},
		{"bare hex", func(s *Source) { s.Checksum = strings.Repeat("ab", 32) }, "spec.source.checksum"},
		{"format", func(s *Source) { s.Format = "vmdk" }, "spec.source.format"},
		{"zero max", func(s *Source) { s.MaxBytes = 0 }, "spec.source.maxSize"},
		{"negative max", func(s *Source) { s.MaxBytes = -1 }, "spec.source.maxSize"},
		{"garbage CA", func(s *Source) { s.CABundle = []byte("not pem") }, "spec.source.caBundle"},
		{"key in CA", func(s *Source) {
			s.CABundle = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})
		}, "spec.source.caBundle"},
		{"broken cert", func(s *Source) {
			s.CABundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}})
		}, "spec.source.caBundle"},
		{"trailing junk", func(s *Source) { s.CABundle = append(append([]byte{}, ca...), "junk"...) }, "spec.source.caBundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.modify(&s)
			err := s.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("want an error naming %s, got %v", tc.field, err)
			}
			// One bad field, one error: the others are not blamed.
			for _, other := range []string{"url", "checksum", "format", "maxSize", "caBundle"} {
				if f := "spec.source." + other; f != tc.field && strings.Contains(err.Error(), f) {
					t.Errorf("error also blames %s: %v", f, err)
				}
			}
		})
	}
}

func TestValidateNeverEchoesCredentials(t *testing.T) {
	s := Source{URL: "ftp://user:secret@images.example.com/x?token=abc", Checksum: goodSHA256, MaxBytes: 1}
	err := s.Validate()
	if err == nil {
		t.Fatal("ftp accepted")
	}
	assertNoSecrets(t, err.Error())
	s.URL = "http://user:secret@exa mple.com/x?token=abc"
	assertNoSecrets(t, s.Validate().Error())
}

func TestSourceFromSpec(t *testing.T) {
	s := SourceFromSpec(vmv1alpha1.TemplateSource{URL: "http://h/x", Checksum: goodSHA256})
	if s.MaxBytes != 64<<30 || s.CABundle != nil {
		t.Errorf("defaults: %+v", s)
	}
	q := resource.MustParse("1Mi")
	s = SourceFromSpec(vmv1alpha1.TemplateSource{URL: "http://h/x", Checksum: goodSHA256, MaxSize: &q, CABundle: "pem", Format: vmv1alpha1.ImageQCOW2})
	if s.MaxBytes != 1<<20 || string(s.CABundle) != "pem" || s.Format != vmv1alpha1.ImageQCOW2 {
		t.Errorf("copied: %+v", s)
	}
}

func TestParseChecksum(t *testing.T) {
	for _, tc := range []struct {
		in, algo string
		ok       bool
	}{
		{goodSHA256, "sha256", true},
		{goodSHA512, "sha512", true},
		{"sha256:" + strings.Repeat("a", 63), "", false},
		{"sha256:" + strings.Repeat("a", 65), "", false},
		{"sha512:" + strings.Repeat("a", 64), "", false},
		{"sha256:" + strings.Repeat("g", 64), "", false},
		{"sha256:" + strings.Repeat("A", 64), "", false},
		{"SHA256:" + strings.Repeat("a", 64), "", false},
		{"sha1:" + strings.Repeat("a", 40), "", false},
		{"sha256" + strings.Repeat("a", 64), "", false},
		{"", "", false},
		{"sha256: " + strings.Repeat("a", 63), "", false},
	} {
		algo, digest, err := ParseChecksum(tc.in)
		if (err == nil) != tc.ok || algo != tc.algo {
			t.Errorf("ParseChecksum(%q) = %q, %q, %v", tc.in, algo, digest, err)
		}
		if tc.ok && tc.algo+":"+digest != tc.in {
			t.Errorf("ParseChecksum(%q) digest %q", tc.in, digest)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:secret@images.example.com:8443/a/b.raw?X-Amz-Signature=abc#f": "https://images.example.com:8443/a/b.raw",
		"http://user@127.0.0.1/img":       "http://127.0.0.1/img",
		"http://h/p%20q?x=1":              "http://h/p%20q",
		"file:///etc/passwd":              "file:///etc/passwd",
		"ftp://u:p@mirror/x":              "ftp://mirror/x",
		"user:secret@host/x":              "(invalid URL)",
		"http://user:secret@exa mple.com": "(invalid URL)",
		"":                                "(invalid URL)",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestQemuInfoFixtures: what the importer decides about each image captured from the real
// qemu-img.
func TestQemuInfoFixtures(t *testing.T) {
	for file, want := range map[string]string{
		"qcow2.json":           "",
		"qcow2-backing.json":   vmv1alpha1.ReasonImportBadImage,
		"qcow2-data-file.json": vmv1alpha1.ReasonImportBadImage,
		"qcow2-10g.json":       vmv1alpha1.ReasonImportTooLarge,
	} {
		b, err := os.ReadFile(filepath.Join(infoFixtureDir, file))
		if err != nil {
			t.Fatal(err)
		}
		info, err := parseQemuInfo(b)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if info.Format != "qcow2" || info.VirtualSize <= 0 {
			t.Errorf("%s: decoded %+v", file, info)
		}
		got := ""
		if e := info.check(1 << 30); e != nil {
			got = e.Reason
		}
		if got != want {
			t.Errorf("%s: check = %q, want %q", file, got, want)
		}
	}
	for _, bad := range []string{`{}`, `{"format":"qcow2"}`, `{"virtual-size":1}`, `[`, `{"format":"qcow2","virtual-size":"1"}`} {
		if _, err := parseQemuInfo([]byte(bad)); err == nil {
			t.Errorf("parseQemuInfo(%s) accepted", bad)
		}
	}
}
