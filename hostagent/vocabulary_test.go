package hostagent_test

// The condition vocabulary (api/v1alpha1/conditions.go) against what users read: the Argo CD
// health checks and docs/troubleshooting.md. A reason added to the table and forgotten there
// fails here.

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// blockedExempt are the reasons that need a person but are rightly absent from the VMClone
// health check's `blocked` table; each must still be named in the script.
var blockedExempt = map[string]string{
	vmv1alpha1.ReasonFailed: "Ready says Failed only with phase Failed, which the script reads as Degraded before it looks at reasons",
	vmv1alpha1.ReasonGuestCrashed: "DomainRunning keeps GuestCrashed after a switch to runStrategy Halted, where the clone is fine; " +
		"the script judges it together with the run strategy",
}

var luaBlockedTable = regexp.MustCompile(`(?s)local blocked = \{(.*?)\n\}`)
var luaKey = regexp.MustCompile(`(?m)^\s*([A-Za-z]+) = true,`)

// TestArgoVMCloneBlockedReasons: every reason that needs a person and can be the False reason
// of a condition the VMClone script reads through its `blocked` table (Ready and the agent's
// steps) is in that table, and the table holds nothing else.
func TestArgoVMCloneBlockedReasons(t *testing.T) {
	script := healthScript(t, "VMClone")
	m := luaBlockedTable.FindStringSubmatch(script)
	if m == nil {
		t.Fatal("VMClone/health.lua has no `local blocked = { ... }` table")
	}
	inLua := map[string]bool{}
	for _, k := range luaKey.FindAllStringSubmatch(m[1], -1) {
		inLua[k[1]] = true
	}
	if len(inLua) < 5 {
		t.Fatalf("only %d keys read from the blocked table: is the parsing broken?", len(inLua))
	}
	needsPerson := map[string]bool{}
	for _, d := range vmv1alpha1.Conditions {
		if d.Kind != "VMClone" {
			continue
		}
		for _, r := range vmv1alpha1.ReasonsOf(d.Kind, d.Type) {
			if r.Class.NeedsPerson() {
				needsPerson[r.Name] = true
			}
		}
	}
	for _, typ := range []string{vmv1alpha1.ConditionReady, vmv1alpha1.ConditionVolumeReady, vmv1alpha1.ConditionGuestPrepared, vmv1alpha1.ConditionDomainRunning} {
		for _, r := range vmv1alpha1.ReasonsOf("VMClone", typ) {
			if !r.Class.NeedsPerson() || !statusIn(r.Statuses, metav1.ConditionFalse) || inLua[r.Name] {
				continue
			}
			if why, ok := blockedExempt[r.Name]; ok {
				if !strings.Contains(script, `"`+r.Name+`"`) {
					t.Errorf("%s is exempt from the blocked table (%s) but the script does not name it", r.Name, why)
				}
				continue
			}
			t.Errorf("%s=False %s needs a person (%s) but is not in VMClone/health.lua's blocked table: Argo CD would call it Progressing", typ, r.Name, r.Class)
		}
	}
	for k := range inLua {
		if !needsPerson[k] {
			t.Errorf("VMClone/health.lua's blocked table has %s, which the table lists for no VMClone condition as needing a person", k)
		}
	}
}

// TestArgoHealthFollowsReasonClasses runs the XenHost, VMTemplate and VMClonePool checks on an
// object whose conditions are all settled but one, set to each reason in turn: a reason that
// needs a person is Degraded (live or while deleting), any other is not. The VMClone check
// reads a status whose conditions depend on each other (Ready repeats a step's reason, the
// phase follows them), so it is held to the table by TestArgoVMCloneBlockedReasons and by the
// states in TestArgoHealthChecks instead.
func TestArgoHealthFollowsReasonClasses(t *testing.T) {
	for _, kind := range []string{"XenHost", "VMTemplate", "VMClonePool", "VMClaim"} {
		var defs []vmv1alpha1.ConditionDef
		for _, d := range vmv1alpha1.Conditions {
			// Reconciling and Stalled only restate Ready for kstatus (controllers/kstatus_test.go).
			if d.Kind == kind && d.Type != vmv1alpha1.ConditionReconciling && d.Type != vmv1alpha1.ConditionStalled {
				defs = append(defs, d)
			}
		}
		settled := func(d vmv1alpha1.ConditionDef) map[string]any {
			for _, r := range d.Reasons {
				if r.Class == vmv1alpha1.ClassSettled {
					return map[string]any{"type": d.Type, "status": string(r.Statuses[0]), "reason": r.Name, "message": r.Meaning}
				}
			}
			t.Fatalf("%s/%s has no settled reason", kind, d.Type)
			return nil
		}
		for _, d := range defs {
			for _, r := range d.Reasons {
				for _, st := range r.Statuses {
					var conds []any
					for _, other := range defs {
						if other.Type == d.Type {
							conds = append(conds, map[string]any{"type": d.Type, "status": string(st), "reason": r.Name, "message": r.Meaning})
						} else {
							conds = append(conds, settled(other))
						}
					}
					var got []string
					degraded := false
					for _, deleting := range []bool{false, true} {
						md := map[string]any{"name": "x", "generation": int64(1)}
						if deleting {
							md["deletionTimestamp"] = "2026-01-01T00:00:00Z"
						}
						obj := map[string]any{"apiVersion": vmv1alpha1.GroupVersion.String(), "kind": kind, "metadata": md,
							"spec": map[string]any{}, "status": map[string]any{"observedGeneration": int64(1), "conditions": conds}}
						h := runHealth(t, kind, obj)
						got = append(got, h.Status)
						degraded = degraded || h.Status == "Degraded"
					}
					if r.Class.NeedsPerson() != degraded {
						t.Errorf("%s %s=%s %s (%s): health %v (live, deleting); want Degraded exactly when the reason needs a person",
							kind, d.Type, st, r.Name, r.Class, got)
					}
				}
			}
		}
	}
}

func statusIn(list []metav1.ConditionStatus, s metav1.ConditionStatus) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// docSection is one "## " section of docs/troubleshooting.md.
type docSection struct {
	heading, body string
}

func troubleshootingSections(t *testing.T) []docSection {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []docSection
	for _, part := range strings.Split(string(b), "\n## ")[1:] {
		heading, body, _ := strings.Cut(part, "\n")
		out = append(out, docSection{heading, body})
	}
	return out
}

// sectionKind is the kind a troubleshooting section is about ("" for the others).
func sectionKind(heading string) string {
	for _, k := range []string{"VMClonePool", "VMClaim", "VMTemplate", "XenHost", "VMClone"} {
		if strings.HasPrefix(heading, k) {
			return k
		}
	}
	return ""
}

// TestTroubleshootingNamesEveryReason: each reason of the table is in docs/troubleshooting.md,
// in a section of its kind — the one whose heading names its condition, where there is one —
// and the reason tables there name no reason the table lacks.
func TestTroubleshootingNamesEveryReason(t *testing.T) {
	sections := troubleshootingSections(t)
	in := func(kind, condType, reason string) bool {
		headed := false
		for _, s := range sections {
			if sectionKind(s.heading) == kind && strings.Contains(s.heading, "`"+condType+"`") {
				headed = true
				if strings.Contains(s.body, "`"+reason+"`") {
					return true
				}
			}
		}
		if headed {
			return false
		}
		for _, s := range sections {
			if sectionKind(s.heading) == kind && strings.Contains(s.body, "`"+reason+"`") {
				return true
			}
		}
		return false
	}
	known := map[string]bool{}
	for _, d := range vmv1alpha1.Conditions {
		for _, r := range d.Reasons {
			known[r.Name] = true
			if !in(d.Kind, d.Type, r.Name) {
				t.Errorf("docs/troubleshooting.md does not name %s/%s reason `%s` in a %s section (under the heading naming `%s`, if any)", d.Kind, d.Type, r.Name, d.Kind, d.Type)
			}
		}
	}
	for _, e := range vmv1alpha1.EventReasons {
		known[e.Name] = true
		found := false
		for _, s := range sections {
			if k := sectionKind(s.heading); (k == e.Kind || k == "") && strings.Contains(s.body, "`"+e.Name+"`") {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/troubleshooting.md does not name event reason `%s` (%s)", e.Name, e.Kind)
		}
	}
	// An import's failure reasons (status.hosts[].import.reason) are in the VMTemplate section.
	for _, r := range vmv1alpha1.ImportFailureReasons {
		known[r.Name] = true
		found := false
		for _, s := range sections {
			if sectionKind(s.heading) == "VMTemplate" && strings.Contains(s.body, "| `"+r.Name+"`") {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/troubleshooting.md does not name import failure reason `%s` in its VMTemplate section", r.Name)
		}
	}
	// The first cell of a reason table's row names reasons: `A`, `A` / `B`, `A` (`Ready`).
	tick := regexp.MustCompile("`([A-Z][A-Za-z]+)`")
	var unknown []string
	for _, s := range sections {
		for _, line := range strings.Split(s.body, "\n") {
			if !strings.HasPrefix(line, "| `") {
				continue
			}
			cell, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
			cell, _, _ = strings.Cut(cell, "(")
			for _, m := range tick.FindAllStringSubmatch(cell, -1) {
				if !known[m[1]] {
					unknown = append(unknown, s.heading+": "+m[1])
				}
			}
		}
	}
	sort.Strings(unknown)
	for _, u := range unknown {
		t.Errorf("docs/troubleshooting.md documents reason %s, which api/v1alpha1/conditions.go does not list (gone, or missing from the table)", u)
	}
}
