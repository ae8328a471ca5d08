package guest

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Loop is one loop device as `losetup --list --json` reports it.
type Loop struct {
	Name      string
	BackFile  string
	Offset    int64
	SizeLimit int64
}

// Mount is one mount as `findmnt --json --list` reports it.
type Mount struct {
	Target string
	Source string
	FSType string
}

// jsonInt accepts a number or a numeric string: util-linux has printed both over versions.
type jsonInt int64

func (n *jsonInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if s == "" || s == "null" {
		*n = 0
		return nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return fmt.Errorf("not an integer: %s", b)
	}
	*n = jsonInt(v)
	return nil
}

// ParseLoops decodes `losetup --list --json --output NAME,BACK-FILE,OFFSET,SIZELIMIT`.
func ParseLoops(out []byte) ([]Loop, error) {
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil // losetup prints nothing at all when no loop device is set up
	}
	var v struct {
		Loops []struct {
			Name      string  `json:"name"`
			BackFile  string  `json:"back-file"`
			Offset    jsonInt `json:"offset"`
			SizeLimit jsonInt `json:"sizelimit"`
		} `json:"loopdevices"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("decode losetup --json: %w", err)
	}
	loops := make([]Loop, 0, len(v.Loops))
	for _, l := range v.Loops {
		loops = append(loops, Loop{
			Name: l.Name, BackFile: strings.TrimSuffix(l.BackFile, " (deleted)"),
			Offset: int64(l.Offset), SizeLimit: int64(l.SizeLimit),
		})
	}
	return loops, nil
}

// ParseMounts decodes `findmnt --json --list --output TARGET,SOURCE,FSTYPE`.
func ParseMounts(out []byte) ([]Mount, error) {
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, nil
	}
	var v struct {
		FS []struct {
			Target string `json:"target"`
			Source string `json:"source"`
			FSType string `json:"fstype"`
		} `json:"filesystems"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("decode findmnt --json: %w", err)
	}
	ms := make([]Mount, 0, len(v.FS))
	for _, f := range v.FS {
		ms = append(ms, Mount{Target: f.Target, Source: f.Source, FSType: f.FSType})
	}
	return ms, nil
}

func (p *Preparer) loops(ctx context.Context) ([]Loop, error) {
	out, err := p.Runner.Run(ctx, "losetup", "--list", "--json", "--output", "NAME,BACK-FILE,OFFSET,SIZELIMIT")
	if err != nil {
		return nil, fmt.Errorf("list loop devices: %w", err)
	}
	return ParseLoops(out)
}

func (p *Preparer) mounts(ctx context.Context) ([]Mount, error) {
	out, err := p.Runner.Run(ctx, "findmnt", "--json", "--list", "--output", "TARGET,SOURCE,FSTYPE")
	if err != nil {
		return nil, fmt.Errorf("list mounts: %w", err)
	}
	return ParseMounts(out)
}
