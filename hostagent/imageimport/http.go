package imageimport

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

const (
	// connectTimeout bounds each of dialling, the TLS handshake and waiting for the response
	// headers. The body has no overall deadline (a 64Gi image takes what it takes); the
	// stall timeout guards it instead.
	connectTimeout = 30 * time.Second
	// maxRedirects is how many redirects are followed (mirrors, a CDN's signed URL).
	maxRedirects = 5
	userAgent    = "xenclone-hostagent"
)

// errStalled is what a read returns once the stall timer cancelled the request.
var errStalled = errors.New("no data within the stall timeout")

// client builds the HTTP client of one import: its own transport, so a template's CA bundle
// trusts nothing for any other template, and no connection outlives the import.
func (a *attempt) client() (*http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(a.src.CABundle) > 0 {
		pool, err := certPool(a.src.CABundle)
		if err != nil {
			return nil, fmt.Errorf("spec.source.caBundle: %w", err)
		}
		tlsConfig.RootCAs = pool
	}
	dialer := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		// Hosts that reach the image server only through a proxy configure it the usual way.
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   connectTimeout,
		ResponseHeaderTimeout: connectTimeout,
		// The checksum is of the image as served, and a raw image's Content-Length is the
		// volume's size: transparent gzip decoding would break both.
		DisableCompression: true,
		DisableKeepAlives:  true,
		ForceAttemptHTTP2:  true, // a custom TLS config turns HTTP/2 off otherwise
	}
	return &http.Client{Transport: transport, CheckRedirect: checkRedirect}, nil
}

// checkRedirect follows at most maxRedirects redirects, to http(s) only: a file:// or ftp://
// Location must not make the agent read something else. It refuses https to http too, which
// would send the URL's credentials in the clear.
func checkRedirect(req *http.Request, via []*http.Request) error {
	target := Redact(req.URL.String())
	switch req.URL.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("refused a redirect to %s: only http and https URLs are followed", target)
	}
	if prev := via[len(via)-1]; prev.URL.Scheme == "https" && req.URL.Scheme == "http" {
		return fmt.Errorf("refused a redirect from https to %s: an https download is not continued over plain http", target)
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("refused a redirect to %s: more than %d redirects", target, maxRedirects)
	}
	return nil
}

// get sends the request and checks the status. The body it returns is guarded by the stall
// timer; closing it also releases the request.
func (a *attempt) get(ctx context.Context) (*http.Response, *stallReader, error) {
	client, err := a.client()
	if err != nil {
		return nil, nil, a.errorf(vmv1alpha1.ReasonImportFailed, err, "%v", err)
	}
	reqCtx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, a.src.URL, nil)
	if err != nil {
		cancel()
		err = stripURLError(err)
		return nil, nil, a.errorf(vmv1alpha1.ReasonImportFailed, err, "build the request for %s: %v", a.url, err)
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		err = stripURLError(err)
		msg := fmt.Sprintf("GET %s: %v", a.url, err)
		var unknownCA x509.UnknownAuthorityError
		if errors.As(err, &unknownCA) {
			msg += " (if the server's certificate is signed by a private CA, put that CA in spec.source.caBundle)"
		}
		return nil, nil, a.errorf(vmv1alpha1.ReasonImportHTTPError, err, "%s", msg)
	}
	if resp.StatusCode != http.StatusOK {
		// The error body is not shown: it may echo the request, signed query included.
		resp.Body.Close()
		cancel()
		final := Redact(resp.Request.URL.String())
		msg := fmt.Sprintf("GET %s: the server answered %s", a.url, resp.Status)
		if final != a.url {
			msg = fmt.Sprintf("GET %s (redirected to %s): the server answered %s", a.url, final, resp.Status)
		}
		return nil, nil, a.errorf(vmv1alpha1.ReasonImportHTTPError, nil, "%s", msg)
	}
	return resp, newStallReader(resp.Body, a.im.stallTimeout(), cancel), nil
}

func (im *Importer) stallTimeout() time.Duration {
	if im.StallTimeout > 0 {
		return im.StallTimeout
	}
	return DefaultStallTimeout
}

// stallReader fails a read that waits longer than timeout for the server: the timer runs
// only while a Read waits, so a slow disk on our side never counts as a stalled server.
// When it fires it cancels the request, which unblocks the read.
type stallReader struct {
	body    io.ReadCloser
	timeout time.Duration
	timer   *time.Timer
	cancel  context.CancelFunc
	fired   atomic.Bool
}

func newStallReader(body io.ReadCloser, timeout time.Duration, cancel context.CancelFunc) *stallReader {
	s := &stallReader{body: body, timeout: timeout, cancel: cancel}
	s.timer = time.AfterFunc(timeout, func() {
		s.fired.Store(true)
		cancel()
	})
	s.timer.Stop()
	return s
}

func (s *stallReader) Read(p []byte) (int, error) {
	s.timer.Reset(s.timeout)
	n, err := s.body.Read(p)
	s.timer.Stop()
	if err != nil && err != io.EOF && s.fired.Load() {
		err = errStalled
	}
	return n, err
}

func (s *stallReader) Close() error {
	s.timer.Stop()
	err := s.body.Close()
	s.cancel()
	return err
}

// copyBody copies the body into dst while hashing it. want is the Content-Length (-1 when
// unknown); at most limit bytes are written — want when known (a server sending more than it
// announced is not trusted with the extra), else spec.source.maxSize.
func (a *attempt) copyBody(body *stallReader, dst io.Writer, h hash.Hash, want, limit int64) (int64, error) {
	a.progress.phase(PhaseDownloading, 0, want)
	buf := make([]byte, copyBuffer)
	var n int64
	for {
		// Read one byte past the limit, to tell "exactly the limit" from "more".
		chunk := buf
		if room := limit - n + 1; room < int64(len(chunk)) {
			chunk = chunk[:room]
		}
		k, rerr := body.Read(chunk)
		over := n+int64(k) > limit
		if over {
			k = int(limit - n)
		}
		if k > 0 {
			if _, err := dst.Write(chunk[:k]); err != nil {
				return n, a.errorf(vmv1alpha1.ReasonImportFailed, err, "write after %d bytes: %v", n, err)
			}
			h.Write(chunk[:k])
			n += int64(k)
			a.progress.update(n, want, false)
		}
		if over {
			if want >= 0 {
				return n, a.errorf(vmv1alpha1.ReasonImportHTTPError, nil,
					"%s: the server sent more than its Content-Length of %d bytes", a.url, want)
			}
			return n, a.errorf(vmv1alpha1.ReasonImportTooLarge, nil,
				"%s: the download is larger than spec.source.maxSize (%d bytes)", a.url, a.src.MaxBytes)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, a.readError(rerr, n, want)
		}
	}
	a.progress.update(n, want, true)
	if want >= 0 && n < want {
		return n, a.errorf(vmv1alpha1.ReasonImportTruncated, nil, "got %d of %d bytes from %s", n, want, a.url)
	}
	return n, nil
}

func (a *attempt) readError(err error, n, want int64) error {
	switch {
	case errors.Is(err, errStalled):
		return a.errorf(vmv1alpha1.ReasonImportStalled, err,
			"the server sent nothing for %v after %d bytes (%s)", a.im.stallTimeout(), n, a.url)
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return err // the caller's ctx: fail reports it as a cancellation
	case want >= 0:
		return a.errorf(vmv1alpha1.ReasonImportTruncated, err, "got %d of %d bytes from %s: %v", n, want, a.url, stripURLError(err))
	default:
		return a.errorf(vmv1alpha1.ReasonImportTruncated, err, "the download from %s broke after %d bytes: %v", a.url, n, stripURLError(err))
	}
}
