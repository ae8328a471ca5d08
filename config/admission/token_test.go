package admission

import (
	"context"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestPodBoundTokenCarriesItsNode: the other tests here make the agent's identity with
// impersonation. This one gets the token the kubelet would mount into the agent's pod (a
// TokenRequest bound to a pod on a node) and uses it as a bearer token, so the node name the
// policy reads comes from the API server's own token authenticator: it must be there, and it
// must let the agent write its own node's clones and no other's.
func TestPodBoundTokenCarriesItsNode(t *testing.T) {
	ctx := context.Background()
	const node = "xen-tok"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: leaseNS, Name: "xenclone-hostagent"}}
	if err := admin.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := admin.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(ctx, n) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: leaseNS, Name: "xenclone-hostagent-tok"},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa.Name,
			NodeName:           node,
			Containers:         []corev1.Container{{Name: "hostagent", Image: "ghcr.io/xenclone/xenclone:test"}},
		},
	}
	if err := admin.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Delete(ctx, pod, client.GracePeriodSeconds(0)) })

	tr, err := cs.CoreV1().ServiceAccounts(leaseNS).CreateToken(ctx, sa.Name, &authnv1.TokenRequest{
		Spec: authnv1.TokenRequestSpec{
			ExpirationSeconds: ptr.To[int64](3600),
			BoundObjectRef:    &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest bound to the agent's pod: %v", err)
	}
	tokCfg := rest.AnonymousClientConfig(cfg)
	tokCfg.BearerToken = tr.Status.Token

	tokCS, err := kubernetes.NewForConfig(tokCfg)
	if err != nil {
		t.Fatal(err)
	}
	review, err := tokCS.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview with the pod's token: %v", err)
	}
	ui := review.Status.UserInfo
	if ui.Username != agentSA {
		t.Errorf("the token authenticates as %q, want %q (config/rbac binds that name)", ui.Username, agentSA)
	}
	if got := ui.Extra[nodeExtra]; len(got) != 1 || got[0] != node {
		t.Fatalf("the pod's token carries %s = %v, want [%s]: the admission policy keys on it (user info %+v)", nodeExtra, got, node, ui)
	}

	agent, err := client.New(tokCfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	own := boundClone(t, "tok-own", node)
	other := boundClone(t, "tok-other", "xen-else")
	err = eventuallyDenied(t, func() error { return statusPatch(ctx, agent, other, "from the wrong host") })
	wantForbidden(t, "the pod's token writing another node's clone", err, "hostagent-own-node")
	if err := statusPatch(ctx, agent, own, "from its own host"); err != nil {
		t.Errorf("the pod's token writing its own node's clone: %v", err)
	}
}
