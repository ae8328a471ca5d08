//go:build lab

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/hostnet"
	"github.com/xenclone/xenclone/hostagent/xen"
)

// guestAddresses is issue 19 on real Xen: two clones of a plain LV (golden-plain, written by dd)
// whose guests (hack/lab/guest/init) give eth0 an address and ping dom0 on xenbr0.
//   - One runs a guest agent (xcagent): it prints "up", then writes a guest agent's xenstore keys.
//     Its template's readiness probe is GuestAgent: GuestReady must be False while it boots and
//     turn True only after that line, with the address from xenstore (source GuestAgent).
//   - The other has no agent: its address comes from dom0's neighbour table (source
//     NeighborTable), and its probe is TCP port 22, which it answers after printing "up".
//
// Then `xenclone console` — what `kubectl xenclone console` execs in the agent's pod — prints
// the guest's console lines, and a second session is refused. With XENCLONE_LAB_FIXTURES set,
// the real xenstore-ls and ip outputs are written as the parsers' fixtures.
func (e *env) guestAddresses() {
	t := e.t
	g := NewWithT(t)
	start := time.Now()
	plain := func(name, args string, r *vmv1alpha1.GuestReadiness) string {
		return e.template(name, "golden-plain", func(s *vmv1alpha1.VMTemplateSpec) {
			s.Snapshot = vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: ptr.To(resource.MustParse("32Mi"))}
			s.Domain.Boot.Cmdline += " xcalive " + args
			s.Domain.Readiness = r
			off := false
			s.Guest.CloudInit = &off
		})
	}
	withAgent := e.clone("ga-1", plain("lab-agent", "xcnet=192.0.2.20/24,192.0.2.1 xcagent",
		&vmv1alpha1.GuestReadiness{Probe: vmv1alpha1.GuestProbeGuestAgent}), "ga-one", vmv1alpha1.RunStrategyAlways)
	noAgent := e.clone("gn-1", plain("lab-noagent", "xcnet=192.0.2.21/24,192.0.2.1 xcport=22",
		&vmv1alpha1.GuestReadiness{Probe: vmv1alpha1.GuestProbeTCP, Port: 22}), "gn-one", vmv1alpha1.RunStrategyAlways)

	// Each clone, watched from its create: GuestReady False (WaitingForGuest) while the guest
	// boots and Ready not True, then True — and by then the guest has printed "up" (it prints
	// it 2 s after booting, then writes its keys or opens its port).
	type readyWatch struct {
		waiting bool
		up      string // the console's count of "XCID up" right after GuestReady turned True
		err     error
		done    chan struct{}
	}
	watch := func(c *vmv1alpha1.VMClone) *readyWatch {
		w := &readyWatch{done: make(chan struct{})}
		go func() {
			defer close(w.done)
			for deadline := time.Now().Add(stepTimeout); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
				got := &vmv1alpha1.VMClone{}
				if err := e.k.Get(context.Background(), client.ObjectKeyFromObject(c), got); err != nil {
					continue
				}
				cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionGuestReady)
				if cond == nil {
					continue
				}
				if cond.Status == metav1.ConditionTrue {
					w.up, _ = e.lab.Try("tr -d '\\r' </var/log/xen/console/guest-" + vmv1alpha1.DomainNameOf(got) + ".log | grep -c 'XCID up' || true")
					w.up = strings.TrimSpace(w.up)
					return
				}
				if cond.Reason != vmv1alpha1.ReasonWaitingForGuest {
					w.err = fmt.Errorf("GuestReady %s %s: %s", cond.Status, cond.Reason, cond.Message)
					return
				}
				if ready := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionReady); ready != nil && ready.Status == metav1.ConditionTrue {
					w.err = fmt.Errorf("Ready is True while GuestReady is False: %s", ready.Message)
					return
				}
				w.waiting = true
			}
			w.err = fmt.Errorf("GuestReady not True within %s", stepTimeout)
		}()
		return w
	}
	watches := map[string]*readyWatch{withAgent.Name: watch(withAgent), noAgent.Name: watch(noAgent)}
	check := func(c *vmv1alpha1.VMClone, ip string, src vmv1alpha1.AddressSource, says string) *vmv1alpha1.VMClone {
		t.Helper()
		e.waitRunning(c)
		w := watches[c.Name]
		<-w.done
		g.Expect(w.err).NotTo(HaveOccurred(), func() string { return "agent log:\n" + e.agentLog() })
		g.Expect(w.waiting).To(BeTrue(), "GuestReady was never False while the guest booted")
		g.Expect(w.up).To(Equal("1"), "GuestReady turned True before the guest printed that it is up")
		var got *vmv1alpha1.VMClone
		g.Eventually(func(g Gomega) {
			got = e.get(g, c)
			cond := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionGuestReady)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Message).To(ContainSubstring(says))
			g.Expect(got.Status.Guest).NotTo(BeNil())
			g.Expect(got.Status.Guest.IP).To(Equal(ip))
			g.Expect(got.Status.Guest.Interfaces).To(HaveLen(1))
			g.Expect(got.Status.Guest.Interfaces[0].Source).To(Equal(src))
			g.Expect(got.Status.Guest.Interfaces[0].MAC).To(Equal(got.Status.Interfaces[0].MAC))
			ready := meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Status).To(Equal(metav1.ConditionTrue), ready.Message)
		}, stepTimeout, time.Second).Should(Succeed(), func() string { return "agent log:\n" + e.agentLog() })
		t.Logf("%s: %s from %s, GuestReady %q, %s after its create", c.Name, got.Status.Guest.IP, src,
			meta.FindStatusCondition(got.Status.Conditions, vmv1alpha1.ConditionGuestReady).Message, time.Since(start).Round(100*time.Millisecond))
		return got
	}
	a := check(withAgent, "192.0.2.20", vmv1alpha1.AddressFromGuestAgent, "guest agent reported (version 1.0.0-xclab)")
	g.Expect(a.Status.Guest.OS).To(Equal("xclab guest"))
	g.Expect(a.Status.Guest.Kernel).NotTo(BeEmpty())
	check(noAgent, "192.0.2.21", vmv1alpha1.AddressFromNeighborTable, "port 22 answers (192.0.2.21:22)")

	// The same parsers on the real tools' output.
	tree := e.lab.Sh(t, "xenstore-ls -f /local/domain/"+strconv.Itoa(int(a.Status.Domain.ID)))
	parsed, err := xen.ParseXenstoreLs([]byte(tree), "/local/domain/"+strconv.Itoa(int(a.Status.Domain.ID)))
	g.Expect(err).NotTo(HaveOccurred())
	rep := xen.GuestReportFrom(parsed)
	g.Expect(rep.AgentVersion).To(Equal("1.0.0-xclab"))
	g.Expect(rep.NICs[0].IPv4).To(HaveLen(1))
	neigh := e.lab.Sh(t, "ip -j neigh show dev xenbr0")
	ns, err := hostnet.ParseNeighbors([]byte(neigh))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ns).NotTo(BeEmpty())
	if dir := os.Getenv("XENCLONE_LAB_FIXTURES"); dir != "" {
		for path, data := range map[string]string{
			filepath.Join(dir, "xen", "testdata", "real-lab", "xenstore-ls-guest-agent.txt"): tree,
			filepath.Join(dir, "hostnet", "testdata", "neigh-lab.json"):                      neigh,
		} {
			g.Expect(os.WriteFile(path, []byte(strings.TrimRight(data, "\n")+"\n"), 0o644)).To(Succeed())
		}
	}

	// The console, through the agent side of `kubectl xenclone console`, exec'd in the agent's
	// container as kubectl exec does: xl console of the domain prints the guest's heartbeat; a
	// second session at the same time is refused.
	dom := vmv1alpha1.DomainNameOf(a)
	// Under TCG an exec through containerd takes seconds to start: the second session starts
	// once the first has printed a heartbeat line, and each has time to spare. In one run
	// a ctr that timeout sent SIGTERM did not exit (ctr forwards it to the session and waits):
	// -k kills ctr.
	out := e.lab.Sh(t, agentContainer+`
(sleep 40 | timeout -k 3 30 `+inAgent("console1", "console "+dom)+` >/tmp/console1.out 2>&1; echo "rc=$?" >>/tmp/console1.out) &
for i in $(seq 50); do tr -d '\r' </tmp/console1.out 2>/dev/null | grep -q 'XCID alive' && break; sleep 0.5; done
sleep 3 | timeout -k 3 20 `+inAgent("console2", "console "+dom)+` >/tmp/console2.out 2>&1; echo "second rc=$?"
wait
tr -d '\r' </tmp/console1.out | grep -c 'XCID alive' || true
cat /tmp/console2.out`)
	t.Logf("xenclone console in dom0:\n%s", out)
	g.Expect(out).To(ContainSubstring("another console session is attached to domain "+dom), "the second session is refused")
	g.Expect(out).To(MatchRegexp(`(?m)^[1-9][0-9]*$`), "the first session printed the guest's heartbeat lines")

	for _, c := range []*vmv1alpha1.VMClone{withAgent, noAgent} {
		e.delete(c)
	}
	t.Logf("guest addresses and readiness on real Xen in %s", time.Since(start).Round(time.Second))
}
