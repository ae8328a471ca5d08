package v1alpha1_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

var kinds = map[string]bool{"VMClone": true, "XenHost": true, "VMTemplate": true, "VMClonePool": true, "VMClaim": true}

// TestConditionTableIntegrity: the vocabulary is only useful if it is well-formed — one entry
// per kind and type, each reason once, a status, a class and a meaning for every reason.
func TestConditionTableIntegrity(t *testing.T) {
	writers := map[vmv1alpha1.Writer]bool{vmv1alpha1.WriterController: true, vmv1alpha1.WriterHostAgent: true}
	classes := map[vmv1alpha1.ReasonClass]bool{vmv1alpha1.ClassSettled: true, vmv1alpha1.ClassTransitional: true,
		vmv1alpha1.ClassBlocked: true, vmv1alpha1.ClassStalled: true}
	statuses := map[metav1.ConditionStatus]bool{metav1.ConditionTrue: true, metav1.ConditionFalse: true, metav1.ConditionUnknown: true}
	seen := map[string]bool{}
	for _, d := range vmv1alpha1.Conditions {
		key := d.Kind + "/" + d.Type
		if !kinds[d.Kind] || d.Type == "" || !writers[d.Writer] {
			t.Errorf("%s: kind, type or writer %q invalid", key, d.Writer)
		}
		if seen[key] {
			t.Errorf("%s listed twice", key)
		}
		seen[key] = true
		if len(d.Reasons) == 0 {
			t.Errorf("%s has no reasons", key)
		}
		names := map[string]bool{}
		for _, r := range d.Reasons {
			where := key + " " + r.Name
			if r.Name == "" || names[r.Name] {
				t.Errorf("%s: reason empty or listed twice", where)
			}
			names[r.Name] = true
			if len(r.Statuses) == 0 {
				t.Errorf("%s: no status", where)
			}
			for _, s := range r.Statuses {
				if !statuses[s] {
					t.Errorf("%s: status %q", where, s)
				}
			}
			if !classes[r.Class] {
				t.Errorf("%s: class %q", where, r.Class)
			}
			if strings.TrimSpace(r.Meaning) == "" || strings.Contains(r.Meaning, "\n") {
				t.Errorf("%s: meaning must be one line", where)
			}
			if r.Writer != "" && (!writers[r.Writer] || r.Writer == d.Writer) {
				t.Errorf("%s: writer override %q must name the other writer", where, r.Writer)
			}
		}
		if (len(d.Repeats) > 0) != (d.RepeatsAs != "") {
			t.Errorf("%s: Repeats and RepeatsAs go together", key)
		}
		for _, rep := range d.Repeats {
			if _, ok := vmv1alpha1.LookupCondition(d.Kind, rep); !ok || rep == d.Type {
				t.Errorf("%s repeats %s, which is not another condition of %s", key, rep, d.Kind)
			}
		}
	}
	for _, e := range vmv1alpha1.EventReasons {
		if !kinds[e.Kind] || e.Name == "" || !writers[e.Writer] || strings.TrimSpace(e.Meaning) == "" {
			t.Errorf("event reason %+v incomplete", e)
		}
		for _, d := range vmv1alpha1.Conditions {
			if _, ok := d.Reason(e.Name); ok && d.Kind == e.Kind {
				t.Errorf("%s is a reason of %s/%s, not an event-only one", e.Name, d.Kind, d.Type)
			}
		}
	}
	for _, k := range []string{"VMClone", "XenHost", "VMTemplate", "VMClonePool"} {
		if _, ok := vmv1alpha1.LookupCondition(k, vmv1alpha1.ConditionReady); !ok {
			t.Errorf("%s has no Ready condition in the table", k)
		}
	}
}

// TestEveryReasonConstantIsInTheTable: a Reason constant nobody lists would be a reason the
// health checks, docs and kstatus tests never see; a listed name without a constant invites a
// spelling of it elsewhere.
func TestEveryReasonConstantIsInTheTable(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "conditions.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	consts := map[string]string{} // value -> name
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Reason") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Errorf("%s is not a string literal", n.Name)
					continue
				}
				v, _ := strconv.Unquote(lit.Value)
				if other, dup := consts[v]; dup {
					t.Errorf("%s and %s both spell %q", other, n.Name, v)
				}
				consts[v] = n.Name
			}
		}
	}
	listed := map[string]bool{}
	for _, d := range vmv1alpha1.Conditions {
		for _, r := range d.Reasons {
			listed[r.Name] = true
		}
	}
	for _, e := range vmv1alpha1.EventReasons {
		listed[e.Name] = true
	}
	for v, name := range consts {
		if !listed[v] {
			t.Errorf("%s (%q) is in no condition of the table and no event reason", name, v)
		}
	}
	for v := range listed {
		if _, ok := consts[v]; !ok {
			t.Errorf("the table lists %q, which no Reason constant in conditions.go spells", v)
		}
	}
	if len(consts) < 40 {
		t.Fatalf("only %d Reason constants found: is the parsing broken?", len(consts))
	}
}

// TestReasonsOfRepeats: Ready carries the reasons of the steps that are not done, Reconciling
// those of Ready that are not True, and neither a Stalled one from elsewhere.
func TestReasonsOfRepeats(t *testing.T) {
	names := func(kind, typ string) map[string]vmv1alpha1.ConditionReason {
		out := map[string]vmv1alpha1.ConditionReason{}
		for _, r := range vmv1alpha1.ReasonsOf(kind, typ) {
			out[r.Name] = r
		}
		return out
	}
	ready := names("VMClone", vmv1alpha1.ConditionReady)
	for _, want := range []string{vmv1alpha1.ReasonUnschedulable, vmv1alpha1.ReasonOriginMissing, vmv1alpha1.ReasonPrepareFailed,
		vmv1alpha1.ReasonStartFailed, vmv1alpha1.ReasonFailed, vmv1alpha1.ReasonRunning} {
		if _, ok := ready[want]; !ok {
			t.Errorf("Ready does not carry %s", want)
		}
	}
	for _, not := range []string{vmv1alpha1.ReasonScheduled, vmv1alpha1.ReasonStarted, vmv1alpha1.ReasonStorageOK} {
		if _, ok := ready[not]; ok {
			t.Errorf("Ready carries %s", not)
		}
	}
	rec := names("VMClone", vmv1alpha1.ConditionReconciling)
	for _, not := range []string{vmv1alpha1.ReasonRunning, vmv1alpha1.ReasonFailed} {
		if _, ok := rec[not]; ok {
			t.Errorf("Reconciling carries %s", not)
		}
	}
	if _, ok := rec[vmv1alpha1.ReasonOriginMissing]; !ok {
		t.Error("Reconciling does not carry a step's reason through Ready")
	}
}
