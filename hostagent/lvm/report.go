package lvm

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// VG is one volume group from a report. Sizes are bytes.
type VG struct {
	Name        string
	UUID        string
	Size        uint64
	Free        uint64
	ExtentSize  uint64
	ExtentCount uint64
	FreeCount   uint64 // free extents
	// MetadataSize and MetadataFree are vg_mda_size / vg_mda_free: the metadata area is fixed
	// at pvcreate time (~1 MiB by default) and every LV and tag takes room in it. Measured
	// here: a default 1044480-byte area holds 521472 bytes of metadata (MetadataCapacity), an
	// empty VG takes ~1.3 KB and each LV with our three tags ~340 bytes, so roughly 1,500 such
	// LVs fit — in line with the "Metadata too large" reports near 1,400 LVs. Watch it.
	MetadataSize uint64
	MetadataFree uint64
	LVCount      int
	Tags         []string
}

// mdaHeaderSize is MDA_HEADER_SIZE of lvm2's text format (lib/format_text/layout.h).
const mdaHeaderSize = 512

// MetadataCapacity is the largest VG metadata text the metadata area can hold: lvm keeps the
// old and the new copy side by side while committing, so one copy may use at most half the
// area, minus the header and a sector (read_metadata_location_summary,
// lib/format_text/format-text.c). vg_mda_free counts from this, which is why a fresh VG
// shows only about half its vg_mda_size free.
func (v VG) MetadataCapacity() uint64 {
	if v.MetadataSize < mdaHeaderSize+2*512 {
		return 0
	}
	return (v.MetadataSize-mdaHeaderSize)/2 - 512
}

// MetadataUsedPercent is how much of MetadataCapacity the VG's metadata uses; near 100 no
// LV or tag can be added any more. 0 if unknown.
func (v VG) MetadataUsedPercent() float64 {
	capacity := v.MetadataCapacity()
	if capacity == 0 || v.MetadataFree > capacity {
		return 0
	}
	return 100 * float64(capacity-v.MetadataFree) / float64(capacity)
}

// Percent is an lvm usage percentage (data%, snap%, metadata%). lvm prints "" where the value
// does not apply or is unknown (a plain LV, an inactive snapshot, a failed pool); then Valid is
// false. lvm rounds to two decimals.
type Percent struct {
	Value float64
	Valid bool
}

func (p Percent) String() string {
	if !p.Valid {
		return "n/a"
	}
	return strconv.FormatFloat(p.Value, 'f', 2, 64) + "%"
}

// LV is one logical volume from a report. Sizes are bytes.
type LV struct {
	Name string
	VG   string
	UUID string
	Attr Attr
	Size uint64
	// Origin is the origin LV of a classic or thin snapshot, or the external origin of a
	// thin LV made from a thick LV; "" otherwise. OriginSize is its size.
	Origin     string
	OriginSize uint64
	// Pool is the thin pool of a thin LV.
	Pool string
	// DataPercent: COW usage of a classic snapshot (100 once invalid), data usage of a thin
	// pool, mapped share of a thin LV. SnapPercent is the same figure: lvm2 prints
	// data_percent for snap_percent (_snpercent_disp, lib/report/report.c).
	DataPercent     Percent
	SnapPercent     Percent
	MetadataPercent Percent // thin pool metadata usage
	Tags            []string
	Created         time.Time // zero if lvm printed a time this package cannot read
	// Active is lv_active == "active". With activation disabled lvm says "unknown" and this is
	// false; Attr.State is then StateUnknown.
	Active bool
}

// Ref names the LV as lvm takes it on the command line: "vg/lv".
func (l LV) Ref() Ref { return Ref{VG: l.VG, Name: l.Name} }

// HasTag reports whether the LV carries tag.
func (l LV) HasTag(tag string) bool {
	for _, t := range l.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// Report is one VG and all of its (visible) LVs, from a single lvm call.
type Report struct {
	VG  VG
	LVs []LV
}

// LV returns the named LV of the report.
func (r Report) LV(name string) (LV, bool) {
	for _, lv := range r.LVs {
		if lv.Name == name {
			return lv, true
		}
	}
	return LV{}, false
}

// Managed returns the LVs carrying xenclone's constant tag, whoever owns them: what an
// orphan sweep compares with the clones bound to the node.
func (r Report) Managed() []LV {
	var out []LV
	for _, lv := range r.LVs {
		if lv.Managed() {
			out = append(out, lv)
		}
	}
	return out
}

// Field lists requested from lvm. The JSON keys below must match them.
const (
	vgFields = "vg_name,vg_uuid,vg_size,vg_free,vg_extent_size,vg_extent_count,vg_free_count," +
		"vg_mda_size,vg_mda_free,lv_count,vg_tags"
	lvFields = "lv_name,vg_name,lv_uuid,lv_attr,lv_size,origin,origin_size,pool_lv," +
		"data_percent,snap_percent,metadata_percent,lv_tags,lv_time,lv_active"
)

// jsonVG and jsonLV mirror lvm's "json" report format, in which every value is a string.
type jsonVG struct {
	Name        string `json:"vg_name"`
	UUID        string `json:"vg_uuid"`
	Size        string `json:"vg_size"`
	Free        string `json:"vg_free"`
	ExtentSize  string `json:"vg_extent_size"`
	ExtentCount string `json:"vg_extent_count"`
	FreeCount   string `json:"vg_free_count"`
	MDASize     string `json:"vg_mda_size"`
	MDAFree     string `json:"vg_mda_free"`
	LVCount     string `json:"lv_count"`
	Tags        string `json:"vg_tags"`
}

type jsonLV struct {
	Name            string `json:"lv_name"`
	VG              string `json:"vg_name"`
	UUID            string `json:"lv_uuid"`
	Attr            string `json:"lv_attr"`
	Size            string `json:"lv_size"`
	Origin          string `json:"origin"`
	OriginSize      string `json:"origin_size"`
	Pool            string `json:"pool_lv"`
	DataPercent     string `json:"data_percent"`
	SnapPercent     string `json:"snap_percent"`
	MetadataPercent string `json:"metadata_percent"`
	Tags            string `json:"lv_tags"`
	Time            string `json:"lv_time"`
	Active          string `json:"lv_active"`
}

// jsonReport is the envelope of `lvs`, `vgs` and `lvm fullreport` in json format: one
// element per VG for fullreport, a single element for lvs/vgs. Other keys (pv, seg, log) are
// ignored.
type jsonReport struct {
	Report []struct {
		VG []jsonVG `json:"vg"`
		LV []jsonLV `json:"lv"`
	} `json:"report"`
}

func decodeReport(data []byte) (jsonReport, error) {
	var r jsonReport
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("decode lvm json report: %w", err)
	}
	return r, nil
}

// ParseLVReport decodes the LVs of `lvs --reportformat json --units b --nosuffix` (or
// fullreport) output requested with this package's field list.
func ParseLVReport(data []byte) ([]LV, error) {
	r, err := decodeReport(data)
	if err != nil {
		return nil, err
	}
	var lvs []LV
	for _, sec := range r.Report {
		for _, j := range sec.LV {
			lv, err := j.decode()
			if err != nil {
				return nil, err
			}
			lvs = append(lvs, lv)
		}
	}
	return lvs, nil
}

// ParseVGReport decodes the VGs of `vgs --reportformat json --units b --nosuffix` (or
// fullreport) output requested with this package's field list.
func ParseVGReport(data []byte) ([]VG, error) {
	r, err := decodeReport(data)
	if err != nil {
		return nil, err
	}
	var vgs []VG
	for _, sec := range r.Report {
		for _, j := range sec.VG {
			vg, err := j.decode()
			if err != nil {
				return nil, err
			}
			vgs = append(vgs, vg)
		}
	}
	return vgs, nil
}

// ParseFullReport decodes `lvm fullreport` json output: one Report per VG. Each element of
// fullreport's list holds exactly one VG.
func ParseFullReport(data []byte) ([]Report, error) {
	r, err := decodeReport(data)
	if err != nil {
		return nil, err
	}
	reports := make([]Report, 0, len(r.Report))
	for i, sec := range r.Report {
		if len(sec.VG) != 1 {
			return nil, fmt.Errorf("lvm fullreport element %d: want one vg, got %d", i, len(sec.VG))
		}
		vg, err := sec.VG[0].decode()
		if err != nil {
			return nil, err
		}
		rep := Report{VG: vg}
		for _, j := range sec.LV {
			lv, err := j.decode()
			if err != nil {
				return nil, err
			}
			// An LV is matched to its VG by this section; one naming another VG would be
			// counted (and owned) under the wrong one.
			if lv.VG != "" && lv.VG != vg.Name {
				return nil, fmt.Errorf("lvm fullreport element %d: lv %s/%s listed under vg %s", i, lv.VG, lv.Name, vg.Name)
			}
			rep.LVs = append(rep.LVs, lv)
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

func (j jsonVG) decode() (VG, error) {
	p := numParser{what: "vg " + j.Name}
	v := VG{
		Name:         j.Name,
		UUID:         j.UUID,
		Size:         p.uint("vg_size", j.Size),
		Free:         p.uint("vg_free", j.Free),
		ExtentSize:   p.uint("vg_extent_size", j.ExtentSize),
		ExtentCount:  p.uint("vg_extent_count", j.ExtentCount),
		FreeCount:    p.uint("vg_free_count", j.FreeCount),
		MetadataSize: p.uint("vg_mda_size", j.MDASize),
		MetadataFree: p.uint("vg_mda_free", j.MDAFree),
		LVCount:      int(p.uint("lv_count", j.LVCount)),
		Tags:         splitTags(j.Tags),
	}
	if j.Name == "" {
		p.fail("vg_name", j.Name, "empty")
	}
	return v, p.err
}

func (j jsonLV) decode() (LV, error) {
	p := numParser{what: "lv " + j.VG + "/" + j.Name}
	attr, err := ParseAttr(j.Attr)
	if err != nil {
		return LV{}, fmt.Errorf("%s: %w", p.what, err)
	}
	lv := LV{
		Name:            j.Name,
		VG:              j.VG,
		UUID:            j.UUID,
		Attr:            attr,
		Size:            p.uint("lv_size", j.Size),
		Origin:          j.Origin,
		OriginSize:      p.optUint("origin_size", j.OriginSize),
		Pool:            j.Pool,
		DataPercent:     p.percent("data_percent", j.DataPercent),
		SnapPercent:     p.percent("snap_percent", j.SnapPercent),
		MetadataPercent: p.percent("metadata_percent", j.MetadataPercent),
		Tags:            splitTags(j.Tags),
		Created:         parseTime(j.Time),
		Active:          j.Active == "active",
	}
	if j.Name == "" {
		p.fail("lv_name", j.Name, "empty")
	}
	return lv, p.err
}

// numParser parses report numbers and keeps the first error, so decode reads as a list.
type numParser struct {
	what string
	err  error
}

func (p *numParser) fail(field, val, why string) {
	if p.err == nil {
		p.err = fmt.Errorf("%s: %s %q: %s", p.what, field, val, why)
	}
}

func (p *numParser) uint(field, s string) uint64 {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		p.fail(field, s, "not a byte count (was --units b --nosuffix used?)")
	}
	return n
}

func (p *numParser) optUint(field, s string) uint64 {
	if s == "" {
		return 0
	}
	return p.uint(field, s)
}

func (p *numParser) percent(field, s string) Percent {
	if s == "" {
		return Percent{}
	}
	f, err := strconv.ParseFloat(s, 64)
	// lvm caps its own figures at 100.00; anything finite and non-negative is accepted so one
	// odd value does not fail a whole report.
	if err != nil || f < 0 || math.IsNaN(f) || math.IsInf(f, 0) {
		p.fail(field, s, "not a percentage")
		return Percent{}
	}
	return Percent{Value: f, Valid: true}
}

// splitTags splits lvm's comma-joined tag list; commas are not allowed inside a tag.
func splitTags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// lvTimeLayout is lvm's default report/time_format, "%Y-%m-%d %T %z".
const lvTimeLayout = "2006-01-02 15:04:05 -0700"

// parseTime reads lv_time. Report asks lvm for epoch seconds (report/time_format="%s") so a
// host's lvm.conf cannot change the format; the default layout is read too (captured output,
// plain lvs). Anything else gives the zero time rather than failing the whole report.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC()
	}
	if t, err := time.Parse(lvTimeLayout, s); err == nil {
		return t
	}
	return time.Time{}
}
