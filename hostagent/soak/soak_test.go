package soak

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/xen"
)

const (
	ns          = "soak"
	poolName    = "soak-pool"
	foreignDom  = "foreign-web"
	foreignUUID = "5e1f0000-0000-4000-8000-00000000f00d"
)

var templates = []string{"soak-classic", "soak-kernel"}

// soak is one chaos run: the processes, the hosts, what was done and what was seen.
type soak struct {
	t     *testing.T
	rng   *rand.Rand
	ctl   *proc
	hosts []*host

	counts map[string]int // operations, kills, faults by kind
	// seen: every clone UID ever listed → "ns/name"; running: UIDs seen Running at least once.
	seen, running map[types.UID]string
	// identity violations seen while sampling (same UUID or MAC on two live clones).
	dupes []string
	// splitBrain: domains of one clone seen running on two hosts at once. The opt-in
	// Reschedule moves clones off a host that is only cut off, whose agent must have fenced
	// them first.
	splitBrain map[string]bool
	// planted: per host, LVs of other tools and the template origin as first seen.
	planted map[string]map[string]lvm.LV
	origins map[string]lvm.LV
	next    int
	// reschedule: some clones opt in to moving off a lost host.
	reschedule bool
	// apiDown are the kube-apiserver's restarts; falseLoss the hosts called lost while
	// neither they were cut off nor the API server was down.
	apiDown   []cut
	falseLoss map[string]bool
	// lost are the disks removed out of band; newDisks the clones that got one back unasked.
	lost     []lostVolume
	newDisks map[string]bool
}

func (s *soak) count(k string) { s.counts[k]++ }

func TestChaosSoak(t *testing.T) {
	chaos, mode := *soakDuration, "long"
	if chaos == 0 {
		chaos, mode = 60*time.Second, "short (CI)"
	}
	seed := *soakSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	// Both runs have clones that opt in to Reschedule, so CI sees agents fence and the
	// split-brain invariant has something to catch; -soak.reschedule=false leaves them out.
	reschedule := true
	if *soakReschedule != "" {
		reschedule = *soakReschedule == "true"
	}
	fmt.Printf("soak: %s run, chaos phase %s, %d hosts (clocks xen-a %+v, xen-b %+v), reschedule %v, seed %d (replay with -soak.seed=%d)\n",
		mode, chaos, *soakHosts, *soakSkew, -*soakSkew, reschedule, seed, seed)
	ctx := context.Background()
	s := &soak{
		t: t, rng: rand.New(rand.NewSource(seed)), counts: map[string]int{},
		seen: map[types.UID]string{}, running: map[types.UID]string{},
		planted: map[string]map[string]lvm.LV{}, origins: map[string]lvm.LV{}, splitBrain: map[string]bool{}, falseLoss: map[string]bool{}, newDisks: map[string]bool{},
		reschedule: reschedule,
	}
	t.Cleanup(s.stopAll)

	for i := 0; i < *soakHosts; i++ {
		h, err := newHost(ctx, fmt.Sprintf("xen-%c", 'a'+i))
		if err != nil {
			t.Fatal(err)
		}
		switch i {
		case 0:
			h.skew = *soakSkew
		case 1:
			h.skew = -*soakSkew
		}
		s.hosts = append(s.hosts, h)
		s.plant(ctx, h)
		if err := h.startAgent(); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if s.ctl, err = startController(); err != nil {
		t.Fatal(err)
	}
	s.setup(ctx)

	start := time.Now()
	deadline := start.Add(chaos)
	lastAPIRestart := start
	apiEvery := chaos / 3
	if apiEvery > 3*time.Minute {
		apiEvery = 3 * time.Minute
	}
	lastProgress := start
	for ops := 0; time.Now().Before(deadline); ops++ {
		if time.Since(lastProgress) > time.Minute {
			lastProgress = time.Now()
			fmt.Printf("soak: %s in, %d clones seen, %d resets, kills: controller %d agent %d apiserver %d, hosts cut off %d\n",
				time.Since(start).Round(time.Second), len(s.seen), s.counts["reset"], s.counts["kill controller"],
				s.counts["kill agent"], s.counts["restart kube-apiserver"], s.counts["host cut off"])
		}
		s.returnHosts()
		if time.Since(lastAPIRestart) > apiEvery {
			s.restartAPI()
			lastAPIRestart = time.Now()
		}
		s.step(ctx)
		if ops%5 == 0 {
			s.sample(ctx)
		}
		time.Sleep(time.Duration(50+s.rng.Intn(150)) * time.Millisecond)
	}
	chaosTook := time.Since(start)

	// Converge: faults off, every host back, every process up; then check, delete, check again.
	s.faultsOff(ctx)
	for _, h := range s.hosts {
		h.mu.Lock()
		h.back()
		h.mu.Unlock()
		h.net.Restore()
		// A restart also frees a worker that an injected `xl create` hang still holds.
		h.killAgent()
		if err := h.startAgent(); err != nil {
			t.Fatal(err)
		}
	}
	convergeStart := time.Now()
	settled, unsettled, failed := s.waitSettled(ctx, 3*time.Minute)
	convergeTook := time.Since(convergeStart)
	s.sample(ctx)

	stuck := s.deleteAll(ctx, 2*time.Minute)
	leaks := s.waitHostsClean(ctx, time.Minute)
	foreign := s.foreignTouched(ctx)
	tmpl := s.templateChanged(ctx)
	tmplStuck := s.deleteTemplates(ctx, time.Minute)
	restored := s.originsRestored(ctx, time.Minute)
	falseMoves, movedFrom := s.movesOffLiveHosts(ctx)

	// The table.
	kills := s.counts["kill controller"] + s.counts["kill agent"] + s.counts["restart kube-apiserver"]
	cycles := len(s.seen) + s.counts["reset"]
	var b strings.Builder
	fmt.Fprintf(&b, "\nsoak summary: seed %d, chaos %s, converge %s, %d hosts\n", seed, chaosTook.Round(time.Second), convergeTook.Round(time.Second), len(s.hosts))
	fmt.Fprintf(&b, "  cycles %d (%d clones created and deleted, %d of them reached Running; %d resets)\n", cycles, len(s.seen), len(s.running), s.counts["reset"])
	fmt.Fprintf(&b, "  process kills %d (controller %d, agent %d, kube-apiserver restarts %d); hosts cut off from the API server %d\n", kills,
		s.counts["kill controller"], s.counts["kill agent"], s.counts["restart kube-apiserver"], s.counts["host cut off"])
	var keys []string
	for k := range s.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(&b, "  fencing: %d clones moved off a lost host (%d moves held: widespread loss), %d domains fenced by cut-off agents, %d rebound copies destroyed on return\n",
		s.events(ctx, vmv1alpha1.ReasonRescheduled), s.events(ctx, vmv1alpha1.ReasonReschedulePaused),
		int(counterTotal("xenclone_hostagent_fenced_domains_total")), int(counterTotal("xenclone_hostagent_duplicates_stopped_total")))
	fmt.Fprintf(&b, "  operations and faults:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d;", k, s.counts[k])
	}
	fmt.Fprintf(&b, "\n\n  %-62s %8s  %s\n", "INVARIANT", "VIOLATED", "DETAIL")
	rows := []struct {
		name   string
		bad    []string
		detail string
	}{
		{"clone in its desired state (or Failed with a clear reason)", unsettled, fmt.Sprintf("%d settled, %d Failed with a reason", settled, len(failed))},
		{"owned LVs without a VMClone", leaks["lv"], ""},
		{"owned domains without a VMClone", leaks["domain"], ""},
		{"domain config files without a VMClone", leaks["config"], ""},
		{"cloud-init seeds without a VMClone", leaks["seed"], ""},
		{"untagged / foreign LVs or foreign domain touched", foreign, fmt.Sprintf("%d planted per host + domain %s", 2, foreignDom)},
		{"template origin changed (UUID, size, tags, attrs but ro/origin)", tmpl, "origin debian12 on every host"},
		{"origin not as first seen once its template is gone (ro, tags)", restored, "the agent reverts only the read-only flag it set"},
		{"VMClone finalizer stuck after delete", stuck, ""},
		{"VMTemplate stuck after its clones are gone", tmplStuck, ""},
		{"MAC or UUID shared by two clones", s.dupes, "sampled during the run and at the end"},
		{"one clone's domain running on two hosts at once", sortedKeys(s.splitBrain), "sampled; a cut-off host fences its Reschedule clones before they move"},
		{"disk lost out of band replaced without a reset (silent new disk)", sortedKeys(s.newDisks), fmt.Sprintf("%d disks removed behind the agent; sampled", s.counts["fault: volume lost"])},
		{"host called lost while reachable (two clocks minutes off)", sortedKeys(s.falseLoss), "sampled; liveness is judged on the controller's clock"},
		{"clone moved off a host that was not cut off (skewed clocks)", falseMoves, "moved off each host: " + movedFrom},
	}
	failedAny := false
	for _, r := range rows {
		detail := r.detail
		if len(r.bad) > 0 {
			failedAny = true
			detail = strings.Join(first(r.bad, 6), "; ")
		}
		fmt.Fprintf(&b, "  %-62s %8d  %s\n", r.name, len(r.bad), detail)
	}
	for _, f := range first(failed, 6) {
		fmt.Fprintf(&b, "  failed clone (accepted, reason shown to the user): %s\n", f)
	}
	fmt.Print(b.String())
	if path := os.Getenv("SOAK_REPORT"); path != "" {
		_ = os.WriteFile(path, []byte(b.String()), 0o644)
	}
	if failedAny {
		t.Errorf("soak invariants violated (seed %d): see the table", seed)
	}
}

// events counts the events with a reason in the soak namespace (a series counts its repeats).
func (s *soak) events(ctx context.Context, reason string) int {
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return -1
	}
	n := 0
	for _, e := range list.Items {
		if e.Reason != reason {
			continue
		}
		n++
		if e.Series != nil {
			n += int(e.Series.Count) - 1
		}
	}
	return n
}

// sampleHostLoss checks every host the controller calls lost (XenHost Ready Unknown,
// HeartbeatLost; the transition time is the controller's clock) against the host's cuts and
// the API server's restarts. Anything else is a live host called dead: what judging by the
// agent's renewTime does to a host whose clock is behind.
func (s *soak) sampleHostLoss(ctx context.Context) {
	var xhs vmv1alpha1.XenHostList
	if err := k8s.List(ctx, &xhs); err != nil {
		return
	}
	// The controller may mark a loss a moment after the host is back, before it has seen the
	// first renewal since; after an API server restart the agents' watches and renewals take
	// a few seconds to resume.
	const lag = 15 * time.Second
	excused := func(at time.Time, cuts []cut) bool {
		for _, c := range cuts {
			if !at.Before(c.from.Add(-time.Second)) && (c.to.IsZero() || at.Before(c.to.Add(lag))) {
				return true
			}
		}
		return false
	}
	for _, h := range s.hosts {
		for _, xh := range xhs.Items {
			if xh.Name != h.name {
				continue
			}
			c := meta.FindStatusCondition(xh.Status.Conditions, vmv1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionUnknown || c.Reason != vmv1alpha1.ReasonHeartbeatLost {
				continue
			}
			at := c.LastTransitionTime.Time
			h.mu.Lock()
			ok := excused(at, h.cuts)
			h.mu.Unlock()
			if !ok && !excused(at, s.apiDown) {
				label := h.name
				if h.skew != 0 {
					label += fmt.Sprintf(" (clock %+v)", h.skew)
				}
				s.falseLoss[fmt.Sprintf("%s lost at %s", label, at.Format("15:04:05"))] = true
			}
		}
	}
}

// back ends the host's absence (h.mu held).
func (h *host) back() {
	h.awayUntil = time.Time{}
	if n := len(h.cuts); n > 0 && h.cuts[n-1].to.IsZero() {
		h.cuts[n-1].to = time.Now()
	}
}

// movesOffLiveHosts checks every RescheduledFromLostHost event against the hosts' absences.
// Only a cut-off host stays silent for heartbeatGrace + rescheduleAfter (an agent kill lasts
// under a second, a kube-apiserver restart under five), so a move off a host that was not
// away at the time is a live host called dead: what judging liveness by the agent's clock does
// to the host whose clock is behind. It also tells how many clones left each host, so a run
// shows the host whose clock is ahead is still called dead when it is cut off.
func (s *soak) movesOffLiveHosts(ctx context.Context) (bad []string, perHost string) {
	var list eventsv1.EventList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return []string{"list events: " + err.Error()}, ""
	}
	// The controller may act on a loss a moment after the host is back: it has not yet seen
	// the first renewal since.
	const lag = 10 * time.Second
	moved := map[string]int{}
	for _, e := range list.Items {
		if e.Reason != vmv1alpha1.ReasonRescheduled {
			continue
		}
		var node string
		if _, err := fmt.Sscanf(e.Note, "host %s has been lost", &node); err != nil {
			bad = append(bad, fmt.Sprintf("%s: unexpected note %q", e.Regarding.Name, e.Note))
			continue
		}
		at := e.EventTime.Time
		if e.Series != nil {
			at = e.Series.LastObservedTime.Time
		}
		moved[node]++
		away := false
		for _, h := range s.hosts {
			if h.name != node {
				continue
			}
			h.mu.Lock()
			for _, c := range h.cuts {
				if !at.Before(c.from) && (c.to.IsZero() || at.Before(c.to.Add(lag))) {
					away = true
				}
			}
			h.mu.Unlock()
		}
		if !away {
			bad = append(bad, fmt.Sprintf("%s off %s at %s", e.Regarding.Name, node, at.Format("15:04:05")))
		}
	}
	var parts []string
	for _, h := range s.hosts {
		label := h.name
		if h.skew != 0 {
			label += fmt.Sprintf(" (clock %+v)", h.skew)
		}
		parts = append(parts, fmt.Sprintf("%s %d", label, moved[h.name]))
	}
	return bad, strings.Join(parts, ", ")
}

// counterTotal sums a counter of the agents' metrics over its labels (all agents of the soak
// share the process's registry).
func counterTotal(name string) float64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func sortedKeys(seen map[string]bool) []string {
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), fmt.Sprintf("… %d more", len(s)-n))
	}
	return s
}

// plant puts what is not ours on a host: an untagged LV, an LV another tool tagged, and a
// domain started from a config outside the agent's folder. None of it may change.
func (s *soak) plant(ctx context.Context, h *host) {
	t := s.t
	st := h.sim.Storage
	if err := st.AddLV("vg0", "foreign-db", "-wi-a-----", 1<<30); err != nil {
		t.Fatal(err)
	}
	if err := st.AddLV("vg0", "other-tool-vol", "-wi-a-----", 1<<30, "owner=other-tool", "xenclone-lookalike"); err != nil {
		t.Fatal(err)
	}
	rep, err := st.Report(ctx, "vg0")
	if err != nil {
		t.Fatal(err)
	}
	s.planted[h.name] = map[string]lvm.LV{}
	for _, lv := range rep.LVs {
		switch lv.Name {
		case "foreign-db", "other-tool-vol":
			s.planted[h.name][lv.Name] = lv
		case "debian12":
			s.origins[h.name] = lv
		}
	}
	dir := filepath.Join(h.sim.Dir, "foreign")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, foreignDom+".cfg")
	cfg := fmt.Sprintf("name = %q\nuuid = %q\nmemory = 256\nvcpus = 1\nbootloader = \"pygrub\"\ndisk = [ \"phy:/dev/vg0/foreign-db,xvda,w\" ]\n", foreignDom, foreignUUID)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.sim.Xen.Create(ctx, foreignDom, cfgPath, xen.CreateOptions{}); err != nil {
		t.Fatalf("start foreign domain on %s: %v", h.name, err)
	}
}

func (s *soak) setup(ctx context.Context) {
	t := s.t
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	mem, cow := resource.MustParse("256Mi"), resource.MustParse("64Mi")
	maxCOW := resource.MustParse("256Mi")
	for _, name := range templates {
		tpl := &vmv1alpha1.VMTemplate{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: vmv1alpha1.VMTemplateSpec{
				Origin: vmv1alpha1.Origin{VolumeGroup: "vg0", LogicalVolume: "debian12"},
				Snapshot: vmv1alpha1.SnapshotSpec{Mode: vmv1alpha1.SnapshotClassic, COWSize: &cow,
					AutoExtend: &vmv1alpha1.AutoExtendPolicy{ThresholdPercent: 70, StepPercent: 20, MaxSize: &maxCOW}},
				Domain: vmv1alpha1.DomainSpec{Memory: &mem, Boot: &vmv1alpha1.BootSpec{Bootloader: "pygrub"},
					NICs: []vmv1alpha1.NIC{{Bridge: "xenbr0"}, {Bridge: "xenbr1"}}},
			},
		}
		if name == "soak-kernel" {
			// Direct kernel boot with a command line full of xl.cfg metacharacters: the renderer
			// must quote it, never let it end the string or add a key.
			tpl.Spec.Domain.Boot = &vmv1alpha1.BootSpec{Kernel: "/boot/vmlinuz-6.1", Ramdisk: "/boot/initrd.img-6.1",
				Cmdline: `root=/dev/xvda1 console=hvc0 x="]; on_crash = \"preserve\" # ' \` + `\`}
			tpl.Spec.Guest.CloudInit = ptr.To(false)
		}
		if err := k8s.Create(ctx, tpl); err != nil {
			t.Fatal(err)
		}
	}
	pool := &vmv1alpha1.VMClonePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: poolName},
		Spec: vmv1alpha1.VMClonePoolSpec{Replicas: ptr.To[int32](2), ReplaceFailed: ptr.To(true),
			Template: vmv1alpha1.VMCloneTemplateSpec{Spec: vmv1alpha1.VMCloneSpec{
				TemplateRef: vmv1alpha1.LocalObjectReference{Name: "soak-classic"}}}},
	}
	if err := k8s.Create(ctx, pool); err != nil {
		t.Fatal(err)
	}
}

// step does one random thing.
func (s *soak) step(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var list vmv1alpha1.VMCloneList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		s.count("api error")
		return
	}
	standalone := []vmv1alpha1.VMClone{}
	for _, c := range list.Items {
		if c.Labels[vmv1alpha1.PoolLabel] == "" && c.DeletionTimestamp.IsZero() {
			standalone = append(standalone, c)
		}
	}
	pick := func(cs []vmv1alpha1.VMClone) *vmv1alpha1.VMClone {
		if len(cs) == 0 {
			return nil
		}
		return &cs[s.rng.Intn(len(cs))]
	}
	apiErr := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			s.count("api error")
		}
	}
	switch n := s.rng.Intn(100); {
	case n < 28: // create
		if len(standalone) >= *soakClones {
			return
		}
		s.next++
		c := &vmv1alpha1.VMClone{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c-%d", s.next)},
			Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: templates[s.rng.Intn(len(templates))]},
				RunStrategy: vmv1alpha1.RunStrategyAlways},
		}
		if s.rng.Intn(5) == 0 {
			c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted
		}
		if s.reschedule && s.rng.Intn(3) == 0 {
			c.Spec.Placement = &vmv1alpha1.Placement{OnNodeLost: vmv1alpha1.NodeLostReschedule}
		}
		apiErr(k8s.Create(ctx, c))
		s.count("create")
	case n < 42: // delete
		if c := pick(list.Items); c != nil {
			apiErr(k8s.Delete(ctx, c))
			s.count("delete")
		}
	case n < 52: // reset
		if c := pick(list.Items); c != nil && c.DeletionTimestamp.IsZero() && c.Labels[vmv1alpha1.PoolLabel] == "" {
			patch := client.MergeFrom(c.DeepCopy())
			c.Spec.ResetRequests++
			apiErr(k8s.Patch(ctx, c, patch))
			s.count("reset")
		}
	case n < 56: // run strategy
		if c := pick(standalone); c != nil {
			patch := client.MergeFrom(c.DeepCopy())
			if c.Spec.RunStrategy == vmv1alpha1.RunStrategyHalted {
				c.Spec.RunStrategy = vmv1alpha1.RunStrategyAlways
			} else {
				c.Spec.RunStrategy = vmv1alpha1.RunStrategyHalted
			}
			apiErr(k8s.Patch(ctx, c, patch))
			s.count("toggle runStrategy")
		}
	case n < 61: // scale the pool
		pool := &vmv1alpha1.VMClonePool{}
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: poolName}, pool); err != nil {
			apiErr(err)
			return
		}
		patch := client.MergeFrom(pool.DeepCopy())
		pool.Spec.Replicas = ptr.To(int32(s.rng.Intn(4)))
		apiErr(k8s.Patch(ctx, pool, patch))
		s.count("scale pool")
	case n < 67:
		if s.longCut() {
			return
		}
		s.ctl.kill()
		time.Sleep(time.Duration(s.rng.Intn(1500)) * time.Millisecond)
		ctl, err := startController()
		if err != nil {
			s.t.Fatal(err)
		}
		s.ctl = ctl
		s.count("kill controller")
	case n < 75:
		// Any host's agent, also one cut off: it starts without reaching the API server, so its
		// cache never syncs and only its fence journal tells it what to fence.
		h := s.hosts[s.rng.Intn(len(s.hosts))]
		h.mu.Lock()
		away := !h.awayUntil.IsZero()
		h.mu.Unlock()
		h.killAgent()
		time.Sleep(time.Duration(s.rng.Intn(1000)) * time.Millisecond)
		if err := h.startAgent(); err != nil {
			s.t.Fatal(err)
		}
		s.count("kill agent")
		if away {
			s.count("kill agent while cut off")
		}
	case n < 78:
		// A host is cut off: its agent runs on but reaches no API server, and its lease goes
		// stale long enough for the controller to call it lost (and move the clones that
		// opted in, which the agent must have fenced by then).
		if s.presentHosts() < 2 {
			return
		}
		h := s.presentHost()
		h.net.Cut()
		away := heartbeatGrace + rescheduleAfter + time.Duration(s.rng.Intn(4000))*time.Millisecond
		// A controller restart starts its view of every host afresh (it cannot know how long
		// a host was silent before), and restarts come every few seconds here: half the cuts
		// hold them off and last longer, so clones do move. Only a host alone away is cut long:
		// with two of three hosts away the controller pauses all moves (widespread loss).
		long := s.rng.Intn(2) == 0 && s.presentHosts() == len(s.hosts)
		if long {
			away += 6 * time.Second
		}
		h.mu.Lock()
		h.awayUntil = time.Now().Add(away)
		h.cuts = append(h.cuts, cut{from: time.Now(), long: long})
		h.mu.Unlock()
		s.count("host cut off")
	default:
		s.injectFault(ctx, list.Items)
	}
}

// longCut tells whether a host is away on a long cut.
func (s *soak) longCut() bool {
	for _, h := range s.hosts {
		h.mu.Lock()
		n := len(h.cuts)
		long := !h.awayUntil.IsZero() && n > 0 && h.cuts[n-1].long
		h.mu.Unlock()
		if long {
			return true
		}
	}
	return false
}

func (s *soak) presentHosts() int {
	n := 0
	for _, h := range s.hosts {
		h.mu.Lock()
		if h.awayUntil.IsZero() {
			n++
		}
		h.mu.Unlock()
	}
	return n
}

func (s *soak) presentHost() *host {
	var hs []*host
	for _, h := range s.hosts {
		h.mu.Lock()
		if h.awayUntil.IsZero() {
			hs = append(hs, h)
		}
		h.mu.Unlock()
	}
	if len(hs) == 0 {
		return nil
	}
	return hs[s.rng.Intn(len(hs))]
}

// returnHosts brings back the hosts whose absence is over.
func (s *soak) returnHosts() {
	for _, h := range s.hosts {
		h.mu.Lock()
		back := !h.awayUntil.IsZero() && time.Now().After(h.awayUntil)
		if back {
			h.back()
		}
		h.mu.Unlock()
		if back {
			h.net.Restore()
		}
	}
}

func (s *soak) restartAPI() {
	from := time.Now()
	if err := restartAPIServer(time.Duration(1+s.rng.Intn(3)) * time.Second); err != nil {
		s.t.Fatal(err)
	}
	s.apiDown = append(s.apiDown, cut{from: from, to: time.Now()})
	s.count("restart kube-apiserver")
}

var errInjected = errors.New("soak: injected fault")

func (s *soak) injectFault(ctx context.Context, clones []vmv1alpha1.VMClone) {
	h := s.hosts[s.rng.Intn(len(s.hosts))]
	switch s.rng.Intn(8) {
	case 0:
		h.sim.Storage.InjectFault("create", fmt.Errorf("%w: lvcreate: device-mapper: reload ioctl failed", errInjected))
		s.count("fault: snapshot create fails")
	case 1:
		h.sim.Storage.InjectFault("create", fmt.Errorf("%w: %w", errInjected, lvm.ErrInsufficientSpace))
		s.count("fault: VG full")
	case 2:
		h.sim.Guest.InjectFault(fmt.Errorf("%w: mount: wrong fs type, bad superblock", errInjected))
		s.count("fault: guest prep fails")
	case 3:
		if h.sim.XL(ctx, "sim-knob", "fail.create=error:1") == nil {
			s.count("fault: xl create fails")
		}
	case 4:
		if h.sim.XL(ctx, "sim-knob", "fail.create=hang:1") == nil {
			s.count("fault: xl create hangs")
		}
	case 5:
		// Invalidate the classic snapshot of a running clone: its COW area filled.
		var running []vmv1alpha1.VMClone
		for _, c := range clones {
			if c.Status.Phase == vmv1alpha1.PhaseRunning && c.Status.Volume != nil {
				running = append(running, c)
			}
		}
		if len(running) == 0 {
			return
		}
		c := running[s.rng.Intn(len(running))]
		for _, hh := range s.hosts {
			if hh.name == c.Status.NodeName {
				hh.sim.Storage.SetUsage("vg0", filepath.Base(c.Status.Volume.Path), 100)
				s.count("fault: snapshot invalidated")
			}
		}
	case 6:
		h.sim.Storage.InjectFault("remove", fmt.Errorf("%w: lvremove: Logical volume in use", errInjected))
		s.count("fault: snapshot remove fails")
	case 7:
		s.loseVolume(clones)
	}
}

// lostVolume is a prepared clone whose disk the soak removed behind the agent's back.
type lostVolume struct {
	uid               types.UID
	key, host         string
	bindingGeneration int64
	resetRequests     int64
}

// loseVolume removes a prepared clone's LV out of band (an administrator's lvremove -f, a
// rebuilt VG). The agent must report VolumeLost and never take a new snapshot on its own.
func (s *soak) loseVolume(clones []vmv1alpha1.VMClone) {
	var prepared []vmv1alpha1.VMClone
	for _, c := range clones {
		if c.DeletionTimestamp.IsZero() && c.Status.Volume != nil && c.Status.Timestamps != nil && c.Status.Timestamps.VolumeReady != nil &&
			c.Spec.ResetRequests == c.Status.ObservedResetRequests && c.Status.Phase != vmv1alpha1.PhaseResetting &&
			c.Labels[vmv1alpha1.PoolLabel] == "" {
			prepared = append(prepared, c)
		}
	}
	if len(prepared) == 0 {
		return
	}
	c := prepared[s.rng.Intn(len(prepared))]
	for _, h := range s.hosts {
		if h.name != c.Status.NodeName {
			continue
		}
		if h.sim.Storage.LoseLV("vg0", filepath.Base(c.Status.Volume.Path)) == nil {
			s.lost = append(s.lost, lostVolume{uid: c.UID, key: c.Namespace + "/" + c.Name, host: h.name,
				bindingGeneration: c.Status.BindingGeneration, resetRequests: c.Spec.ResetRequests})
			s.count("fault: volume lost")
		}
	}
}

// sampleNewDisks looks for a new disk under a clone whose disk was lost: same clone, same host,
// same binding, no reset asked for since, and an LV of the clone there again. The soak alone
// changes spec.resetRequests, in this goroutine, so reading the spec after the LVs cannot race.
func (s *soak) sampleNewDisks(ctx context.Context) {
	if len(s.lost) == 0 {
		return
	}
	owned := map[string]map[types.UID]string{}
	for _, h := range s.hosts {
		rep, err := h.sim.Storage.Report(ctx, "vg0")
		if err != nil {
			return
		}
		owned[h.name] = map[types.UID]string{}
		for _, lv := range rep.LVs {
			if uid := lv.OwnerUID(); uid != "" {
				owned[h.name][types.UID(uid)] = lv.Name
			}
		}
	}
	var list vmv1alpha1.VMCloneList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return
	}
	byUID := map[types.UID]*vmv1alpha1.VMClone{}
	for i := range list.Items {
		byUID[list.Items[i].UID] = &list.Items[i]
	}
	for _, l := range s.lost {
		c := byUID[l.uid]
		if c == nil || c.Spec.ResetRequests != l.resetRequests || c.Status.BindingGeneration != l.bindingGeneration {
			continue
		}
		if lv, ok := owned[l.host][l.uid]; ok {
			s.newDisks[fmt.Sprintf("%s on %s: %s", l.key, l.host, lv)] = true
		}
	}
}

// faultsOff drains every queued fault and clears the xl knobs.
func (s *soak) faultsOff(ctx context.Context) {
	for _, h := range s.hosts {
		_ = h.sim.XL(ctx, "sim-knob", "fail.create=none")
		for i := 0; i < 100; i++ {
			if _, err := h.sim.Storage.CreateSnapshot(ctx, hostagent.SnapshotRequest{VG: "drain-no-such-vg"}); !errors.Is(err, errInjected) {
				break
			}
		}
		for i := 0; i < 100; i++ {
			if err := h.sim.Storage.Remove(ctx, lvm.Ref{VG: "drain-no-such-vg", Name: "x"}, lvm.Owner{UID: "x"}); !errors.Is(err, errInjected) {
				break
			}
		}
		for i := 0; i < 100; i++ {
			if _, err := h.sim.Guest.Prepare(ctx, "/dev/drain", hostagent.PrepareRequest{}); !errors.Is(err, errInjected) {
				break
			}
		}
	}
}

// sample lists every clone: records UIDs, who reached Running, and any UUID or MAC held by two
// clones at once.
func (s *soak) sample(ctx context.Context) {
	var list vmv1alpha1.VMCloneList
	if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return
	}
	uuids, macs := map[string]string{}, map[string]string{}
	runningOn := map[string]string{}
	for _, h := range s.hosts {
		doms, err := h.sim.Xen.List(ctx)
		if err != nil {
			continue
		}
		for _, d := range doms {
			if d.Name == "Domain-0" || d.Name == foreignDom || d.State.Dying || d.State.Shutdown {
				continue
			}
			if other, ok := runningOn[d.Name]; ok {
				s.splitBrain[fmt.Sprintf("%s on %s and %s", d.Name, other, h.name)] = true
			}
			runningOn[d.Name] = h.name
		}
	}
	s.sampleHostLoss(ctx)
	s.sampleNewDisks(ctx)
	for _, c := range list.Items {
		key := c.Namespace + "/" + c.Name
		s.seen[c.UID] = key
		if c.Status.Phase == vmv1alpha1.PhaseRunning {
			s.running[c.UID] = key
		}
		if u := c.Status.UUID; u != "" {
			if other, ok := uuids[u]; ok {
				s.dupes = append(s.dupes, fmt.Sprintf("uuid %s on %s and %s", u, other, key))
			}
			uuids[u] = key
		}
		for _, i := range c.Status.Interfaces {
			if other, ok := macs[i.MAC]; ok && i.MAC != "" {
				s.dupes = append(s.dupes, fmt.Sprintf("mac %s on %s and %s", i.MAC, other, key))
			}
			macs[i.MAC] = key
		}
	}
}

// waitSettled waits until every clone is in the state its spec asks for, or Failed with a
// reason; it returns how many settled, the ones that did not, and the Failed ones.
func (s *soak) waitSettled(ctx context.Context, timeout time.Duration) (int, []string, []string) {
	var settled int
	var unsettled, failed []string
	for end := time.Now().Add(timeout); ; {
		settled, unsettled, failed = 0, nil, nil
		var list vmv1alpha1.VMCloneList
		var pool vmv1alpha1.VMClonePool
		err := k8s.List(ctx, &list, client.InNamespace(ns))
		if err == nil {
			err = k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: poolName}, &pool)
		}
		if err == nil {
			members := 0
			for _, c := range list.Items {
				if c.Labels[vmv1alpha1.PoolLabel] != "" && c.DeletionTimestamp.IsZero() {
					members++
				}
				ok, isFailed, why := settledState(&c)
				switch {
				case isFailed:
					failed = append(failed, why)
				case ok:
					settled++
				default:
					unsettled = append(unsettled, why)
				}
			}
			if want := int(ptr.Deref(pool.Spec.Replicas, 0)); members != want {
				unsettled = append(unsettled, fmt.Sprintf("pool has %d members, wants %d", members, want))
			}
			if len(unsettled) == 0 {
				return settled, nil, failed
			}
		} else {
			unsettled = []string{"api: " + err.Error()}
		}
		if time.Now().After(end) {
			return settled, unsettled, failed
		}
		time.Sleep(time.Second)
	}
}

// settledState says whether a clone is where its spec wants it, or Failed with a reason a user
// can act on.
func settledState(c *vmv1alpha1.VMClone) (ok, failed bool, why string) {
	key := c.Namespace + "/" + c.Name
	st := c.Status
	if !c.DeletionTimestamp.IsZero() {
		return false, false, key + " still Terminating"
	}
	if st.Phase == vmv1alpha1.PhaseFailed {
		if st.Message == "" {
			return false, false, key + " Failed without a message"
		}
		return false, true, fmt.Sprintf("%s: %s", key, st.Message)
	}
	want := vmv1alpha1.PhaseRunning
	if c.Spec.RunStrategy == vmv1alpha1.RunStrategyHalted {
		want = vmv1alpha1.PhaseStopped
	}
	if st.Phase != want || st.ObservedResetRequests != c.Spec.ResetRequests {
		return false, false, fmt.Sprintf("%s on %s is %s (want %s, reset %d/%d): %s", key, st.NodeName, st.Phase, want,
			st.ObservedResetRequests, c.Spec.ResetRequests, st.Message)
	}
	if want == vmv1alpha1.PhaseRunning && !meta.IsStatusConditionTrue(st.Conditions, vmv1alpha1.ConditionReady) {
		return false, false, key + " Running but not Ready"
	}
	return true, false, ""
}

// deleteAll scales the pool to zero, deletes it and every clone, and returns the clones still
// there after timeout (a stuck finalizer).
func (s *soak) deleteAll(ctx context.Context, timeout time.Duration) []string {
	pool := &vmv1alpha1.VMClonePool{}
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: poolName}, pool); err == nil {
		patch := client.MergeFrom(pool.DeepCopy())
		pool.Spec.Replicas = ptr.To[int32](0)
		_ = k8s.Patch(ctx, pool, patch)
		// No garbage collector in envtest: scale to zero first, then delete the pool.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			var list vmv1alpha1.VMCloneList
			if k8s.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{vmv1alpha1.PoolLabel: poolName}) == nil && len(list.Items) == 0 {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		_ = k8s.Delete(ctx, pool)
	}
	_ = k8s.DeleteAllOf(ctx, &vmv1alpha1.VMClone{}, client.InNamespace(ns))
	var left []string
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(time.Second) {
		var list vmv1alpha1.VMCloneList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			continue
		}
		left = nil
		for _, c := range list.Items {
			left = append(left, fmt.Sprintf("%s on %s (%s: %s) finalizers %v", c.Name, c.Status.NodeName, c.Status.Phase, c.Status.Message, c.Finalizers))
		}
		if len(left) == 0 {
			return nil
		}
	}
	return left
}

// leaks lists, per kind, what xenclone created on the hosts and no VMClone owns.
func (s *soak) leaks(ctx context.Context) map[string][]string {
	out := map[string][]string{}
	for _, h := range s.hosts {
		rep, err := h.sim.Storage.Report(ctx, "vg0")
		if err != nil {
			out["lv"] = append(out["lv"], h.name+": "+err.Error())
		}
		for _, lv := range rep.LVs {
			if lv.Managed() || lv.OwnerUID() != "" {
				out["lv"] = append(out["lv"], h.name+":"+lv.Name)
			}
		}
		doms, err := h.sim.Xen.List(ctx)
		if err != nil {
			out["domain"] = append(out["domain"], h.name+": "+err.Error())
		}
		for _, d := range doms {
			if d.Name != "Domain-0" && d.Name != foreignDom {
				out["domain"] = append(out["domain"], h.name+":"+d.Name)
			}
		}
		for _, f := range h.configFiles() {
			out["config"] = append(out["config"], h.name+":"+f)
		}
		seeds, _ := h.sim.Guest.Seeds(ctx)
		for _, sd := range seeds {
			out["seed"] = append(out["seed"], h.name+":"+sd)
		}
	}
	return out
}

func (s *soak) waitHostsClean(ctx context.Context, timeout time.Duration) map[string][]string {
	var l map[string][]string
	for end := time.Now().Add(timeout); ; time.Sleep(time.Second) {
		l = s.leaks(ctx)
		if len(l["lv"])+len(l["domain"])+len(l["config"])+len(l["seed"]) == 0 || time.Now().After(end) {
			return l
		}
	}
}

// foreignTouched compares what we planted with what is there now.
func (s *soak) foreignTouched(ctx context.Context) []string {
	var bad []string
	for _, h := range s.hosts {
		rep, err := h.sim.Storage.Report(ctx, "vg0")
		if err != nil {
			bad = append(bad, h.name+": "+err.Error())
			continue
		}
		for name, before := range s.planted[h.name] {
			now, ok := rep.LV(name)
			switch {
			case !ok:
				bad = append(bad, h.name+": "+name+" removed")
			case now.UUID != before.UUID || now.Size != before.Size || now.Attr.String() != before.Attr.String() ||
				strings.Join(now.Tags, ",") != strings.Join(before.Tags, ","):
				bad = append(bad, fmt.Sprintf("%s: %s changed (%s %d %s %v → %s %d %s %v)", h.name, name,
					before.UUID, before.Size, before.Attr, before.Tags, now.UUID, now.Size, now.Attr, now.Tags))
			}
		}
		d, found, err := h.sim.Xen.Lookup(ctx, foreignDom)
		if err != nil || !found || d.State.Dying || d.State.Shutdown {
			bad = append(bad, fmt.Sprintf("%s: foreign domain %s gone or stopped (%v, %v)", h.name, foreignDom, found, err))
		}
	}
	return bad
}

// templateChanged compares each origin with its first sight: same LV (UUID), size and tags;
// its attributes may differ only in the permission (made read-only) and the origin flag.
func (s *soak) templateChanged(ctx context.Context) []string {
	var bad []string
	mask := func(a string) string {
		if len(a) < 2 {
			return a
		}
		return "?" + "?" + a[2:]
	}
	for _, h := range s.hosts {
		rep, err := h.sim.Storage.Report(ctx, "vg0")
		if err != nil {
			bad = append(bad, h.name+": "+err.Error())
			continue
		}
		before := s.origins[h.name]
		now, ok := rep.LV("debian12")
		switch {
		case !ok:
			bad = append(bad, h.name+": origin gone")
		case now.UUID != before.UUID || now.Size != before.Size || tagsBut(now, lvm.MadeReadOnlyTag) != tagsBut(before, lvm.MadeReadOnlyTag) ||
			mask(now.Attr.String()) != mask(before.Attr.String()):
			bad = append(bad, fmt.Sprintf("%s: origin changed (%s %d %s → %s %d %s)", h.name, before.UUID, before.Size, before.Attr, now.UUID, now.Size, now.Attr))
		}
	}
	return bad
}

// tagsBut is lv's tags without skip, joined.
func tagsBut(lv lvm.LV, skip string) string {
	var keep []string
	for _, t := range lv.Tags {
		if t != skip {
			keep = append(keep, t)
		}
	}
	return strings.Join(keep, ",")
}

// originsRestored waits, once the templates are gone, for every host's origin to be exactly as
// first seen: the agent made it read-only (and tagged it) for the first clone and must revert
// that, and only that.
func (s *soak) originsRestored(ctx context.Context, timeout time.Duration) []string {
	var bad []string
	for end := time.Now().Add(timeout); ; time.Sleep(time.Second) {
		bad = nil
		for _, h := range s.hosts {
			rep, err := h.sim.Storage.Report(ctx, "vg0")
			if err != nil {
				bad = append(bad, h.name+": "+err.Error())
				continue
			}
			before := s.origins[h.name]
			now, ok := rep.LV("debian12")
			if !ok {
				bad = append(bad, h.name+": origin gone")
			} else if now.Attr.String() != before.Attr.String() || strings.Join(now.Tags, ",") != strings.Join(before.Tags, ",") {
				bad = append(bad, fmt.Sprintf("%s: %s %v, first seen %s %v", h.name, now.Attr, now.Tags, before.Attr, before.Tags))
			}
		}
		if len(bad) == 0 || time.Now().After(end) {
			return bad
		}
	}
}

func (s *soak) deleteTemplates(ctx context.Context, timeout time.Duration) []string {
	for _, name := range templates {
		_ = k8s.Delete(ctx, &vmv1alpha1.VMTemplate{ObjectMeta: metav1.ObjectMeta{Name: name}})
	}
	var left []string
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(time.Second) {
		left = nil
		for _, name := range templates {
			tpl := &vmv1alpha1.VMTemplate{}
			if err := k8s.Get(ctx, types.NamespacedName{Name: name}, tpl); !apierrors.IsNotFound(err) {
				left = append(left, fmt.Sprintf("%s finalizers %v", name, tpl.Finalizers))
			}
		}
		if len(left) == 0 {
			return nil
		}
	}
	return left
}

// stopAll kills every process and removes what the run left in the API server.
func (s *soak) stopAll() {
	var wg sync.WaitGroup
	for _, h := range s.hosts {
		wg.Add(1)
		go func() { defer wg.Done(); h.killAgent() }()
	}
	wg.Wait()
	s.ctl.kill()
	ctx := context.Background()
	// Whatever a failed run left: release finalizers so the namespace can go.
	var list vmv1alpha1.VMCloneList
	if k8s.List(ctx, &list, client.InNamespace(ns)) == nil {
		for _, c := range list.Items {
			patch := client.MergeFrom(c.DeepCopy())
			c.Finalizers = nil
			_ = k8s.Patch(ctx, &c, patch)
			_ = k8s.Delete(ctx, &c)
		}
	}
	for _, name := range templates {
		tpl := &vmv1alpha1.VMTemplate{}
		if k8s.Get(ctx, types.NamespacedName{Name: name}, tpl) == nil {
			patch := client.MergeFrom(tpl.DeepCopy())
			tpl.Finalizers = nil
			_ = k8s.Patch(ctx, tpl, patch)
			_ = k8s.Delete(ctx, tpl)
		}
	}
	_ = k8s.Delete(ctx, &vmv1alpha1.VMClonePool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: poolName}})
	for _, h := range s.hosts {
		_ = h.sim.XL(ctx, "sim-init") // every simulated domain gone
	}
}
