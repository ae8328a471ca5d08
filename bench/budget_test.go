package main

import "testing"

func TestRequestKey(t *testing.T) {
	for _, tc := range []struct{ verb, path, ct, want string }{
		{"PATCH", "/apis/vm.xenclone.dev/v1alpha1/namespaces/bench/vmclones/vm-00001/status", "application/apply-patch+yaml", "APPLY vmclones.vm.xenclone.dev/status"},
		{"PATCH", "/apis/vm.xenclone.dev/v1alpha1/namespaces/bench/vmclones/vm-00001", "application/merge-patch+json", "PATCH vmclones.vm.xenclone.dev"},
		{"DELETE", "/apis/vm.xenclone.dev/v1alpha1/namespaces/bench/vmclones/vm-00001", "", "DELETE vmclones.vm.xenclone.dev"},
		{"POST", "/apis/events.k8s.io/v1/namespaces/bench/events", "application/json", "POST events.events.k8s.io"},
		{"PUT", "/apis/coordination.k8s.io/v1/namespaces/xenclone-system/leases/xen-01", "", "PUT leases.coordination.k8s.io"},
		{"PATCH", "/apis/vm.xenclone.dev/v1alpha1/xenhosts/xen-01/status", "application/apply-patch+yaml", "APPLY xenhosts.vm.xenclone.dev/status"},
		{"GET", "/apis/vm.xenclone.dev/v1alpha1/namespaces/bench/vmclones", "", "LIST vmclones.vm.xenclone.dev"},
		{"WATCH", "/apis/vm.xenclone.dev/v1alpha1/vmclones", "", "WATCH vmclones.vm.xenclone.dev"},
		{"POST", "/api/v1/namespaces", "", "POST namespaces"},
		{"PUT", "/api/v1/namespaces/bench/finalize", "", "PUT namespaces/finalize"},
		{"POST", "/api/v1/namespaces/bench/events", "", "POST events"},
		{"GET", "/metrics", "", "GET /metrics"},
	} {
		if got := requestKey(tc.verb, tc.path, tc.ct); got != tc.want {
			t.Errorf("requestKey(%s %s) = %q, want %q", tc.verb, tc.path, got, tc.want)
		}
	}
}

func TestAPIServerByResource(t *testing.T) {
	text := `# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="vm.xenclone.dev",resource="vmclones",scope="resource",subresource="status",verb="APPLY",version="v1alpha1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="",scope="",subresource="/metrics",verb="GET",version=""} 3
apiserver_request_total{code="201",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="namespace",subresource="",verb="POST",version="v1"} 2
apiserver_request_total_other{verb="POST"} 9
`
	got := apiserverByResource(text)
	want := RequestCounts{"APPLY vmclones.vm.xenclone.dev/status": 7, "GET": 3, "POST events.events.k8s.io": 2}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	b := writeBudget(Phase{APIServerRequestsByResource: got, Seconds: 60}, 1, 1)
	if b.CloneWritesPerClone != 7 || b.EventWritesPerClone != 2 {
		t.Errorf("budget %+v", b)
	}
}
