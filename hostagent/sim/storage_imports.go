package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// The import volume operations with lvm.Client's semantics (imports.go there): tagged at
// creation, refused to anyone but their template, committed by one change then a rename.

// CreateImportVolume implements hostagent.ImageStore.
func (s *Storage) CreateImportVolume(ctx context.Context, ref lvm.Ref, size uint64, owner lvm.TemplateOwner) (lvm.LV, error) {
	if err := s.begin(ctx, "create", s.Latency.Create); err != nil {
		return lvm.LV{}, err
	}
	err := func() error {
		g, ok := s.vgs[ref.VG]
		if !ok {
			return fmt.Errorf("create import volume %s: %w", ref, lvm.ErrVGNotFound)
		}
		if l, ok := g.lvs[ref.Name]; ok {
			if slices.Contains(l.tags, lvm.TemplateUIDTagPrefix+owner.UID) && slices.Contains(l.tags, lvm.ImportingTag) {
				return nil
			}
			return fmt.Errorf("create import volume %s: %w", ref, lvm.ErrConflict)
		}
		size = roundUp(size, g.extent)
		if g.free() < size {
			return fmt.Errorf("create import volume %s of %d bytes (%d free): %w", ref, size, g.free(), lvm.ErrInsufficientSpace)
		}
		if err := s.makeData(ref, size); err != nil {
			return fmt.Errorf("create import volume %s: %w", ref, err)
		}
		g.lvs[ref.Name] = &lv{name: ref.Name, uuid: newUUID(), attr: []byte("-wi-a-----"), size: size,
			tags: append(owner.Tags(), lvm.ImportingTag), created: time.Now()}
		return nil
	}()
	s.mu.Unlock()
	if err != nil {
		return lvm.LV{}, err
	}
	rep, err := s.Report(ctx, ref.VG)
	if err != nil {
		return lvm.LV{}, err
	}
	out, _ := rep.LV(ref.Name)
	return out, nil
}

// CommitImport implements hostagent.ImageStore.
func (s *Storage) CommitImport(ctx context.Context, tmp lvm.Ref, origin string, owner lvm.TemplateOwner, checksum string) error {
	return s.imported(ctx, "commit import", "protect", s.Latency.Change, tmp, owner, func(g *vg, l *lv) error {
		if l == nil {
			if o, ok := g.lvs[origin]; ok && slices.Contains(o.tags, lvm.ImageTagPrefix+checksum) {
				return nil // committed already
			}
			return fmt.Errorf("commit import %s: %w", tmp, lvm.ErrLVNotFound)
		}
		if _, taken := g.lvs[origin]; taken {
			return fmt.Errorf("commit import %s as %s: %w", tmp, origin, lvm.ErrNameExists)
		}
		l.tags = slices.DeleteFunc(slices.Clone(l.tags), func(t string) bool { return t == lvm.ImportingTag })
		l.tags = append(l.tags, lvm.ImageTagPrefix+checksum)
		l.attr[1] = 'r'
		s.dropData(tmp)
		delete(g.lvs, tmp.Name)
		l.name = origin
		g.lvs[origin] = l
		return nil
	})
}

// RemoveImport implements hostagent.ImageStore.
func (s *Storage) RemoveImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error {
	return s.imported(ctx, "remove import", "remove", s.Latency.Remove, ref, owner, func(g *vg, l *lv) error {
		if l == nil {
			return nil
		}
		inUse := l.attr[0] == 'o'
		for _, other := range g.lvs {
			inUse = inUse || other.origin == l.name
		}
		if inUse {
			return fmt.Errorf("remove import %s: %w", ref, lvm.ErrInUse)
		}
		s.dropData(ref)
		delete(g.lvs, ref.Name)
		return nil
	})
}

// DeactivateImport implements hostagent.ImageStore.
func (s *Storage) DeactivateImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error {
	return s.imported(ctx, "deactivate import", "protect", s.Latency.Change, ref, owner, func(_ *vg, l *lv) error {
		if l == nil {
			return fmt.Errorf("deactivate import %s: %w", ref, lvm.ErrLVNotFound)
		}
		l.attr[4] = '-'
		return nil
	})
}

// imported runs fn with the lock held on ref's LV, or on nil when there is none; an LV that is
// not owner's import is refused (ErrNotOwned), as lvm.Client refuses it.
func (s *Storage) imported(ctx context.Context, op, fault string, d time.Duration, ref lvm.Ref, owner lvm.TemplateOwner, fn func(*vg, *lv) error) error {
	if err := s.begin(ctx, fault, d); err != nil {
		return err
	}
	defer s.mu.Unlock()
	g, ok := s.vgs[ref.VG]
	if !ok {
		return fmt.Errorf("%s %s: %w", op, ref, lvm.ErrVGNotFound)
	}
	l, ok := g.lvs[ref.Name]
	if !ok {
		return fn(g, nil)
	}
	if !slices.Contains(l.tags, lvm.ImportedTag) || !slices.Contains(l.tags, lvm.TemplateUIDTagPrefix+owner.UID) {
		return fmt.Errorf("%s %s: %w", op, ref, lvm.ErrNotOwned)
	}
	return fn(g, l)
}

// ImportTarget implements hostagent.ImageStore: a sparse file of the volume's size stands in
// for its block device while the import writes it. The simulated host keeps no data, so the
// file goes once the import is committed or removed.
func (s *Storage) ImportTarget(l lvm.LV) imageimport.Target {
	p := s.dataPath(l.Ref())
	return imageimport.Target{OpenPath: p, HostPath: p}
}

func (s *Storage) dataPath(ref lvm.Ref) string {
	dir := s.DataDir
	if dir == "" {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "import-data", ref.VG, ref.Name)
}

func (s *Storage) makeData(ref lvm.Ref, size uint64) error {
	p := s.dataPath(ref)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(size)); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *Storage) dropData(ref lvm.Ref) { _ = os.Remove(s.dataPath(ref)) }
