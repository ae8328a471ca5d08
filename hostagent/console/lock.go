package console

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Lock is a held console lock: an exclusive flock on <dir>/<domain>.lock. The kernel drops it
// when the holder exits however it exits, so a crashed session never blocks the next one.
type Lock struct {
	f *os.File
}

// BusyError says another session holds the domain's console.
type BusyError struct {
	Domain string
	// PID and Since are what the holder wrote into the lock file; zero when it had not written
	// them yet (it takes the lock first).
	PID   int
	Since time.Time
}

func (e *BusyError) Error() string {
	holder := "holder unknown"
	if e.PID > 0 {
		holder = fmt.Sprintf("pid %d since %s", e.PID, e.Since.Format(time.RFC3339))
	}
	return fmt.Sprintf("another console session is attached to domain %s (%s); detach it first (Ctrl-])", e.Domain, holder)
}

// Acquire takes the console lock of domain in dir (created if missing) without waiting, and
// records this process and the time in it. When another session holds it, the error is a
// *BusyError naming that session.
func Acquire(dir, domain string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create console lock folder: %w", err)
	}
	path := filepath.Join(dir, domain+".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open console lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, busy(f, domain)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := record(f, os.Getpid(), time.Now()); err != nil {
		f.Close()
		return nil, fmt.Errorf("write console lock %s: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release lets the next session in. The file stays: removing it would let a session that
// opened it before the removal lock an orphaned inode while a third locks a new file.
func (l *Lock) Release() {
	_ = l.f.Close()
}

// The lock file's content: "<pid> <RFC 3339 time>\n".
func record(f *os.File, pid int, since time.Time) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(fmt.Sprintf("%d %s\n", pid, since.UTC().Format(time.RFC3339))), 0)
	return err
}

func busy(f *os.File, domain string) *BusyError {
	e := &BusyError{Domain: domain}
	buf := make([]byte, 128)
	n, _ := f.ReadAt(buf, 0)
	fields := strings.Fields(string(buf[:n]))
	if len(fields) != 2 {
		return e
	}
	pid, err1 := strconv.Atoi(fields[0])
	since, err2 := time.Parse(time.RFC3339, fields[1])
	if err1 == nil && err2 == nil {
		e.PID, e.Since = pid, since
	}
	return e
}
