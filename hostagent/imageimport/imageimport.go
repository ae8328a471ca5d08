// Package imageimport fetches a template's disk image over HTTP(S), verifies it against
// spec.source.checksum and writes it into a temporary volume, which the host agent names the
// template's origin only once it is known good.
//
// The promise is "never a half-written origin": every failure discards the temporary volume
// and returns an *Error whose Reason is one of the vmv1alpha1.ReasonImport* constants, and
// Volume.Commit runs only after the download's digest matched (for qcow2, also after the
// conversion). A raw image is streamed straight into the volume while it is hashed, with no
// copy on the host's disk. A qcow2 needs random access, so it is downloaded into a scratch
// file bounded by spec.source.maxSize, verified, inspected and converted with qemu-img.
//
// URLs may carry credentials (user:password@, a pre-signed query). No message, error or log
// line of this package contains them: URLs are shown through Redact only.
package imageimport

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/command"
)

// Phases reported in Progress.
const (
	PhaseDownloading = "Downloading"
	PhaseVerifying   = "Verifying"
	PhaseConverting  = "Converting"
)

const (
	// DefaultStallTimeout is how long the server may send nothing before the import fails
	// with ImportStalled.
	DefaultStallTimeout = 60 * time.Second
	// DefaultQemuImg is the qemu-img binary.
	DefaultQemuImg = "qemu-img"
	// scratchPrefix names qcow2 scratch files, so RemoveScratch finds only ours.
	scratchPrefix = "import-"
	// discardTimeout bounds Discard on a failure path; it runs even after ctx is cancelled.
	discardTimeout = 2 * time.Minute
	// copyBuffer is the read size: large enough that a fast link costs few syscalls.
	copyBuffer = 1 << 20
)

// Volume is where an import lands. The host agent implements it over lvm2: a temporary LV,
// renamed to the origin's name by Commit.
//
// Create and Commit may return an *Error to choose the failure's reason (e.g.
// ReasonImportOutOfSpace with both numbers, ReasonImportNameTaken); any other error becomes
// ReasonImportStorageError.
type Volume interface {
	// Create makes the temporary volume of at least size bytes and returns where to write.
	Create(ctx context.Context, size int64) (Target, error)
	// Discard removes the temporary volume. It must be idempotent: it is called on every
	// failure path, also when Create failed half way or was never called.
	Discard(ctx context.Context) error
	// Commit turns the verified temporary volume into the template's origin (rename, tag,
	// read-only). checksum is the verified "algo:hex".
	Commit(ctx context.Context, checksum string) error
}

// Target is a created temporary volume.
type Target struct {
	// OpenPath is the path this process opens to write raw data (the host root prefix
	// already applied). It must exist: it is opened without O_CREATE or O_TRUNC, as it is a
	// block device in production.
	OpenPath string
	// HostPath is the same device as a host path, for qemu-img run through the Runner.
	HostPath string
}

// Progress is a snapshot of a running import.
type Progress struct {
	// Phase is PhaseDownloading, PhaseVerifying or PhaseConverting.
	Phase string
	// Done and Total are bytes; Total is 0 when unknown (no Content-Length).
	Done, Total int64
	// BytesPerSecond is the download rate since the last report.
	BytesPerSecond int64
}

// Result is a successful import.
type Result struct {
	// Checksum is the verified digest, "algo:hex".
	Checksum string
	// Downloaded is the number of bytes downloaded.
	Downloaded int64
	// Size is the image's disk size: the raw image's length, or the qcow2's virtual size.
	// The volume is at least this large.
	Size int64
}

// Importer imports images. It keeps no state between imports; one Importer may run several
// imports at once (each with its own HTTP client and scratch file).
type Importer struct {
	// Runner runs qemu-img, with its prefix (e.g. nsenter into the host's namespaces).
	Runner command.Runner
	// QemuImg is the qemu-img binary, DefaultQemuImg when empty.
	QemuImg string
	// ScratchDir is the host directory for qcow2 scratch files (e.g.
	// /var/lib/xenclone/imports). Each import uses at most spec.source.maxSize there. Only
	// qcow2 imports need it.
	ScratchDir string
	// HostRoot prefixes the paths this process opens itself ("" when it runs on the host,
	// e.g. "/host" in a pod with the host's root mounted there). Runner's commands see
	// paths without it.
	HostRoot string
	// StallTimeout fails an import with ImportStalled when the server sends nothing for this
	// long; DefaultStallTimeout when zero.
	StallTimeout time.Duration
	// Progress, when set, is called on the importing goroutine at each phase change and at
	// most about once a second while downloading. It must not block.
	Progress func(Progress)

	// progressEvery is the throttle interval, a second unless a test shortens it.
	progressEvery time.Duration
}

// Import fetches src into a temporary volume of vol, verifies it and commits it. On any
// failure it discards the temporary volume and returns an *Error; when ctx is cancelled the
// reason is ReasonImportFailed and errors.Is(err, context.Canceled) holds.
func (im *Importer) Import(ctx context.Context, src Source, vol Volume) (Result, error) {
	a := &attempt{
		im:       im,
		src:      src,
		vol:      vol,
		url:      Redact(src.URL),
		scrubber: newScrubber(src.URL),
		step:     "starting",
	}
	a.log = logr.FromContextOrDiscard(ctx).WithValues("url", a.url, "format", string(src.format()))
	a.progress = progressReporter{fn: im.Progress, every: im.progressEvery}
	if a.progress.every == 0 {
		a.progress.every = time.Second
	}
	a.log.V(1).Info("import starting", "maxBytes", src.MaxBytes)
	start := time.Now()
	res, err := a.run(ctx)
	if err == nil {
		a.log.V(1).Info("image imported", "checksum", res.Checksum, "bytes", res.Size, "took", time.Since(start).Round(time.Millisecond))
		return res, nil
	}
	return Result{}, a.fail(ctx, err)
}

// attempt is one run of Import.
type attempt struct {
	im       *Importer
	src      Source
	vol      Volume
	url      string // redacted
	scrubber scrubber
	log      logr.Logger
	progress progressReporter
	step     string // what the import is doing, for a cancellation's message
	algo     string
	digest   string
}

func (a *attempt) setStep(step string) {
	a.step = step
	a.log.V(1).Info("import step", "step", step)
}

// errorf builds an *Error; the message is scrubbed in case a cause quoted the URL.
func (a *attempt) errorf(reason string, cause error, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: a.scrubber.scrub(fmt.Sprintf(format, args...)), Err: stripURLError(cause)}
}

// fail turns err into the returned *Error and discards the temporary volume.
func (a *attempt) fail(ctx context.Context, err error) *Error {
	var e *Error
	if !errors.As(err, &e) {
		e = a.errorf(vmv1alpha1.ReasonImportFailed, err, "%s: %v", a.step, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// Whatever broke, it broke because we were told to stop (agent shutdown, template
		// deleted): say so, and let the caller see it with errors.Is.
		e = &Error{Reason: vmv1alpha1.ReasonImportFailed,
			Message: fmt.Sprintf("import of %s cancelled while %s", a.url, a.step),
			Err:     ctxErr}
	}
	// A cancelled ctx must not keep the half-written volume: discard on a context of its
	// own, bounded so a hung lvm cannot hold the caller forever.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), discardTimeout)
	defer cancel()
	if derr := a.vol.Discard(dctx); derr != nil {
		e = &Error{Reason: e.Reason,
			Message: e.Message + "; removing the temporary volume failed too: " + a.scrubber.scrub(derr.Error()),
			Err:     errors.Join(e.Err, derr)}
	}
	return e
}

func (a *attempt) run(ctx context.Context) (Result, error) {
	if err := a.src.Validate(); err != nil {
		return Result{}, a.errorf(vmv1alpha1.ReasonImportFailed, err, "invalid source: %v", err)
	}
	a.algo, a.digest, _ = ParseChecksum(a.src.Checksum)
	if a.src.format() == vmv1alpha1.ImageQCOW2 && !filepath.IsAbs(a.im.ScratchDir) {
		return Result{}, a.errorf(vmv1alpha1.ReasonImportFailed, nil,
			"a qcow2 import needs a scratch directory on the host, and the agent has none configured (Importer.ScratchDir %q is not an absolute path)", a.im.ScratchDir)
	}

	a.setStep("connecting to the server")
	resp, body, err := a.get(ctx)
	if err != nil {
		return Result{}, err
	}
	defer body.Close()

	if a.src.format() == vmv1alpha1.ImageQCOW2 {
		return a.importQCOW2(ctx, resp, body)
	}
	return a.importRaw(ctx, resp, body)
}

// importRaw streams the body straight into the volume: no copy on the host's disk.
func (a *attempt) importRaw(ctx context.Context, resp *http.Response, body *stallReader) (Result, error) {
	size := resp.ContentLength
	switch {
	case size < 0:
		return Result{}, a.errorf(vmv1alpha1.ReasonImportBadImage, nil,
			"%s came without Content-Length: a raw image is written straight into a volume of its size, so the server must send Content-Length for raw images (or serve the image as qcow2)", a.url)
	case size == 0:
		return Result{}, a.errorf(vmv1alpha1.ReasonImportBadImage, nil, "%s is empty (Content-Length: 0)", a.url)
	case size > a.src.MaxBytes:
		return Result{}, a.errorf(vmv1alpha1.ReasonImportTooLarge, nil,
			"%s is %d bytes (Content-Length), more than spec.source.maxSize (%d bytes)", a.url, size, a.src.MaxBytes)
	}

	a.setStep("creating the temporary volume")
	tgt, err := a.create(ctx, size)
	if err != nil {
		return Result{}, err
	}
	f, err := a.openTarget(tgt, size)
	if err != nil {
		return Result{}, err
	}
	defer f.Close() // after the explicit Close below, a no-op

	a.setStep("downloading")
	h := a.newHash()
	n, err := a.copyBody(body, f, h, size, size)
	if err != nil {
		return Result{}, err
	}
	a.setStep("flushing the temporary volume")
	// The digest must describe what is on the device, not what sits in the page cache.
	if err := a.syncClose(f, tgt); err != nil {
		return Result{}, err
	}
	if err := a.verify(h, n); err != nil {
		return Result{}, err
	}
	return a.commit(ctx, n, size)
}

// importQCOW2 downloads into a scratch file (qemu-img needs random access), verifies the
// download before qemu-img parses a single byte of it, then converts it into the volume.
func (a *attempt) importQCOW2(ctx context.Context, resp *http.Response, body *stallReader) (Result, error) {
	total := resp.ContentLength
	if total > a.src.MaxBytes {
		return Result{}, a.errorf(vmv1alpha1.ReasonImportTooLarge, nil,
			"%s is %d bytes (Content-Length), more than spec.source.maxSize (%d bytes)", a.url, total, a.src.MaxBytes)
	}

	a.setStep("creating the scratch file")
	dir := filepath.Join(a.im.HostRoot, a.im.ScratchDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Result{}, a.errorf(vmv1alpha1.ReasonImportFailed, err, "create the scratch directory %s: %v", a.im.ScratchDir, err)
	}
	scratch, err := os.CreateTemp(dir, scratchPrefix+"*.qcow2")
	if err != nil {
		return Result{}, a.errorf(vmv1alpha1.ReasonImportFailed, err, "create a scratch file in %s: %v", a.im.ScratchDir, err)
	}
	defer os.Remove(scratch.Name())
	defer scratch.Close()
	scratchHost := filepath.Join(a.im.ScratchDir, filepath.Base(scratch.Name()))

	a.setStep("downloading")
	h := a.newHash()
	limit := a.src.MaxBytes
	if total >= 0 {
		limit = total
	}
	n, err := a.copyBody(body, scratch, h, total, limit)
	if err != nil {
		return Result{}, err
	}
	if err := scratch.Close(); err != nil {
		return Result{}, a.errorf(vmv1alpha1.ReasonImportFailed, err, "write the scratch file %s: %v", scratchHost, err)
	}
	// Verify first: qemu-img parses only bytes the template's author vouched for.
	if err := a.verify(h, n); err != nil {
		return Result{}, err
	}

	a.setStep("inspecting the image")
	info, err := a.qemuInfo(ctx, scratchHost)
	if err != nil {
		return Result{}, err
	}
	if err := info.check(a.src.MaxBytes); err != nil {
		err.Message = a.url + ": " + err.Message
		return Result{}, err
	}

	a.setStep("creating the temporary volume")
	tgt, err := a.create(ctx, info.VirtualSize)
	if err != nil {
		return Result{}, err
	}
	f, err := a.openTarget(tgt, info.VirtualSize)
	if err != nil {
		return Result{}, err
	}
	defer f.Close()

	a.setStep("converting")
	a.progress.phase(PhaseConverting, 0, info.VirtualSize)
	if err := a.qemuConvert(ctx, scratchHost, tgt.HostPath); err != nil {
		return Result{}, err
	}
	// qemu-img's writes went through the device's page cache, which fsync on any descriptor
	// of the device flushes; the origin must be on disk before it gets its name.
	a.setStep("flushing the temporary volume")
	if err := a.syncClose(f, tgt); err != nil {
		return Result{}, err
	}
	return a.commit(ctx, n, info.VirtualSize)
}

func (a *attempt) newHash() hash.Hash {
	if a.algo == "sha512" {
		return sha512.New()
	}
	return sha256.New()
}

func (a *attempt) verify(h hash.Hash, n int64) error {
	a.setStep("verifying the checksum")
	a.progress.phase(PhaseVerifying, n, n)
	got := hex.EncodeToString(h.Sum(nil))
	if got != a.digest {
		return a.errorf(vmv1alpha1.ReasonImportChecksumMismatch, nil,
			"%s of the download is %s, spec.source.checksum says %s (%d bytes from %s)", a.algo, got, a.digest, n, a.url)
	}
	return nil
}

func (a *attempt) create(ctx context.Context, size int64) (Target, error) {
	tgt, err := a.vol.Create(ctx, size)
	if err != nil {
		return Target{}, a.volumeError(err, "create the temporary volume of %d bytes", size)
	}
	if tgt.OpenPath == "" || !filepath.IsAbs(tgt.HostPath) {
		return Target{}, a.errorf(vmv1alpha1.ReasonImportStorageError, nil,
			"the temporary volume has no usable path (open %q, host %q)", tgt.OpenPath, tgt.HostPath)
	}
	return tgt, nil
}

// openTarget opens the volume for writing and checks it can hold need bytes: a block device
// does not grow, and writing past its end would fail only after most of the download.
func (a *attempt) openTarget(tgt Target, need int64) (*os.File, error) {
	// No O_CREATE or O_TRUNC: it is a block device, and a missing one must not become a
	// regular file that silently eats the image.
	f, err := os.OpenFile(tgt.OpenPath, os.O_WRONLY, 0)
	if err != nil {
		return nil, a.errorf(vmv1alpha1.ReasonImportStorageError, err, "open the temporary volume: %v", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, a.errorf(vmv1alpha1.ReasonImportStorageError, err, "size of the temporary volume %s: %v", tgt.OpenPath, err)
	}
	if size < need {
		f.Close()
		return nil, a.errorf(vmv1alpha1.ReasonImportStorageError, nil,
			"the temporary volume %s is %d bytes, the image needs %d", tgt.OpenPath, size, need)
	}
	return f, nil
}

func (a *attempt) commit(ctx context.Context, downloaded, size int64) (Result, error) {
	a.setStep("committing the origin")
	checksum := a.algo + ":" + a.digest
	if err := a.vol.Commit(ctx, checksum); err != nil {
		return Result{}, a.volumeError(err, "commit the verified volume as the origin")
	}
	return Result{Checksum: checksum, Downloaded: downloaded, Size: size}, nil
}

// syncClose flushes the temporary volume to disk and closes it.
func (a *attempt) syncClose(f *os.File, tgt Target) error {
	if err := f.Sync(); err != nil {
		return a.errorf(vmv1alpha1.ReasonImportFailed, err, "flush the temporary volume %s: %v", tgt.OpenPath, err)
	}
	if err := f.Close(); err != nil {
		return a.errorf(vmv1alpha1.ReasonImportFailed, err, "close the temporary volume %s: %v", tgt.OpenPath, err)
	}
	return nil
}

// volumeError keeps the reason a Volume chose, else calls it a storage error.
func (a *attempt) volumeError(err error, format string, args ...any) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	what := fmt.Sprintf(format, args...)
	return a.errorf(vmv1alpha1.ReasonImportStorageError, err, "%s: %v", what, err)
}

// RemoveScratch removes the scratch files an earlier agent left behind when it was killed
// mid-import (each can be up to spec.source.maxSize). Call it when the agent starts, before
// any import runs: it would pull the file from under a running one.
func (im *Importer) RemoveScratch() error {
	if im.ScratchDir == "" {
		return nil
	}
	dir := filepath.Join(im.HostRoot, im.ScratchDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list scratch directory %s: %w", im.ScratchDir, err)
	}
	var errs []error
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), scratchPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// progressReporter throttles Progress: a callback per read would cost more than the copy.
type progressReporter struct {
	fn       func(Progress)
	every    time.Duration
	cur      string
	last     time.Time
	lastDone int64
}

// phase reports a phase change, always.
func (p *progressReporter) phase(phase string, done, total int64) {
	p.cur = phase
	p.emit(done, total, 0)
}

// update reports progress of the current phase when the last report is old enough, or when
// final (the end of the download, so the last Done is exact).
func (p *progressReporter) update(done, total int64, final bool) {
	if p.fn == nil {
		return
	}
	now := time.Now()
	elapsed := now.Sub(p.last)
	if !final && elapsed < p.every {
		return
	}
	var rate int64
	if s := elapsed.Seconds(); s > 0 {
		rate = int64(float64(done-p.lastDone) / s)
	}
	p.emit(done, total, rate)
}

func (p *progressReporter) emit(done, total, rate int64) {
	p.last, p.lastDone = time.Now(), done
	if p.fn != nil {
		p.fn(Progress{Phase: p.cur, Done: done, Total: max(total, 0), BytesPerSecond: rate})
	}
}
