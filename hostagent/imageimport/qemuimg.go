package imageimport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/command"
)

// qemuInfo is the part of `qemu-img info --output=json` an import looks at. See
// testdata/qemu-img-7.2/ for real outputs.
type qemuInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
	// BackingFilename is set for an overlay: converting it would read that file on the host.
	BackingFilename     string `json:"backing-filename"`
	FullBackingFilename string `json:"full-backing-filename"`
	FormatSpecific      struct {
		Type string `json:"type"`
		Data struct {
			// DataFile is a qcow2 "external data file": the guest's data lives in that
			// host file, which converting would read just like a backing file.
			DataFile string `json:"data-file"`
			Corrupt  bool   `json:"corrupt"`
		} `json:"data"`
	} `json:"format-specific"`
}

// parseQemuInfo decodes `qemu-img info --output=json`.
func parseQemuInfo(out []byte) (qemuInfo, error) {
	var raw struct {
		qemuInfo
		// A pointer tells a missing size from 0.
		VirtualSize *int64 `json:"virtual-size"`
	}
	if err := json.Unmarshal(out, &raw); err != nil {
		return qemuInfo{}, fmt.Errorf("decode qemu-img info: %w", err)
	}
	info := raw.qemuInfo
	if info.Format == "" {
		return qemuInfo{}, errors.New("decode qemu-img info: no format")
	}
	if raw.VirtualSize == nil {
		return qemuInfo{}, errors.New("decode qemu-img info: no virtual-size")
	}
	info.VirtualSize = *raw.VirtualSize
	return info, nil
}

// check decides whether a downloaded qcow2 may be converted into an origin.
func (info qemuInfo) check(maxBytes int64) *Error {
	bad := func(format string, args ...any) *Error {
		return &Error{Reason: vmv1alpha1.ReasonImportBadImage, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case info.Format != string(vmv1alpha1.ImageQCOW2):
		return bad("qemu-img reads the image as %.20q, spec.source.format says qcow2", info.Format)
	case info.BackingFilename != "" || info.FullBackingFilename != "":
		backing := info.BackingFilename
		if backing == "" {
			backing = info.FullBackingFilename
		}
		return bad("the qcow2 image has a backing file (%.200q); converting it would read that file on the host, so only self-contained images are imported (flatten it with `qemu-img convert -O qcow2`)", backing)
	case info.FormatSpecific.Data.DataFile != "":
		return bad("the qcow2 image keeps its data in an external file (%.200q); converting it would read that file on the host, so only self-contained images are imported (flatten it with `qemu-img convert -O qcow2`)",
			info.FormatSpecific.Data.DataFile)
	case info.FormatSpecific.Data.Corrupt:
		return bad("qemu-img says the qcow2 image is marked corrupt")
	case info.VirtualSize <= 0:
		return bad("the qcow2 image's virtual size is %d bytes", info.VirtualSize)
	case info.VirtualSize > maxBytes:
		return &Error{Reason: vmv1alpha1.ReasonImportTooLarge,
			Message: fmt.Sprintf("the qcow2 image's virtual size is %d bytes, more than spec.source.maxSize (%d bytes)", info.VirtualSize, maxBytes)}
	}
	return nil
}

func (a *attempt) qemuImg() string {
	if a.im.QemuImg != "" {
		return a.im.QemuImg
	}
	return DefaultQemuImg
}

// qemuInfo inspects the scratch file. -f qcow2 stops qemu-img from probing the format: a
// probed "raw" that happens to look like something else is a classic image-format attack.
func (a *attempt) qemuInfo(ctx context.Context, hostPath string) (qemuInfo, error) {
	out, err := a.im.Runner.Run(ctx, a.qemuImg(), "info", "--output=json", "-f", "qcow2", hostPath)
	if err != nil {
		if ctx.Err() != nil {
			return qemuInfo{}, err
		}
		return qemuInfo{}, a.errorf(vmv1alpha1.ReasonImportBadImage, err,
			"%s is not a qcow2 image qemu-img can read: %s", a.url, qemuMessage(err))
	}
	info, err := parseQemuInfo(out)
	if err != nil {
		return qemuInfo{}, a.errorf(vmv1alpha1.ReasonImportFailed, err, "inspect the image: %v", err)
	}
	return info, nil
}

// qemuConvert writes the image into the existing volume (-n: do not create the target). -n
// also makes qemu-img write the zeros itself instead of assuming a zeroed target, which a
// reused LV is not.
func (a *attempt) qemuConvert(ctx context.Context, src, dst string) error {
	_, err := a.im.Runner.Run(ctx, a.qemuImg(), "convert", "-n", "-f", "qcow2", "-O", "raw", src, dst)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return a.errorf(vmv1alpha1.ReasonImportFailed, err, "qemu-img convert into the temporary volume failed: %s", qemuMessage(err))
	}
	return nil
}

// qemuMessage is what qemu-img said (its stderr), or the run's error when it said nothing.
func qemuMessage(err error) string {
	if s := strings.TrimSpace(command.Stderr(err)); s != "" {
		if len(s) > 1000 {
			s = s[:1000] + "…"
		}
		return s
	}
	return err.Error()
}
