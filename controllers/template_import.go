package controllers

import (
	"fmt"
	"sort"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Imports of template sources: each selected host's agent imports spec.source into the
// origin LV and reports how it goes in its XenHost (status.imports, the agent's field). The
// controller repeats those reports per template (status.hosts[].import) and decides which
// hosts may import now (status.importGrants, the controller's field): at most
// Options.MaxParallelImports fleet-wide.

// importGrants remembers the grants the controller handed out, per template. The controller
// is the only writer of status.importGrants (leader elected) and reconciles one template at a
// time, so its memory is exact where the cache may still show a grant written a moment ago
// as missing.
type importGrants struct {
	mu     sync.Mutex
	byTmpl map[string][]string
}

// held counts the grants of every template but name; templates this process has not
// reconciled yet count with what their status says.
func (g *importGrants) held(name string, all []vmv1alpha1.VMTemplate) int {
	n := 0
	for i := range all {
		t := &all[i]
		if t.Name == name || t.Spec.Source == nil || !t.DeletionTimestamp.IsZero() {
			continue
		}
		if gs, ok := g.byTmpl[t.Name]; ok {
			n += len(gs)
		} else {
			n += len(t.Status.ImportGrants)
		}
	}
	return n
}

// decideGrants picks the hosts that may import tmpl's source now and records them. Hosts that
// hold a grant and are importing keep it (an import is never cut off half way, even when the
// limit was lowered); free slots go first to hosts that have not failed, then to failed ones
// (their agents retry after backoff), each group by name. Lost hosts get none and give theirs
// back.
func (g *importGrants) decideGrants(tmpl *vmv1alpha1.VMTemplate, all []vmv1alpha1.VMTemplate, hosts []vmv1alpha1.TemplateHostStatus, lost map[string]bool, limit int) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byTmpl == nil {
		g.byTmpl = map[string][]string{}
	}
	if tmpl.Spec.Source == nil || !tmpl.DeletionTimestamp.IsZero() {
		delete(g.byTmpl, tmpl.Name)
		return nil
	}
	had := map[string]bool{}
	for _, n := range tmpl.Status.ImportGrants {
		had[n] = true
	}
	if gs, ok := g.byTmpl[tmpl.Name]; ok {
		had = map[string]bool{}
		for _, n := range gs {
			had[n] = true
		}
	}
	var keep, fresh, failed []string
	for _, h := range hosts {
		if !needsImport(h) || lost[h.NodeName] {
			continue
		}
		phase := vmv1alpha1.ImportPhase("")
		if h.Import != nil {
			phase = h.Import.Phase
		}
		switch {
		case had[h.NodeName] && phase != vmv1alpha1.ImportFailed:
			keep = append(keep, h.NodeName)
		case phase == vmv1alpha1.ImportFailed:
			failed = append(failed, h.NodeName)
		default:
			fresh = append(fresh, h.NodeName)
		}
	}
	free := limit - g.held(tmpl.Name, all) - len(keep)
	grants := keep
	for _, n := range append(fresh, failed...) {
		if free <= 0 {
			break
		}
		grants = append(grants, n)
		free--
	}
	sort.Strings(grants)
	g.byTmpl[tmpl.Name] = grants
	if len(grants) == 0 {
		return nil
	}
	return grants
}

// forget drops a deleted template's grants.
func (g *importGrants) forget(name string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.byTmpl, name)
}

// needsImport: the host is selected and has no usable origin from the import yet. A host whose
// LV of the origin's name is refused (not imported by us for this template) needs no slot: its
// agent reports ImportNameTaken without downloading.
func needsImport(h vmv1alpha1.TemplateHostStatus) bool {
	if h.Import != nil && h.Import.Phase == vmv1alpha1.ImportSucceeded {
		return false
	}
	if h.Import != nil && h.Import.Reason == vmv1alpha1.ReasonImportNameTaken {
		return false
	}
	return !(h.Present && h.Message == "")
}

// setImported writes status.importingHosts and the Imported condition of a template with a
// source.
func setImported(tmpl *vmv1alpha1.VMTemplate, status *vmv1alpha1.VMTemplateStatus) {
	if tmpl.Spec.Source == nil {
		status.ImportingHosts = 0
		meta.RemoveStatusCondition(&status.Conditions, vmv1alpha1.ConditionImported)
		return
	}
	cond := metav1.Condition{Type: vmv1alpha1.ConditionImported, ObservedGeneration: tmpl.Generation}
	var done, importing, waiting int
	var failing, progress []string
	for _, h := range status.Hosts {
		if !needsImport(h) {
			if h.Import == nil || h.Import.Reason != vmv1alpha1.ReasonImportNameTaken {
				done++
				continue
			}
		}
		imp := h.Import
		switch {
		case imp == nil || imp.Phase == vmv1alpha1.ImportWaiting:
			waiting++
		case imp.Phase == vmv1alpha1.ImportFailed:
			failing = append(failing, fmt.Sprintf("%s: %s: %s", h.NodeName, imp.Reason, imp.Message))
		default:
			importing++
			progress = append(progress, h.NodeName+" "+importProgress(imp))
		}
	}
	status.ImportingHosts = int32(len(status.Hosts) - done)
	switch {
	case len(status.Hosts) == 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, vmv1alpha1.ReasonNoHostSelected
		cond.Message = "no XenHost matches spec.hostSelector, so no host imports the source: label hosts or change the selector"
	case len(failing) > 0:
		cond.Status, cond.Reason = metav1.ConditionFalse, vmv1alpha1.ReasonImportFailing
		cond.Message = fmt.Sprintf("%d of %d host(s) have the image; the last attempt failed on %d (they retry with backoff): %s",
			done, len(status.Hosts), len(failing), listFirst(failing[:min(len(failing), 3)], len(failing)))
	case done == len(status.Hosts):
		cond.Status, cond.Reason = metav1.ConditionTrue, vmv1alpha1.ReasonImported
		cond.Message = fmt.Sprintf("imported and verified (%s) on all %d selected host(s)", shortDigest(tmpl.Spec.Source.Checksum), done)
	default:
		cond.Status, cond.Reason = metav1.ConditionFalse, vmv1alpha1.ReasonImporting
		msg := fmt.Sprintf("%d of %d host(s) have the image; %d importing", done, len(status.Hosts), importing)
		if len(progress) > 0 {
			msg += " (" + strings.Join(progress[:min(len(progress), 3)], ", ") + ")"
		}
		if waiting > 0 {
			msg += fmt.Sprintf("; %d waiting for an import slot (--max-parallel-imports)", waiting)
		}
		cond.Message = msg
	}
	meta.SetStatusCondition(&status.Conditions, cond)
}

// importProgress renders one host's running import: "45% of 2.0 GiB, 12.3 MiB/s".
func importProgress(imp *vmv1alpha1.HostImportStatus) string {
	var parts []string
	if imp.BytesTotal > 0 {
		parts = append(parts, fmt.Sprintf("%d%% of %s", imp.BytesDone*100/imp.BytesTotal, humanBytes(imp.BytesTotal)))
	} else {
		parts = append(parts, humanBytes(imp.BytesDone))
	}
	if imp.BytesPerSecond > 0 {
		parts = append(parts, humanBytes(imp.BytesPerSecond)+"/s")
	}
	return strings.Join(parts, ", ")
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// shortDigest is "sha256:0123abcd…" for messages.
func shortDigest(c string) string {
	algo, hex, ok := strings.Cut(c, ":")
	if !ok || len(hex) <= 12 {
		return c
	}
	return algo + ":" + hex[:12] + "…"
}
