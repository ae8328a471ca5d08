package hostagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/guest"
	"github.com/xenclone/xenclone/hostagent/guest/seed"
	"github.com/xenclone/xenclone/hostagent/imageimport"
	"github.com/xenclone/xenclone/hostagent/lvm"
)

// LVMStorage is Storage (and ImageStore) on the host's real lvm2.
type LVMStorage struct {
	LVM *lvm.Client
	// HostRoot prefixes the device paths the agent opens itself (ImportTarget).
	HostRoot string
}

// CreateImportVolume implements ImageStore.
func (s LVMStorage) CreateImportVolume(ctx context.Context, ref lvm.Ref, size uint64, owner lvm.TemplateOwner) (lvm.LV, error) {
	return s.LVM.CreateImportVolume(ctx, ref, size, owner)
}

// CommitImport implements ImageStore.
func (s LVMStorage) CommitImport(ctx context.Context, tmp lvm.Ref, origin string, owner lvm.TemplateOwner, checksum string) error {
	return s.LVM.CommitImport(ctx, tmp, origin, owner, checksum)
}

// RemoveImport implements ImageStore.
func (s LVMStorage) RemoveImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error {
	return s.LVM.RemoveImport(ctx, ref, owner)
}

// DeactivateImport implements ImageStore.
func (s LVMStorage) DeactivateImport(ctx context.Context, ref lvm.Ref, owner lvm.TemplateOwner) error {
	return s.LVM.DeactivateImport(ctx, ref, owner)
}

// ImportTarget implements ImageStore: the LV's device node, as the host and as this process
// see it.
func (s LVMStorage) ImportTarget(lv lvm.LV) imageimport.Target {
	p := VolumePath(lv)
	return imageimport.Target{OpenPath: filepath.Join(s.HostRoot, p), HostPath: p}
}

// Report implements Storage.
func (s LVMStorage) Report(ctx context.Context, vg string) (lvm.Report, error) {
	return s.LVM.Report(ctx, vg)
}

// CreateSnapshot implements Storage: a classic COW snapshot, a thin snapshot of a thin origin,
// or a thin snapshot of a thick origin in the template's pool (external origin). Thin
// snapshots carry lvm's activation-skip flag, so they are activated explicitly.
func (s LVMStorage) CreateSnapshot(ctx context.Context, req SnapshotRequest) (lvm.LV, error) {
	origin := lvm.Ref{VG: req.VG, Name: req.Origin}
	switch {
	case req.Mode == vmv1alpha1.SnapshotClassic:
		return s.LVM.CreateClassicSnapshot(ctx, origin, req.Name, req.COWBytes, req.Owner)
	case req.ThinPool != "":
		lv, err := s.LVM.CreateThinSnapshotOfExternalOrigin(ctx, origin, req.ThinPool, req.Name, req.Owner)
		if err != nil {
			return lv, err
		}
		return lv, s.LVM.Activate(ctx, lv.Ref())
	default:
		lv, err := s.LVM.CreateThinSnapshot(ctx, origin, req.Name, req.Owner)
		if err != nil {
			return lv, err
		}
		return lv, s.LVM.Activate(ctx, lv.Ref())
	}
}

// AddTag implements Storage.
func (s LVMStorage) AddTag(ctx context.Context, ref lvm.Ref, owner lvm.Owner, tag string) error {
	return s.LVM.AddTag(ctx, ref, owner, tag)
}

// ExtendSnapshot implements Storage.
func (s LVMStorage) ExtendSnapshot(ctx context.Context, ref lvm.Ref, owner lvm.Owner, by uint64) error {
	return s.LVM.ExtendSnapshot(ctx, ref, owner, by)
}

// Remove implements Storage.
func (s LVMStorage) Remove(ctx context.Context, ref lvm.Ref, owner lvm.Owner) error {
	return s.LVM.Remove(ctx, ref, owner)
}

// SetOriginReadOnly implements Storage.
func (s LVMStorage) SetOriginReadOnly(ctx context.Context, ref lvm.Ref) error {
	return s.LVM.SetOriginReadOnly(ctx, ref)
}

// RestoreOriginWritable implements Storage.
func (s LVMStorage) RestoreOriginWritable(ctx context.Context, ref lvm.Ref) error {
	return s.LVM.RestoreOriginWritable(ctx, ref)
}

// GuestPreparer is Guest on the host's real loop devices and mounts.
type GuestPreparer struct {
	P *guest.Preparer
	// SeedFormat is vfat (default) or iso9660.
	SeedFormat seed.Format
}

// Prepare implements Guest.
func (g GuestPreparer) Prepare(ctx context.Context, device string, req PrepareRequest) (PrepareReport, error) {
	rep, err := g.P.Prepare(ctx, device, guest.PrepareSpec{
		ID: req.Owner.UID, RootPartition: req.RootPartition, RootFilesystem: req.RootFilesystem,
		Operations: req.Operations, Hostname: req.Hostname,
	})
	if err != nil {
		return PrepareReport{}, err
	}
	var out PrepareReport
	for _, r := range rep.Results {
		for _, c := range r.Changes {
			out.Changed = append(out.Changed, fmt.Sprintf("%s %s", c.Action, c.Path))
		}
	}
	return out, nil
}

// BuildSeed implements Guest.
func (g GuestPreparer) BuildSeed(ctx context.Context, req SeedRequest) (string, error) {
	spec := seed.Spec{InstanceID: req.UID, Hostname: req.Hostname, UserData: req.UserData,
		NetworkConfig: req.NetworkConfig, Format: g.SeedFormat}
	for i, mac := range req.MACs {
		spec.Interfaces = append(spec.Interfaces, seed.Interface{Name: fmt.Sprintf("eth%d", i), MAC: mac})
	}
	return g.P.BuildSeed(ctx, "", spec)
}

// RemoveSeed implements Guest.
func (g GuestPreparer) RemoveSeed(_ context.Context, uid string) error { return g.P.Forget(uid) }

// Seeds implements Guest.
func (g GuestPreparer) Seeds(context.Context) ([]string, error) {
	entries, err := os.ReadDir(filepath.Dir(g.P.SeedDir("x")))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}
