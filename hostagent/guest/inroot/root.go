// Package inroot edits files of a mounted guest filesystem with every path resolved inside
// it, as the guest itself would resolve it: absolute and relative symlinks and ".." are
// scoped to the guest root by the kernel (openat2 RESOLVE_IN_ROOT), magic links are refused
// and no mount point is crossed. Guests legitimately contain absolute symlinks
// (/etc/localtime, Debian's /var/lib/dbus/machine-id -> /etc/machine-id), which os.Root
// refuses; a hostile one (/etc/hostname -> /etc/shadow) lands on the guest's file, never the
// host's.
//
// Content is only ever read or written through a descriptor that fstat proved to be a regular
// file, opened with O_NONBLOCK|O_NOCTTY so a FIFO or a terminal cannot stall or adopt the
// agent; the mount is nodev, so device nodes cannot even be opened. Removal unlinks the
// directory entry itself (a symlink is removed, not followed).
package inroot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is returned when a path the caller wants to read or write as a file is a
// FIFO, device, socket or directory.
var ErrNotRegular = errors.New("not a regular file")

// resolve is applied to every lookup: scoped to the root, no /proc magic links, no mount
// crossing (the guest filesystem is a single mount).
const resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV

// MaxFileSize bounds ReadFile: the files edited here are small configuration files.
const MaxFileSize = 4 << 20

// Root is an open guest root directory.
type Root struct {
	fd   int
	name string // host path, for messages only
}

// Open opens dir as a root. dir itself is a host path the agent created (its mount point)
// and is opened without following a final symlink.
func Open(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open guest root %s: %w", dir, err)
	}
	return &Root{fd: fd, name: dir}, nil
}

// Sub returns a root at a directory inside r (e.g. a Btrfs subvolume holding the guest's /).
func (r *Root) Sub(dir string) (*Root, error) {
	fd, err := r.openat2(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return nil, r.err("open", dir, err)
	}
	return &Root{fd: fd, name: path.Join(r.name, clean(dir))}, nil
}

// Close releases the root.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Path returns the host path of the root, for messages.
func (r *Root) Path() string { return r.name }

// Fd returns the root's O_PATH descriptor (for fstat-style checks by the caller).
func (r *Root) Fd() int { return r.fd }

// clean makes name absolute and lexically clean. Lexical ".." removal cannot leave the root
// either, and the kernel scopes the symlinks that remain.
func clean(name string) string { return path.Clean("/" + name) }

func (r *Root) err(op, name string, err error) error {
	return &os.PathError{Op: op, Path: clean(name) + " (in guest " + r.name + ")", Err: err}
}

func (r *Root) openat2(name string, flags int) (int, error) {
	rel := strings.TrimPrefix(clean(name), "/")
	if rel == "" {
		rel = "."
	}
	for {
		fd, err := unix.Openat2(r.fd, rel, &unix.OpenHow{Flags: uint64(flags), Resolve: resolve})
		if err == unix.EINTR || err == unix.EAGAIN { // EAGAIN: a concurrent rename raced the lookup
			continue
		}
		return fd, err
	}
}

// openParent resolves the directory holding name inside the root and returns it with the
// last component, which must be a plain name.
func (r *Root) openParent(name string) (int, string, error) {
	c := clean(name)
	dir, base := path.Split(c)
	if base == "" || base == "." || base == ".." {
		return -1, "", r.err("open", name, unix.EINVAL)
	}
	fd, err := r.openDir(dir, unix.O_PATH)
	if err != nil {
		return -1, "", err
	}
	return fd, base, nil
}

func (r *Root) openDir(dir string, mode int) (int, error) {
	fd, err := r.openat2(dir, mode|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return -1, r.err("open", dir, err)
	}
	return fd, nil
}

// openFile opens name (following symlinks inside the root) and proves it is a regular file.
func (r *Root) openFile(name string, flags int, perm uint32) (*os.File, error) {
	c := clean(name)
	if c == "/" {
		return nil, r.err("open", name, ErrNotRegular)
	}
	fd, err := unix.Openat2(r.fd, strings.TrimPrefix(c, "/"), &unix.OpenHow{
		Flags:   uint64(flags | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC),
		Mode:    uint64(perm),
		Resolve: resolve,
	})
	if err != nil {
		if err == unix.ENXIO || err == unix.EISDIR || err == unix.EACCES {
			// ENXIO: a FIFO opened for writing with no reader, or a socket; EISDIR: a
			// directory; EACCES: also a device node on a nodev mount. Say which.
			if mode, ok := r.modeOf(c); ok && mode != unix.S_IFREG {
				err = fmt.Errorf("%w (mode %o)", ErrNotRegular, mode)
			}
		}
		return nil, r.err("open", name, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, r.err("stat", name, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, r.err("open", name, fmt.Errorf("%w (mode %o)", ErrNotRegular, st.Mode&unix.S_IFMT))
	}
	// Reads and writes on a regular file never block; clear O_NONBLOCK to keep semantics plain.
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, r.err("open", name, err)
	}
	return os.NewFile(uintptr(fd), c), nil
}

// modeOf returns the file type name resolves to, through an O_PATH descriptor that opens
// nothing (no device or FIFO side effects).
func (r *Root) modeOf(name string) (uint32, bool) {
	fd, err := r.openat2(name, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0, false
	}
	return st.Mode & unix.S_IFMT, true
}

// Exists reports whether name exists (any type), resolving symlinks inside the root except
// a final one, which counts as existing.
func (r *Root) Exists(name string) (bool, error) {
	_, err := r.Lstat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Lstat returns the type and size of name's directory entry itself.
func (r *Root) Lstat(name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dfd, base, err := r.openParent(name)
	if err != nil {
		return st, err
	}
	defer unix.Close(dfd)
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, r.err("lstat", name, err)
	}
	return st, nil
}

// IsDir reports whether name resolves (inside the root) to a directory.
func (r *Root) IsDir(name string) (bool, error) {
	fd, err := r.openDir(name, unix.O_PATH)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
			return false, nil
		}
		return false, err
	}
	unix.Close(fd)
	return true, nil
}

// ReadFile reads a regular file of at most MaxFileSize bytes.
func (r *Root) ReadFile(name string) ([]byte, error) {
	f, err := r.openFile(name, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, r.err("read", name, err)
	}
	if len(b) > MaxFileSize {
		return nil, r.err("read", name, fmt.Errorf("larger than %d bytes", MaxFileSize))
	}
	return b, nil
}

// WriteFile replaces the content of name in place (keeping its owner and mode), creating it
// with perm if missing. In place rather than rename, so a symlinked file is written where
// the guest would write it, and the result is idempotent if repeated after a crash.
func (r *Root) WriteFile(name string, data []byte, perm os.FileMode) error {
	f, err := r.openFile(name, unix.O_WRONLY|unix.O_CREAT, uint32(perm.Perm()))
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return r.err("truncate", name, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return r.err("write", name, err)
	}
	if err := f.Close(); err != nil {
		return r.err("close", name, err)
	}
	return nil
}

// Truncate empties an existing regular file and reports whether it had content. A missing
// file is not an error (nothing to do).
func (r *Root) Truncate(name string) (bool, error) {
	f, err := r.openFile(name, unix.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, r.err("stat", name, err)
	}
	if st.Size() == 0 {
		return false, nil
	}
	if err := f.Truncate(0); err != nil {
		return false, r.err("truncate", name, err)
	}
	return true, nil
}

// Remove unlinks name's directory entry if it is not a directory (a symlink is removed
// itself). It reports whether something was removed; a missing entry is not an error.
func (r *Root) Remove(name string) (bool, error) {
	dfd, base, err := r.openParent(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer unix.Close(dfd)
	if err := unix.Unlinkat(dfd, base, 0); err != nil {
		if err == unix.ENOENT {
			return false, nil
		}
		if err == unix.EISDIR || err == unix.EPERM {
			// Linux returns EISDIR for a directory; some filesystems EPERM.
			var st unix.Stat_t
			if unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
				return false, r.err("remove", name, fmt.Errorf("is a directory, expected a file"))
			}
		}
		return false, r.err("remove", name, err)
	}
	return true, nil
}

// RemoveAll removes name and, for a directory, everything below it, never following a
// symlink. It returns the guest paths removed (files and directories).
func (r *Root) RemoveAll(name string) ([]string, error) {
	dfd, base, err := r.openParent(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	return r.removeAllAt(dfd, base, clean(name), 0)
}

func (r *Root) removeAllAt(dfd int, base, full string, depth int) ([]string, error) {
	if depth > 64 {
		return nil, r.err("remove", full, fmt.Errorf("directory tree deeper than 64 levels"))
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil, nil
		}
		return nil, r.err("lstat", full, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dfd, base, 0); err != nil && err != unix.ENOENT {
			return nil, r.err("remove", full, err)
		}
		return []string{full}, nil
	}
	// O_NOFOLLOW: if the directory was swapped for a symlink since the lstat, fail rather
	// than descend through it.
	cfd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, r.err("open", full, err)
	}
	names, err := readNames(cfd)
	if err != nil {
		unix.Close(cfd)
		return nil, r.err("readdir", full, err)
	}
	var removed []string
	for _, n := range names {
		got, err := r.removeAllAt(cfd, n, path.Join(full, n), depth+1)
		removed = append(removed, got...)
		if err != nil {
			unix.Close(cfd)
			return removed, err
		}
	}
	unix.Close(cfd)
	if err := unix.Unlinkat(dfd, base, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return removed, r.err("remove", full, err)
	}
	return append(removed, full), nil
}

// Entry is one directory entry: its name and the type of the entry itself (lstat).
type Entry struct {
	Name string
	Mode uint32 // S_IFMT bits
}

func (e Entry) IsDir() bool     { return e.Mode == unix.S_IFDIR }
func (e Entry) IsRegular() bool { return e.Mode == unix.S_IFREG }
func (e Entry) IsSymlink() bool { return e.Mode == unix.S_IFLNK }

// ReadDir lists a directory (resolved inside the root), sorted by name. A missing directory
// is empty.
func (r *Root) ReadDir(dir string) ([]Entry, error) {
	fd, err := r.openDir(dir, unix.O_RDONLY)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	names, err := readNames(fd)
	if err != nil {
		return nil, r.err("readdir", dir, err)
	}
	out := make([]Entry, 0, len(names))
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if err == unix.ENOENT {
				continue
			}
			return nil, r.err("lstat", path.Join(dir, n), err)
		}
		out = append(out, Entry{Name: n, Mode: st.Mode & unix.S_IFMT})
	}
	return out, nil
}

func readNames(fd int) ([]string, error) {
	// Dup so that closing the *os.File does not close the caller's descriptor.
	nfd, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(nfd), "dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// Glob expands a pattern whose components may contain path.Match wildcards
// ("/home/*/.bash_history"), listing directories inside the root. Matches are returned as
// clean guest paths, sorted; entries of any type match.
func (r *Root) Glob(pattern string) ([]string, error) {
	parts := strings.Split(strings.TrimPrefix(clean(pattern), "/"), "/")
	cur := []string{"/"}
	for i, part := range parts {
		var next []string
		for _, dir := range cur {
			if !hasMeta(part) {
				p := path.Join(dir, part)
				if i < len(parts)-1 {
					next = append(next, p) // intermediate: resolved when listed
					continue
				}
				if ok, err := r.Exists(p); err != nil && !errors.Is(err, unix.ENOTDIR) {
					return nil, err
				} else if ok {
					next = append(next, p)
				}
				continue
			}
			ents, err := r.ReadDir(dir)
			if err != nil {
				return nil, err
			}
			for _, e := range ents {
				if ok, err := path.Match(part, e.Name); err != nil {
					return nil, fmt.Errorf("glob %q: %w", pattern, err)
				} else if ok {
					next = append(next, path.Join(dir, e.Name))
				}
			}
		}
		cur = next
	}
	sort.Strings(cur)
	return cur, nil
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }
