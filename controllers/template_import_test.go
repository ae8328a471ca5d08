package controllers

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func sourceTemplate(name string, grants ...string) vmv1alpha1.VMTemplate {
	return vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:   vmv1alpha1.VMTemplateSpec{Source: &vmv1alpha1.TemplateSource{URL: "http://img/x.raw", Checksum: "sha256:00"}},
		Status: vmv1alpha1.VMTemplateStatus{ImportGrants: grants}}
}

func hostImporting(node string, phase vmv1alpha1.ImportPhase) vmv1alpha1.TemplateHostStatus {
	h := vmv1alpha1.TemplateHostStatus{NodeName: node, Message: "not imported here yet"}
	if phase != "" {
		h.Import = &vmv1alpha1.HostImportStatus{Template: "t", Phase: phase}
	}
	return h
}

// TestImportGrants: at most the limit fleet-wide; grants of running imports are kept (also
// above a lowered limit); free slots go to hosts that have not failed before failed ones;
// done hosts and hosts whose origin name is taken hold none.
func TestImportGrants(t *testing.T) {
	done := vmv1alpha1.TemplateHostStatus{NodeName: "h-done", Present: true,
		Import: &vmv1alpha1.HostImportStatus{Phase: vmv1alpha1.ImportSucceeded}}
	taken := hostImporting("h-taken", vmv1alpha1.ImportFailed)
	taken.Import.Reason = vmv1alpha1.ReasonImportNameTaken
	cases := []struct {
		name   string
		tmpl   vmv1alpha1.VMTemplate
		others []vmv1alpha1.VMTemplate
		hosts  []vmv1alpha1.TemplateHostStatus
		limit  int
		want   []string
		lost   map[string]bool
	}{
		{"up to the limit, by name", sourceTemplate("a"), nil,
			[]vmv1alpha1.TemplateHostStatus{hostImporting("h3", ""), hostImporting("h1", ""), hostImporting("h2", ""), done, taken}, 2,
			[]string{"h1", "h3"}, nil},
		{"other templates' grants count", sourceTemplate("a"), []vmv1alpha1.VMTemplate{sourceTemplate("b", "x1", "x2")},
			[]vmv1alpha1.TemplateHostStatus{hostImporting("h1", ""), hostImporting("h2", "")}, 3,
			[]string{"h1"}, nil},
		{"running imports keep their grants above a lowered limit", sourceTemplate("a", "h2", "h3"), nil,
			[]vmv1alpha1.TemplateHostStatus{hostImporting("h1", ""), hostImporting("h2", vmv1alpha1.ImportImporting), hostImporting("h3", vmv1alpha1.ImportImporting)}, 1,
			[]string{"h2", "h3"}, nil},
		{"failed hosts go after fresh ones", sourceTemplate("a", "h1"), nil,
			[]vmv1alpha1.TemplateHostStatus{hostImporting("h1", vmv1alpha1.ImportFailed), hostImporting("h2", "")}, 1,
			[]string{"h2"}, nil},
		{"a failed host gets a slot again when one is free", sourceTemplate("a", "h1"), nil,
			[]vmv1alpha1.TemplateHostStatus{hostImporting("h1", vmv1alpha1.ImportFailed)}, 1,
			[]string{"h1"}, nil},
		{"nothing to import", sourceTemplate("a", "h-done"), nil, []vmv1alpha1.TemplateHostStatus{done, taken}, 4, nil, nil},
		{"a lost host gives its slot back", sourceTemplate("a", "h1"), nil,
			[]vmv1alpha1.TemplateHostStatus{hostImporting("h1", vmv1alpha1.ImportImporting), hostImporting("h2", "")}, 1,
			[]string{"h2"}, map[string]bool{"h1": true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var g importGrants
			all := append([]vmv1alpha1.VMTemplate{tc.tmpl}, tc.others...)
			got := g.decideGrants(&tc.tmpl, all, tc.hosts, tc.lost, tc.limit)
			if len(got) != len(tc.want) {
				t.Fatalf("grants %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("grants %v, want %v", got, tc.want)
				}
			}
		})
	}

	// The controller's memory counts a grant the cache may not show yet.
	var g importGrants
	a, b := sourceTemplate("a"), sourceTemplate("b")
	hosts := []vmv1alpha1.TemplateHostStatus{hostImporting("h1", ""), hostImporting("h2", "")}
	if got := g.decideGrants(&a, []vmv1alpha1.VMTemplate{a, b}, hosts, nil, 2); len(got) != 2 {
		t.Fatalf("a: %v", got)
	}
	if got := g.decideGrants(&b, []vmv1alpha1.VMTemplate{a, b}, hosts, nil, 2); len(got) != 0 {
		t.Errorf("b got %v although a holds both slots (not yet in a's cached status)", got)
	}
}

// TestImportedCondition: the condition's reason follows the hosts' reports.
func TestImportedCondition(t *testing.T) {
	tmpl := sourceTemplate("a")
	tmpl.Spec.Source.Checksum = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	done := vmv1alpha1.TemplateHostStatus{NodeName: "h0", Present: true, Import: &vmv1alpha1.HostImportStatus{Phase: vmv1alpha1.ImportSucceeded}}
	running := hostImporting("h1", vmv1alpha1.ImportImporting)
	running.Import.BytesDone, running.Import.BytesTotal, running.Import.BytesPerSecond = 25<<20, 100<<20, 8<<20
	failed := hostImporting("h2", vmv1alpha1.ImportFailed)
	failed.Import.Reason, failed.Import.Message = vmv1alpha1.ReasonImportChecksumMismatch, "sha256 of the download is …"
	for _, tc := range []struct {
		hosts  []vmv1alpha1.TemplateHostStatus
		reason string
		status metav1.ConditionStatus
		msg    string
		count  int32
	}{
		{nil, vmv1alpha1.ReasonNoHostSelected, metav1.ConditionFalse, "no XenHost matches", 0},
		{[]vmv1alpha1.TemplateHostStatus{done}, vmv1alpha1.ReasonImported, metav1.ConditionTrue, "sha256:001122334455…", 0},
		{[]vmv1alpha1.TemplateHostStatus{done, running, hostImporting("h3", "")}, vmv1alpha1.ReasonImporting, metav1.ConditionFalse,
			"1 of 3 host(s) have the image; 1 importing (h1 25% of 100.0 MiB, 8.0 MiB/s); 1 waiting", 2},
		{[]vmv1alpha1.TemplateHostStatus{done, running, failed}, vmv1alpha1.ReasonImportFailing, metav1.ConditionFalse,
			"h2: ImportChecksumMismatch: sha256 of the download", 2},
	} {
		st := vmv1alpha1.VMTemplateStatus{Hosts: tc.hosts}
		setImported(&tmpl, &st)
		c := meta.FindStatusCondition(st.Conditions, vmv1alpha1.ConditionImported)
		if c == nil || c.Reason != tc.reason || c.Status != tc.status || !strings.Contains(c.Message, tc.msg) || st.ImportingHosts != tc.count {
			t.Errorf("hosts %d: got %+v (importing %d), want %s %s with %q (%d)", len(tc.hosts), c, st.ImportingHosts, tc.status, tc.reason, tc.msg, tc.count)
		}
	}
}
