package hostagent_test

import (
	"context"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hack/testenv"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// hookedHypervisor lets a test act just before xl create.
type hookedHypervisor struct {
	*xen.Driver
	mu           sync.Mutex
	beforeCreate func()
}

func (h *hookedHypervisor) Create(ctx context.Context, name, cfg string, o xen.CreateOptions) error {
	h.mu.Lock()
	hook := h.beforeCreate
	h.beforeCreate = nil
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	return h.Driver.Create(ctx, name, cfg, o)
}

// TestAgentRestartMidStep kills the agent in the middle of each step — while the snapshot is
// taken, while the guest is prepared, while the domain is created — and starts a new one, as
// a crashed DaemonSet pod would be. The clone must end Running with exactly one disk (prepared)
// and one domain, and deleting it must leave the host clean.
func TestAgentRestartMidStep(t *testing.T) {
	testenv.Need(t)
	const node = "xen-b"
	h := hosts[node]
	hyp := &hookedHypervisor{Driver: h.Xen}
	host := h.AgentHost()
	host.Hypervisor = hyp
	killAgent(node)
	if err := startAgent(context.Background(), node, host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		killAgent(node)
		if err := startAgent(context.Background(), node, h.AgentHost()); err != nil {
			t.Errorf("restore agent: %v", err)
		}
	})
	template(t, "tpl-restart")

	for _, tc := range []struct {
		step string
		arm  func(kill func())
	}{
		{"snapshot", func(kill func()) { h.Storage.BeforeCreate(func(hostagent.SnapshotRequest) { kill() }) }},
		{"guest", func(kill func()) { h.Guest.BeforePrepare(kill) }},
		{"domain", func(kill func()) {
			hyp.mu.Lock()
			hyp.beforeCreate = kill
			hyp.mu.Unlock()
		}},
	} {
		t.Run(tc.step, func(t *testing.T) {
			g := NewWithT(t)
			ns := newNamespace(t)
			killed := make(chan struct{})
			// The hook runs inside the agent's reconcile: kill it from outside and let the
			// interrupted step carry on with a cancelled context, as a dying process would.
			tc.arm(func() { go func() { killAgent(node); close(killed) }(); time.Sleep(50 * time.Millisecond) })
			c := clone(t, ns, "phoenix", "tpl-restart", func(c *vmv1alpha1.VMClone) {
				c.Spec.Placement = &vmv1alpha1.Placement{NodeName: node}
			})
			select {
			case <-killed:
			case <-time.After(timeout):
				t.Fatalf("the agent never reached the %s step", tc.step)
			}
			g.Expect(startAgent(context.Background(), node, host)).To(Succeed())

			got := waitPhase(t, c, vmv1alpha1.PhaseRunning)
			lvs := ownedLVs(t, node, string(got.UID))
			g.Expect(lvs).To(HaveLen(1), "exactly one disk after the restart")
			g.Expect(lvs[0].HasTag(hostagent.PreparedTag)).To(BeTrue())
			doms, err := h.Xen.List(context.Background())
			g.Expect(err).NotTo(HaveOccurred())
			n := 0
			for _, d := range doms {
				if d.Name == vmv1alpha1.DomainNameOf(got) {
					n++
				}
			}
			g.Expect(n).To(Equal(1), "exactly one domain after the restart")
			for other := range hosts {
				if other != node {
					g.Expect(ownedLVs(t, other, string(got.UID))).To(BeEmpty(), "the agent of %s acted on a clone bound to %s", other, node)
				}
			}

			g.Expect(k8sClient.Delete(context.Background(), got)).To(Succeed())
			g.Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(context.Background(), client.ObjectKeyFromObject(c), &vmv1alpha1.VMClone{}))
			}, timeout).Should(BeTrue())
			g.Expect(ownedLVs(t, node, string(got.UID))).To(BeEmpty())
			_, found := domainOf(t, got)
			g.Expect(found).To(BeFalse())
		})
	}
}
