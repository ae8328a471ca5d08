package imageimport

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"strings"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Source is what to import: a VMTemplate's spec.source, resolved (MaxBytes defaulted).
type Source struct {
	// URL is the http:// or https:// URL of the image. It may carry credentials
	// (user:password@, a signed query); nothing this package reports contains them.
	URL string
	// Checksum is the digest of the image as served: "sha256:<hex>" or "sha512:<hex>".
	Checksum string
	// Format is raw or qcow2; "" is raw (the API's default).
	Format vmv1alpha1.ImageFormat
	// MaxBytes caps the bytes downloaded and the image's disk (virtual) size.
	MaxBytes int64
	// CABundle is a PEM bundle of the CAs trusted for https; nil trusts the system roots.
	CABundle []byte
}

// SourceFromSpec resolves a VMTemplate's spec.source: maxSize defaults to
// vmv1alpha1.DefaultImportMaxSize.
func SourceFromSpec(s vmv1alpha1.TemplateSource) Source {
	maxSize := vmv1alpha1.DefaultImportMaxSize
	if s.MaxSize != nil {
		maxSize = *s.MaxSize
	}
	var ca []byte
	if s.CABundle != "" {
		ca = []byte(s.CABundle)
	}
	return Source{URL: s.URL, Checksum: s.Checksum, Format: s.Format, MaxBytes: maxSize.Value(), CABundle: ca}
}

// format returns the effective format ("" is raw, as the API defaults it).
func (s Source) format() vmv1alpha1.ImageFormat {
	if s.Format == "" {
		return vmv1alpha1.ImageRaw
	}
	return s.Format
}

// Validate checks every field and returns one error per bad field, each naming
// spec.source.<field> and saying what a good value looks like. The CRD's validation rules
// already reject most of this; Validate is what the agent trusts, since an object may predate
// a rule or come from a client that skipped it.
func (s Source) Validate() error {
	var errs []error
	if err := validateURL(s.URL); err != nil {
		errs = append(errs, err)
	}
	if _, _, err := ParseChecksum(s.Checksum); err != nil {
		errs = append(errs, fmt.Errorf("spec.source.checksum: %w; use the output of sha256sum or sha512sum, e.g. sha256:%s", err, strings.Repeat("0", 64)))
	}
	switch s.format() {
	case vmv1alpha1.ImageRaw, vmv1alpha1.ImageQCOW2:
	default:
		errs = append(errs, fmt.Errorf("spec.source.format is %.40q; it must be raw or qcow2", string(s.Format)))
	}
	if s.MaxBytes <= 0 {
		errs = append(errs, fmt.Errorf("spec.source.maxSize is %d bytes; it must be positive, e.g. 64Gi (or leave it out for the default %s)", s.MaxBytes, vmv1alpha1.DefaultImportMaxSize.String()))
	}
	if len(s.CABundle) > 0 {
		if _, err := certPool(s.CABundle); err != nil {
			errs = append(errs, fmt.Errorf("spec.source.caBundle: %w; it must hold only PEM \"CERTIFICATE\" blocks of the CAs to trust", err))
		}
	}
	return errors.Join(errs...)
}

// validateURL never echoes the URL: it may carry credentials.
func validateURL(raw string) error {
	if raw == "" {
		return errors.New("spec.source.url is empty; it must be an http:// or https:// URL, e.g. https://images.example.com/debian-12.raw")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// *url.Error quotes the whole URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("spec.source.url is not a valid URL (%v); it must be an http:// or https:// URL, e.g. https://images.example.com/debian-12.raw", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("spec.source.url has scheme %.20q; it must be an http:// or https:// URL, e.g. https://images.example.com/debian-12.raw", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("spec.source.url has no host; it must look like https://images.example.com/debian-12.raw")
	}
	return nil
}

// ParseChecksum splits "sha256:<64 hex>" or "sha512:<128 hex>" into the algorithm and the
// digest. It is as strict as the CRD's rule (lowercase hex only), so a checksum the API server
// accepts is never refused here, and the other way round.
func ParseChecksum(s string) (algo string, hexDigest string, err error) {
	algo, hexDigest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("checksum %.20q has no algorithm; it must be sha256:<64 hex digits> or sha512:<128 hex digits>", s)
	}
	var want int
	switch algo {
	case "sha256":
		want = 64
	case "sha512":
		want = 128
	default:
		return "", "", fmt.Errorf("checksum algorithm %.20q is not supported; it must be sha256 or sha512", algo)
	}
	if len(hexDigest) != want {
		return "", "", fmt.Errorf("a %s checksum has %d hex digits, this one has %d", algo, want, len(hexDigest))
	}
	for i := 0; i < len(hexDigest); i++ {
		switch c := hexDigest[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			return "", "", fmt.Errorf("the %s checksum has uppercase hex digits; write it in lowercase", algo)
		default:
			return "", "", fmt.Errorf("the %s checksum has %q at position %d, which is not a hex digit", algo, string(rune(c)), i+1)
		}
	}
	return algo, hexDigest, nil
}

// Redact returns scheme://host[:port]/path of rawURL: no userinfo, no query, no fragment,
// since any of them may be a credential (user:password@, a pre-signed URL's signature). A URL
// that does not parse becomes "(invalid URL)" rather than being echoed.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	// An opaque URL ("user:secret@host" parses as scheme "user") could leak the userinfo in
	// the scheme; such a thing is not a URL we would fetch anyway.
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		return "(invalid URL)"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return r.String()
}

// certPool parses a PEM bundle strictly: x509.CertPool.AppendCertsFromPEM silently skips what
// it cannot parse, which would turn a pasted private key or a broken certificate into "trust
// nothing" and a puzzling TLS error later.
func certPool(bundle []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	rest := bundle
	n := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		n++
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is a %.40q, not a CERTIFICATE", n, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d is not a valid certificate: %v", n, err)
		}
		pool.AddCert(cert)
	}
	if n == 0 {
		return nil, errors.New("no PEM block found")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("text after PEM block %d is not PEM", n)
	}
	return pool, nil
}
