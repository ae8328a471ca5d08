package imageimport

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/internal/hosttest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	if code == 0 {
		code = checkNoLeakedGoroutines()
	}
	os.Exit(code)
}

// checkNoLeakedGoroutines fails the run if an HTTP connection, a stall timer's callback or an
// import outlives the tests.
func checkNoLeakedGoroutines() int {
	var stacks string
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "net/http.(*persistConn)") && !strings.Contains(stacks, "imageimport.(*") &&
			!strings.Contains(stacks, "net/http.(*conn).serve") {
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "goroutines leaked:\n%s\n", stacks)
	return 1
}

// ---- fixtures: one raw image and qcow2s made from it with the real qemu-img ----

var (
	fixtureOnce sync.Once
	fixtureDir  string
	fixtureErr  error
	// rawImage is 3 MiB random, 1 MiB zeros, 64 KiB random: the zeros make the qcow2 sparse,
	// so the conversion must write them into a target that holds garbage.
	rawImage                                        []byte
	qcow2Img, qcow2Big, qcow2Backing, qcow2DataFile []byte
)

func makeRaw() []byte {
	r := rand.New(rand.NewChaCha8([32]byte{7}))
	b := make([]byte, 4<<20+64<<10)
	for i := range b {
		if i < 3<<20 || i >= 4<<20 {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

func init() { rawImage = makeRaw() }

// qemuImages makes the qcow2 fixtures once per run (skips loudly, or fails under CI, without
// qemu-img).
func qemuImages(t *testing.T) {
	t.Helper()
	hosttest.RequireCommands(t, "qemu-img")
	fixtureOnce.Do(func() { fixtureErr = makeQemuImages() })
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
}

func makeQemuImages() error {
	qemuImg, err := hosttest.LookPath("qemu-img")
	if err != nil {
		return err
	}
	if fixtureDir, err = os.MkdirTemp("", "imageimport-fixtures-"); err != nil {
		return err
	}
	p := func(name string) string { return filepath.Join(fixtureDir, name) }
	if err := os.WriteFile(p("base.raw"), rawImage, 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"convert", "-f", "raw", "-O", "qcow2", p("base.raw"), p("img.qcow2")},
		{"create", "-f", "qcow2", p("big.qcow2"), "1G"},
		// The backing file is a real host file: importing this would read it.
		{"create", "-f", "qcow2", "-b", p("base.raw"), "-F", "raw", p("overlay.qcow2")},
		{"create", "-f", "qcow2", "-o", "data_file=" + p("base.raw") + ",data_file_raw=on", p("datafile.qcow2"), "4M"},
	} {
		if out, err := exec.Command(qemuImg, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("qemu-img %v: %v: %s", args, err, out)
		}
	}
	for name, dst := range map[string]*[]byte{"img.qcow2": &qcow2Img, "big.qcow2": &qcow2Big, "overlay.qcow2": &qcow2Backing, "datafile.qcow2": &qcow2DataFile} {
		if *dst, err = os.ReadFile(p(name)); err != nil {
			return err
		}
	}
	return nil
}

func sha256Of(b []byte) string { s := sha256.Sum256(b); return "sha256:" + hex.EncodeToString(s[:]) }
func sha512Of(b []byte) string { s := sha512.Sum512(b); return "sha512:" + hex.EncodeToString(s[:]) }

// ---- a Volume over a file, recording what the importer did ----

type testVolume struct {
	path      string
	createErr error // returned by Create, after it made the file (a half-done Create)
	commitErr error
	lostPath  bool // Create returns a path that does not exist

	mu       sync.Mutex
	creates  []int64
	discards int
	commits  []string // successful commits
}

func newTestVolume(t *testing.T) *testVolume {
	return &testVolume{path: filepath.Join(t.TempDir(), "lv")}
}

// Create makes the file filled with 0xAA, as a reused LV holds old data: the import must
// overwrite every byte, zeros included.
func (v *testVolume) Create(_ context.Context, size int64) (Target, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.creates = append(v.creates, size)
	if err := os.WriteFile(v.path, bytes.Repeat([]byte{0xAA}, int(size)), 0o600); err != nil {
		return Target{}, err
	}
	if v.createErr != nil {
		return Target{}, v.createErr
	}
	if v.lostPath {
		return Target{OpenPath: v.path + ".missing", HostPath: v.path + ".missing"}, nil
	}
	return Target{OpenPath: v.path, HostPath: v.path}, nil
}

// Discard fails on a cancelled ctx, as lvremove run through the Runner would.
func (v *testVolume) Discard(ctx context.Context) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.discards++
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lvremove: %w", err)
	}
	if err := os.Remove(v.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (v *testVolume) Commit(_ context.Context, checksum string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.commitErr != nil {
		return v.commitErr
	}
	v.commits = append(v.commits, checksum)
	return nil
}

func (v *testVolume) state() (creates []int64, discards int, commits []string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]int64(nil), v.creates...), v.discards, append([]string(nil), v.commits...)
}

// ---- helpers ----

func newImporter(t *testing.T) *Importer {
	qemuImg, _ := hosttest.LookPath("qemu-img")
	return &Importer{QemuImg: qemuImg, ScratchDir: t.TempDir(), StallTimeout: 5 * time.Second}
}

func serve(t *testing.T, h http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// tlsServer is httptest's TLS server, quiet about the handshakes the tests make fail.
func tlsServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// image serves b with Content-Length.
func image(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}
}

// chunked serves b without Content-Length.
func chunked(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		half := len(b) / 2
		w.Write(b[:half])
		w.(http.Flusher).Flush()
		w.Write(b[half:])
	}
}

// hijacked answers with a hand-written response: Content-Length announced, body as given,
// then the connection is closed.
func hijacked(announce int, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", announce)
		rw.Write(body)
		rw.Flush()
	}
}

func assertImported(t *testing.T, v *testVolume, res Result, err error, want []byte, checksum string) {
	t.Helper()
	if err != nil {
		t.Fatalf("import failed: %v", err)
	}
	creates, discards, commits := v.state()
	if len(commits) != 1 || commits[0] != checksum {
		t.Errorf("commits %v, want exactly [%s]", commits, checksum)
	}
	if discards != 0 || len(creates) != 1 {
		t.Errorf("creates %v, discards %d; want one create, no discard", creates, discards)
	}
	got, rerr := os.ReadFile(v.path)
	if rerr != nil {
		t.Fatal(rerr)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("target differs from the image: %d bytes, want %d (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
	if res.Checksum != checksum || res.Size != int64(len(want)) {
		t.Errorf("result %+v", res)
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func assertFailed(t *testing.T, v *testVolume, err error, reason, msg string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error %s, got %T %v", reason, err, err)
	}
	t.Logf("%v", err)
	if e.Reason != reason {
		t.Errorf("reason %s, want %s (%v)", e.Reason, reason, err)
	}
	if !strings.Contains(e.Message, msg) {
		t.Errorf("message %q does not say %q", e.Message, msg)
	}
	_, discards, commits := v.state()
	if discards == 0 || len(commits) != 0 {
		t.Errorf("discards %d, commits %v; want a discard and no commit", discards, commits)
	}
	if _, err := os.Stat(v.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary volume left behind: %v", err)
	}
	return e
}

func assertNoScratch(t *testing.T, im *Importer) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(im.HostRoot, im.ScratchDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("scratch file left behind: %s", e.Name())
	}
}

// ---- success ----

func TestImportRaw(t *testing.T) {
	t.Parallel()
	srv := serve(t, image(rawImage))
	for name, sum := range map[string]string{"sha256": sha256Of(rawImage), "sha512": sha512Of(rawImage)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			im, v := newImporter(t), newTestVolume(t)
			var progress []Progress
			im.Progress = func(p Progress) { progress = append(progress, p) }
			res, err := im.Import(context.Background(), Source{URL: srv.URL + "/debian.raw", Checksum: sum, MaxBytes: 64 << 20}, v)
			assertImported(t, v, res, err, rawImage, sum)
			if creates, _, _ := v.state(); creates[0] != int64(len(rawImage)) {
				t.Errorf("volume of %d bytes, want Content-Length %d", creates[0], len(rawImage))
			}
			if res.Downloaded != int64(len(rawImage)) {
				t.Errorf("downloaded %d", res.Downloaded)
			}
			assertProgress(t, progress, []string{PhaseDownloading, PhaseVerifying}, int64(len(rawImage)))
			assertNoScratch(t, im)
		})
	}
}

// assertProgress: phases in order, the download reported to the last byte, and throttled (a
// fast local download of 4 MiB is a handful of reports, not one per read).
func assertProgress(t *testing.T, got []Progress, phases []string, size int64) {
	t.Helper()
	var seen []string
	downloads, last := 0, Progress{}
	for _, p := range got {
		if len(seen) == 0 || seen[len(seen)-1] != p.Phase {
			seen = append(seen, p.Phase)
		}
		if p.Phase == PhaseDownloading {
			downloads++
			last = p
		}
	}
	if strings.Join(seen, ",") != strings.Join(phases, ",") {
		t.Errorf("phases %v, want %v", seen, phases)
	}
	if last.Done != size {
		t.Errorf("last download progress %+v, want Done %d", last, size)
	}
	if downloads > 5 {
		t.Errorf("%d download reports: not throttled", downloads)
	}
}

func TestImportQCOW2(t *testing.T) {
	t.Parallel()
	qemuImages(t)
	for name, h := range map[string]http.HandlerFunc{"content-length": image(qcow2Img), "chunked": chunked(qcow2Img)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := serve(t, h)
			im, v := newImporter(t), newTestVolume(t)
			var progress []Progress
			im.Progress = func(p Progress) { progress = append(progress, p) }
			sum := sha256Of(qcow2Img)
			res, err := im.Import(context.Background(), Source{URL: srv.URL + "/debian.qcow2", Checksum: sum, Format: vmv1alpha1.ImageQCOW2, MaxBytes: 64 << 20}, v)
			assertImported(t, v, res, err, rawImage, sum)
			if res.Downloaded != int64(len(qcow2Img)) {
				t.Errorf("downloaded %d, want %d", res.Downloaded, len(qcow2Img))
			}
			assertProgress(t, progress, []string{PhaseDownloading, PhaseVerifying, PhaseConverting}, int64(len(qcow2Img)))
			assertNoScratch(t, im)
		})
	}
}

func TestImportFollowsHTTPRedirect(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.Handle("/old", http.RedirectHandler("/mirror/1", http.StatusFound))
	mux.Handle("/mirror/1", http.RedirectHandler("/mirror/2", http.StatusMovedPermanently))
	mux.Handle("/mirror/2", image(rawImage))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	im, v := newImporter(t), newTestVolume(t)
	res, err := im.Import(context.Background(), Source{URL: srv.URL + "/old", Checksum: sha256Of(rawImage), MaxBytes: 64 << 20}, v)
	assertImported(t, v, res, err, rawImage, sha256Of(rawImage))
}

// A server sending more than its Content-Length: nothing past it reaches the volume.
func TestImportIgnoresBytesPastContentLength(t *testing.T) {
	t.Parallel()
	srv := serve(t, hijacked(len(rawImage), append(append([]byte{}, rawImage...), bytes.Repeat([]byte("EXTRA"), 1000)...)))
	im, v := newImporter(t), newTestVolume(t)
	res, err := im.Import(context.Background(), Source{URL: srv.URL, Checksum: sha256Of(rawImage), MaxBytes: 64 << 20}, v)
	assertImported(t, v, res, err, rawImage, sha256Of(rawImage))
}

func TestImportHTTPSWithCABundle(t *testing.T) {
	t.Parallel()
	srv := tlsServer(t, image(rawImage))
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	src := Source{URL: srv.URL + "/img", Checksum: sha256Of(rawImage), MaxBytes: 64 << 20, CABundle: ca}

	t.Run("trusted", func(t *testing.T) {
		im, v := newImporter(t), newTestVolume(t)
		res, err := im.Import(context.Background(), src, v)
		assertImported(t, v, res, err, rawImage, src.Checksum)
	})
	t.Run("system roots", func(t *testing.T) {
		im, v := newImporter(t), newTestVolume(t)
		src := src
		src.CABundle = nil
		_, err := im.Import(context.Background(), src, v)
		e := assertFailed(t, v, err, vmv1alpha1.ReasonImportHTTPError, "certificate")
		if !strings.Contains(e.Message, "spec.source.caBundle") {
			t.Errorf("message does not point at caBundle: %s", e.Message)
		}
		if creates, _, _ := v.state(); len(creates) != 0 {
			t.Errorf("volume created for an unreachable image")
		}
	})
	t.Run("another CA", func(t *testing.T) {
		im, v := newImporter(t), newTestVolume(t)
		src := src
		src.CABundle = selfSignedPEM(t)
		_, err := im.Import(context.Background(), src, v)
		assertFailed(t, v, err, vmv1alpha1.ReasonImportHTTPError, "certificate")
	})
}

// ---- failures ----

func TestImportFailures(t *testing.T) {
	t.Parallel()
	qemuImages(t)
	tooMany := http.NewServeMux()
	for i := range 7 {
		tooMany.Handle(fmt.Sprintf("/r%d", i), http.RedirectHandler(fmt.Sprintf("/r%d", i+1), http.StatusFound))
	}
	tooMany.Handle("/r7", image(rawImage))
	gone := serve(t, http.NotFound)
	refused := closedPort(t)

	for _, tc := range []struct {
		name     string
		handler  http.Handler
		url      string // instead of a server's
		format   vmv1alpha1.ImageFormat
		body     []byte // what is served, for the default checksum (default rawImage)
		checksum string // default: sha256 of body
		maxBytes int64  // default 64 MiB
		volume   func(*testVolume)
		reason   string
		msg      string
		creates  bool // whether the volume may have been created
	}{
		{name: "checksum mismatch", handler: image(rawImage), checksum: goodSHA256, reason: vmv1alpha1.ReasonImportChecksumMismatch,
			msg: "sha256 of the download is " + sha256Of(rawImage)[7:] + ", spec.source.checksum says " + goodSHA256[7:], creates: true},
		{name: "checksum mismatch sha512", handler: image(rawImage), checksum: goodSHA512, reason: vmv1alpha1.ReasonImportChecksumMismatch,
			msg: "sha512 of the download is " + sha512Of(rawImage)[7:], creates: true},
		// qemu-img never sees an unverified qcow2, so no volume either.
		{name: "qcow2 checksum mismatch", handler: image(qcow2Img), format: vmv1alpha1.ImageQCOW2, checksum: goodSHA256,
			reason: vmv1alpha1.ReasonImportChecksumMismatch, msg: "spec.source.checksum says"},
		{name: "truncated", handler: hijacked(len(rawImage), rawImage[:len(rawImage)/2]), reason: vmv1alpha1.ReasonImportTruncated,
			msg: fmt.Sprintf("got %d of %d bytes", len(rawImage)/2, len(rawImage)), creates: true},
		{name: "qcow2 truncated", handler: hijacked(len(qcow2Img), qcow2Img[:1000]), format: vmv1alpha1.ImageQCOW2, body: qcow2Img,
			reason: vmv1alpha1.ReasonImportTruncated, msg: fmt.Sprintf("got 1000 of %d bytes", len(qcow2Img))},
		{name: "500", handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "boom", 500) }),
			reason: vmv1alpha1.ReasonImportHTTPError, msg: "the server answered 500 Internal Server Error"},
		{name: "404", handler: http.NotFoundHandler(), reason: vmv1alpha1.ReasonImportHTTPError, msg: "the server answered 404 Not Found"},
		{name: "connection refused", url: refused, reason: vmv1alpha1.ReasonImportHTTPError, msg: "connection refused"},
		{name: "raw larger than maxSize", handler: image(rawImage), maxBytes: 1 << 20, reason: vmv1alpha1.ReasonImportTooLarge,
			msg: fmt.Sprintf("is %d bytes (Content-Length), more than spec.source.maxSize (1048576 bytes)", len(rawImage))},
		{name: "qcow2 larger than maxSize", handler: image(qcow2Img), format: vmv1alpha1.ImageQCOW2, body: qcow2Img, maxBytes: 1 << 20,
			reason: vmv1alpha1.ReasonImportTooLarge, msg: "more than spec.source.maxSize"},
		{name: "qcow2 chunked larger than maxSize", handler: chunked(qcow2Img), format: vmv1alpha1.ImageQCOW2, body: qcow2Img, maxBytes: 1 << 20,
			reason: vmv1alpha1.ReasonImportTooLarge, msg: "the download is larger than spec.source.maxSize (1048576 bytes)"},
		{name: "qcow2 virtual size larger than maxSize", handler: image(qcow2Big), format: vmv1alpha1.ImageQCOW2, body: qcow2Big, maxBytes: 64 << 20,
			reason: vmv1alpha1.ReasonImportTooLarge, msg: "virtual size is 1073741824 bytes, more than spec.source.maxSize (67108864 bytes)"},
		{name: "raw without Content-Length", handler: chunked(rawImage), reason: vmv1alpha1.ReasonImportBadImage,
			msg: "the server must send Content-Length for raw images (or serve the image as qcow2)"},
		{name: "qcow2 with backing file", handler: image(qcow2Backing), format: vmv1alpha1.ImageQCOW2, body: qcow2Backing,
			reason: vmv1alpha1.ReasonImportBadImage, msg: "has a backing file"},
		{name: "qcow2 with external data file", handler: image(qcow2DataFile), format: vmv1alpha1.ImageQCOW2, body: qcow2DataFile,
			reason: vmv1alpha1.ReasonImportBadImage, msg: "external file"},
		{name: "qcow2 declared, raw served", handler: image(rawImage), format: vmv1alpha1.ImageQCOW2,
			reason: vmv1alpha1.ReasonImportBadImage, msg: "Image is not in qcow2 format"},
		{name: "redirect to file", handler: http.RedirectHandler("file:///etc/shadow", http.StatusFound),
			reason: vmv1alpha1.ReasonImportHTTPError, msg: "refused a redirect to file:///etc/shadow: only http and https"},
		{name: "redirect to ftp", handler: http.RedirectHandler("ftp://mirror.example.com/img", http.StatusFound),
			reason: vmv1alpha1.ReasonImportHTTPError, msg: "refused a redirect to ftp://mirror.example.com/img"},
		{name: "too many redirects", handler: tooMany, url: "/r0", reason: vmv1alpha1.ReasonImportHTTPError, msg: "more than 5 redirects"},
		{name: "redirect to a 404", handler: http.RedirectHandler(gone.URL+"/gone", http.StatusFound),
			reason: vmv1alpha1.ReasonImportHTTPError, msg: "(redirected to " + gone.URL + "/gone): the server answered 404"},
		{name: "out of space", handler: image(rawImage), reason: vmv1alpha1.ReasonImportOutOfSpace, msg: "vg0 has 1 MiB free", creates: true,
			volume: func(v *testVolume) {
				v.createErr = &Error{Reason: vmv1alpha1.ReasonImportOutOfSpace, Message: "vg0 has 1 MiB free, the image needs 5 MiB"}
			}},
		{name: "lvcreate fails", handler: image(rawImage), reason: vmv1alpha1.ReasonImportStorageError, msg: "create the temporary volume of", creates: true,
			volume: func(v *testVolume) { v.createErr = errors.New("lvcreate: exit status 5") }},
		{name: "name taken on commit", handler: image(rawImage), reason: vmv1alpha1.ReasonImportNameTaken, msg: "debian-12 exists", creates: true,
			volume: func(v *testVolume) {
				v.commitErr = &Error{Reason: vmv1alpha1.ReasonImportNameTaken, Message: "vg0/debian-12 exists"}
			}},
		{name: "volume without a device", handler: image(rawImage), reason: vmv1alpha1.ReasonImportStorageError, msg: "open the temporary volume", creates: true,
			volume: func(v *testVolume) { v.lostPath = true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := tc.url
			if tc.handler != nil {
				srv := httptest.NewServer(tc.handler)
				t.Cleanup(srv.Close)
				url = srv.URL + url
			}
			served := tc.body
			if served == nil {
				served = rawImage
			}
			src := Source{URL: url, Format: tc.format, Checksum: tc.checksum, MaxBytes: tc.maxBytes}
			if src.Checksum == "" {
				src.Checksum = sha256Of(served)
			}
			if src.MaxBytes == 0 {
				src.MaxBytes = 64 << 20
			}
			im, v := newImporter(t), newTestVolume(t)
			if tc.volume != nil {
				tc.volume(v)
			}
			_, err := im.Import(context.Background(), src, v)
			assertFailed(t, v, err, tc.reason, tc.msg)
			if creates, _, _ := v.state(); !tc.creates && len(creates) != 0 {
				t.Errorf("volume created (%v) though the image was refused before", creates)
			}
			assertNoScratch(t, im)
		})
	}
}

// closedPort is a URL nobody listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/img"
}

func TestImportRefusesHTTPSDowngrade(t *testing.T) {
	t.Parallel()
	plain := serve(t, image(rawImage))
	tlsSrv := tlsServer(t, http.RedirectHandler(plain.URL+"/img", http.StatusFound))
	im, v := newImporter(t), newTestVolume(t)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw})
	_, err := im.Import(context.Background(), Source{URL: tlsSrv.URL, Checksum: sha256Of(rawImage), MaxBytes: 64 << 20, CABundle: ca}, v)
	assertFailed(t, v, err, vmv1alpha1.ReasonImportHTTPError, "refused a redirect from https to "+plain.URL+"/img")
}

// stallingServer sends Content-Length and some bytes, then nothing until the client goes away.
func stallingServer(t *testing.T, body []byte, total int) *httptest.Server {
	done := make(chan struct{})
	srv := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(total))
		w.Write(body)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	t.Cleanup(func() { close(done) }) // runs before srv.Close
	return srv
}

func TestImportStalled(t *testing.T) {
	t.Parallel()
	qemuImages(t)
	for _, format := range []vmv1alpha1.ImageFormat{vmv1alpha1.ImageRaw, vmv1alpha1.ImageQCOW2} {
		t.Run(string(format), func(t *testing.T) {
			t.Parallel()
			srv := stallingServer(t, rawImage[:64<<10], len(rawImage))
			im, v := newImporter(t), newTestVolume(t)
			im.StallTimeout = 300 * time.Millisecond
			start := time.Now()
			_, err := im.Import(context.Background(), Source{URL: srv.URL, Format: format, Checksum: sha256Of(rawImage), MaxBytes: 64 << 20}, v)
			assertFailed(t, v, err, vmv1alpha1.ReasonImportStalled, "the server sent nothing for 300ms after 65536 bytes")
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("stall noticed after %v", took)
			}
			assertNoScratch(t, im)
		})
	}
}

// A server that is slow but never silent for the stall timeout is not stalled.
func TestImportSlowServerIsNotStalled(t *testing.T) {
	t.Parallel()
	srv := serve(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(rawImage)))
		for i := 0; i < len(rawImage); i += len(rawImage) / 8 {
			w.Write(rawImage[i:min(i+len(rawImage)/8, len(rawImage))])
			w.(http.Flusher).Flush()
			time.Sleep(40 * time.Millisecond)
		}
	})
	im, v := newImporter(t), newTestVolume(t)
	im.StallTimeout = 150 * time.Millisecond // less than the whole download, more than a gap
	im.progressEvery = 50 * time.Millisecond
	var rates []int64
	im.Progress = func(p Progress) {
		if p.Phase == PhaseDownloading && p.BytesPerSecond > 0 {
			rates = append(rates, p.BytesPerSecond)
		}
	}
	res, err := im.Import(context.Background(), Source{URL: srv.URL, Checksum: sha256Of(rawImage), MaxBytes: 64 << 20}, v)
	assertImported(t, v, res, err, rawImage, sha256Of(rawImage))
	if len(rates) == 0 {
		t.Error("no download rate reported")
	}
	for _, r := range rates {
		// about 4 MiB in 8 × 40 ms; a rate beyond 1 GiB/s is a wrong computation.
		if r > 1<<30 {
			t.Errorf("rate %d B/s", r)
		}
	}
}

func TestImportCancelled(t *testing.T) {
	t.Parallel()
	qemuImages(t)
	for _, format := range []vmv1alpha1.ImageFormat{vmv1alpha1.ImageRaw, vmv1alpha1.ImageQCOW2} {
		t.Run(string(format), func(t *testing.T) {
			t.Parallel()
			srv := stallingServer(t, rawImage[:64<<10], len(rawImage))
			im, v := newImporter(t), newTestVolume(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// Cancel once bytes arrived, as a shutdown would in the middle of a download.
			im.progressEvery = time.Nanosecond
			im.Progress = func(p Progress) {
				if p.Phase == PhaseDownloading && p.Done > 0 {
					cancel()
				}
			}
			_, err := im.Import(ctx, Source{URL: srv.URL, Format: format, Checksum: sha256Of(rawImage), MaxBytes: 64 << 20}, v)
			assertFailed(t, v, err, vmv1alpha1.ReasonImportFailed, "cancelled while downloading")
			if !errors.Is(err, context.Canceled) {
				t.Errorf("errors.Is(err, context.Canceled) is false: %v", err)
			}
			assertNoScratch(t, im)
		})
	}
	t.Run("before connecting", func(t *testing.T) {
		t.Parallel()
		srv := serve(t, image(rawImage))
		im, v := newImporter(t), newTestVolume(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := im.Import(ctx, Source{URL: srv.URL, Checksum: sha256Of(rawImage), MaxBytes: 64 << 20}, v)
		assertFailed(t, v, err, vmv1alpha1.ReasonImportFailed, "cancelled")
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(err, context.Canceled) is false: %v", err)
		}
	})
}

// ---- credentials ----

var secrets = []string{"secret", "user:", "token=abc"}

func assertNoSecrets(t *testing.T, text string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%q leaks %q", text, s)
		}
	}
}

func TestImportNeverShowsCredentials(t *testing.T) {
	t.Parallel()
	// The server insists on the credentials, so the test also proves they are used.
	authed := func(next http.Handler) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "secret" || r.URL.Query().Get("token") != "abc" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		}
	}
	withCreds := func(base, path string) string {
		return strings.Replace(base, "http://", "http://user:secret@", 1) + path + "?token=abc"
	}
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A server whose error page echoes the request, credentials and all.
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, "denied %s %s", r.URL.String(), r.Header.Get("Authorization"))
	})

	for _, tc := range []struct {
		name    string
		handler http.Handler
		path    string
		url     string
		reason  string
	}{
		{name: "ok", handler: authed(image(rawImage)), path: "/img"},
		{name: "404", handler: authed(http.NotFoundHandler()), path: "/img", reason: vmv1alpha1.ReasonImportHTTPError},
		{name: "error page echoes the request", handler: authed(echo), path: "/img", reason: vmv1alpha1.ReasonImportHTTPError},
		{name: "checksum mismatch", handler: authed(image(rawImage[:4096])), path: "/img", reason: vmv1alpha1.ReasonImportChecksumMismatch},
		{name: "truncated", handler: authed(hijacked(len(rawImage), rawImage[:10])), path: "/img", reason: vmv1alpha1.ReasonImportTruncated},
		{name: "redirect with credentials", path: "/img", reason: vmv1alpha1.ReasonImportHTTPError,
			handler: http.RedirectHandler("ftp://user:secret@127.0.0.1/img?token=abc", http.StatusFound)},
		{name: "connection refused", url: withCreds(strings.TrimSuffix(closedPort(t), "/img"), "/img"), reason: vmv1alpha1.ReasonImportHTTPError},
		{name: "invalid source", url: "http://user:secret@exa mple.com/img?token=abc", reason: vmv1alpha1.ReasonImportFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := tc.url
			if tc.handler != nil {
				url = withCreds(serve(t, tc.handler.ServeHTTP).URL, tc.path)
			}
			var logMu sync.Mutex
			var logs strings.Builder
			log := funcr.New(func(prefix, args string) {
				logMu.Lock()
				defer logMu.Unlock()
				fmt.Fprintln(&logs, prefix, args)
			}, funcr.Options{Verbosity: 10})
			ctx := logr.NewContext(context.Background(), log)
			im, v := newImporter(t), newTestVolume(t)
			res, err := im.Import(ctx, Source{URL: url, Checksum: sha256Of(rawImage), MaxBytes: 64 << 20}, v)
			if tc.reason == "" {
				assertImported(t, v, res, err, rawImage, sha256Of(rawImage))
			} else {
				e := assertFailed(t, v, err, tc.reason, "")
				assertNoSecrets(t, err.Error())
				assertNoSecrets(t, fmt.Sprintf("%+v", err))
				if e.Err != nil {
					assertNoSecrets(t, e.Err.Error())
				}
			}
			logMu.Lock()
			defer logMu.Unlock()
			if !strings.Contains(logs.String(), "import starting") {
				t.Errorf("no logs captured: %s", logs.String())
			}
			assertNoSecrets(t, logs.String())
		})
	}
}

// ---- scratch ----

func TestRemoveScratch(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	im := &Importer{HostRoot: root, ScratchDir: "/var/lib/xenclone/imports"}
	dir := filepath.Join(root, im.ScratchDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"import-123.qcow2", "import-456.qcow2", "keep.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := im.RemoveScratch(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "keep.txt" {
		t.Errorf("left %v", entries)
	}
	if err := (&Importer{HostRoot: root, ScratchDir: "/nonexistent"}).RemoveScratch(); err != nil {
		t.Errorf("missing directory: %v", err)
	}
}

// The scratch file is opened under HostRoot, and qemu-img (through the Runner) is given the
// host path: here the Runner's prefix maps host paths into the test's root.
func TestImportQCOW2UnderHostRoot(t *testing.T) {
	t.Parallel()
	qemuImages(t)
	srv := serve(t, image(qcow2Img))
	root := t.TempDir()
	im, v := newImporter(t), newTestVolume(t)
	im.HostRoot, im.ScratchDir = root, "/imports"
	// A shell prefix that runs qemu-img with every absolute /imports path rewritten under
	// the root, as nsenter would see the host's /imports.
	im.Runner.Prefix = []string{"sh", "-c", `root=$1; shift; bin=$1; shift; for a; do case $a in /imports/*) a=$root$a;; esac; set -- "$@" "$a"; shift; done; exec "$bin" "$@"`, "sh", root}
	res, err := im.Import(context.Background(), Source{URL: srv.URL, Checksum: sha256Of(qcow2Img), Format: vmv1alpha1.ImageQCOW2, MaxBytes: 64 << 20}, v)
	assertImported(t, v, res, err, rawImage, sha256Of(qcow2Img))
	assertNoScratch(t, im)
}
