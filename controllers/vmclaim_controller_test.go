package controllers

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func newPool(t *testing.T, ns, name, tmpl string, replicas int32, mods ...func(*vmv1alpha1.VMClonePool)) *vmv1alpha1.VMClonePool {
	t.Helper()
	pool := &vmv1alpha1.VMClonePool{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: vmv1alpha1.VMClonePoolSpec{
			Replicas: ptrTo(replicas),
			Template: vmv1alpha1.VMCloneTemplateSpec{Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tmpl}}},
		},
	}
	for _, m := range mods {
		m(pool)
	}
	if err := k8sClient.Create(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), pool) })
	return pool
}

func newClaim(t *testing.T, ns, name string, mods ...func(*vmv1alpha1.VMClaim)) *vmv1alpha1.VMClaim {
	t.Helper()
	c := &vmv1alpha1.VMClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, m := range mods {
		m(c)
	}
	if err := k8sClient.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), c) })
	return c
}

func ofPool(p string) func(*vmv1alpha1.VMClaim) {
	return func(c *vmv1alpha1.VMClaim) { c.Spec.PoolRef = &vmv1alpha1.LocalObjectReference{Name: p} }
}

// warmUp waits for n unclaimed members of the pool to be bound and plays their agents
// reporting them running, so they turn Ready (warm).
func warmUp(t *testing.T, g Gomega, pool *vmv1alpha1.VMClonePool, n int) {
	t.Helper()
	done := map[string]bool{}
	g.Eventually(func(g Gomega) {
		for name, c := range poolMembers(g, pool) {
			if done[name] || c.Labels[vmv1alpha1.ClaimLabel] != "" {
				continue
			}
			g.Expect(c.Status.NodeName).NotTo(BeEmpty(), "member %s not bound yet: %+v", name, meta.FindStatusCondition(c.Status.Conditions, vmv1alpha1.ConditionScheduled))
			markRunning(g, &c)
			done[name] = true
		}
		g.Expect(len(done)).To(BeNumerically(">=", n))
		get(g, pool)
		g.Expect(pool.Status.ReadyReplicas).To(BeNumerically(">=", n))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

func condOf(conds []metav1.Condition, t string) metav1.Condition {
	if c := meta.FindStatusCondition(conds, t); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// TestClaimTakesWarmMember: a claim gets a Ready member at once, the member leaves the pool
// (claim label, the claim its controller, no pause, the claim's data), the pool refills and
// counts the hit; the claim is Ready once the agent delivered its data; deleting the claim
// deletes the VM.
func TestClaimTakesWarmMember(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "256Mi")
	newHost(t, 16384, []string{tmpl.Name})
	pool := newPool(t, ns, "ci", tmpl.Name, 2, func(p *vmv1alpha1.VMClonePool) {
		p.Spec.WarmState = vmv1alpha1.WarmPaused
		p.Spec.Pause = &vmv1alpha1.PauseSpec{Memory: ptrTo(resource.MustParse("128Mi"))}
		// Long: earlier tests move the controller's fake clock by hours, and an expired member
		// would be deleted as soon as it is made.
		p.Spec.Template.Spec.Lifetime = &vmv1alpha1.Lifetime{ExpireAfter: metav1.Duration{Duration: 365 * 24 * time.Hour}}
	})
	warmUp(t, g, pool, 2)
	for _, m := range poolMembers(g, pool) {
		g.Expect(m.Spec.Pause).NotTo(BeNil(), "a Paused pool's member waits paused")
		g.Expect(m.Annotations).To(HaveKeyWithValue(vmv1alpha1.PoolTemplateHashAnnotation, PoolTemplateHash(pool)))
	}

	claim := newClaim(t, ns, "job-1", ofPool("ci"), func(c *vmv1alpha1.VMClaim) {
		c.Spec.Data = &vmv1alpha1.GuestDataSpec{SecretRef: vmv1alpha1.LocalObjectReference{Name: "runner-token"}}
	})
	var member vmv1alpha1.VMClone
	g.Eventually(func(g Gomega) {
		get(g, claim)
		g.Expect(claim.Status.CloneName).NotTo(BeEmpty())
		g.Expect(claim.Status.Source).To(Equal(vmv1alpha1.SourceWarm))
		g.Expect(claim.Status.BoundTime).NotTo(BeNil())
		g.Expect(claim.Status.BindMilliseconds).NotTo(BeNil())
		g.Expect(condOf(claim.Status.Conditions, vmv1alpha1.ConditionBound).Reason).To(Equal(vmv1alpha1.ReasonClaimedWarm))
		g.Expect(claim.Finalizers).To(ContainElement(vmv1alpha1.ClaimFinalizer))
		member = vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: claim.Status.CloneName}}
		get(g, &member)
		g.Expect(member.Labels).To(HaveKeyWithValue(vmv1alpha1.PoolLabel, "ci"))
		g.Expect(member.Labels).To(HaveKeyWithValue(vmv1alpha1.ClaimLabel, "job-1"))
		g.Expect(metav1.IsControlledBy(&member, claim)).To(BeTrue())
		g.Expect(metav1.IsControlledBy(&member, pool)).To(BeFalse())
		g.Expect(member.Spec.Pause).To(BeNil(), "a claim resumes a paused member")
		g.Expect(member.Spec.GuestData).To(Equal(claim.Spec.Data))
		g.Expect(member.Spec.Lifetime).To(BeNil(), "the claim's lifetime replaces the member's")
		g.Expect(claim.Status.NodeName).To(Equal(member.Status.NodeName))
		g.Expect(claim.Status.Interfaces).To(Equal(member.Status.Interfaces))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// The member left the pool: the pool makes a new one and counts the hit.
	g.Eventually(func(g Gomega) {
		unclaimed := 0
		for _, c := range poolMembers(g, pool) {
			if c.Labels[vmv1alpha1.ClaimLabel] == "" {
				unclaimed++
				g.Expect(c.Name).NotTo(Equal(member.Name))
			}
		}
		g.Expect(unclaimed).To(Equal(2))
		get(g, pool)
		g.Expect(pool.Status.Replicas).To(BeEquivalentTo(2))
		g.Expect(pool.Status.ClaimedReplicas).To(BeEquivalentTo(1))
		g.Expect(pool.Status.WarmHits).To(BeEquivalentTo(1))
		g.Expect(pool.Status.WarmHitPercent).To(Equal(ptrTo(int32(100))))
		g.Expect(pool.Status.Selector).To(Equal(vmv1alpha1.PoolLabel + "=ci,!" + vmv1alpha1.ClaimLabel))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Ready only once the clone runs unpaused with the data delivered.
	g.Eventually(func(g Gomega) {
		get(g, claim)
		g.Expect(condOf(claim.Status.Conditions, vmv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	now := metav1.Now().UTC().Format(time.RFC3339)
	delivered := func(st string, reason string) []any {
		c := func(typ, st, reason string) map[string]any {
			return map[string]any{"type": typ, "status": st, "reason": reason, "message": "ok", "lastTransitionTime": now, "observedGeneration": member.Generation}
		}
		return []any{c(vmv1alpha1.ConditionVolumeReady, "True", "Done"), c(vmv1alpha1.ConditionGuestPrepared, "True", "Done"),
			c(vmv1alpha1.ConditionDomainRunning, "True", "Started"), c(vmv1alpha1.ConditionGuestDataDelivered, st, reason)}
	}
	get(g, &member)
	agentReport(g, &member, map[string]any{"phase": "Running", "observedGeneration": member.Generation, "conditions": delivered("False", vmv1alpha1.ReasonGuestDataSecretMissing)})
	g.Eventually(func(g Gomega) {
		get(g, claim)
		g.Expect(condOf(claim.Status.Conditions, vmv1alpha1.ConditionReady).Reason).To(Equal(vmv1alpha1.ReasonClaimDataMissing))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	agentReport(g, &member, map[string]any{"phase": "Running", "observedGeneration": member.Generation, "conditions": delivered("True", vmv1alpha1.ReasonGuestDataDelivered)})
	g.Eventually(func(g Gomega) {
		get(g, claim)
		r := condOf(claim.Status.Conditions, vmv1alpha1.ConditionReady)
		g.Expect(r.Status).To(Equal(metav1.ConditionTrue), "%s: %s", r.Reason, r.Message)
		g.Expect(r.Reason).To(Equal(vmv1alpha1.ReasonRunning))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// Deleting the claim deletes its VM (no garbage collector runs here: the finalizer does).
	g.Expect(k8sClient.Delete(ctx, claim)).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(&member), &vmv1alpha1.VMClone{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "clone %s still there: %v", member.Name, err)
		err = k8sClient.Get(ctx, client.ObjectKeyFromObject(claim), &vmv1alpha1.VMClaim{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		get(g, pool)
		g.Expect(pool.Status.ClaimedReplicas).To(BeZero())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestClaimFallback: with no warm member, fallback Cold makes a new clone of the pool's
// template at once; fallback Wait waits and takes the next member to turn warm; a claim of a
// missing pool says so.
func TestClaimFallback(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ns := newNamespace(t)
	tmpl := newTemplate(t, "256Mi")
	pool := newPool(t, ns, "cold", tmpl.Name, 1, func(p *vmv1alpha1.VMClonePool) {
		p.Spec.Template.Metadata.Labels = map[string]string{"team": "qa"}
	})

	cold := newClaim(t, ns, "now", ofPool("cold"))
	wait := newClaim(t, ns, "later", ofPool("cold"), func(c *vmv1alpha1.VMClaim) { c.Spec.Fallback = vmv1alpha1.FallbackWait })
	lost := newClaim(t, ns, "lost", ofPool("nope"))
	g.Eventually(func(g Gomega) {
		get(g, cold)
		g.Expect(cold.Status.Source).To(Equal(vmv1alpha1.SourceCold))
		g.Expect(cold.Status.CloneName).To(Equal(ColdCloneName(cold)))
		g.Expect(condOf(cold.Status.Conditions, vmv1alpha1.ConditionBound).Reason).To(Equal(vmv1alpha1.ReasonCreatedCold))
		c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: cold.Status.CloneName}}
		get(g, c)
		g.Expect(c.Spec.TemplateRef.Name).To(Equal(tmpl.Name))
		g.Expect(c.Labels).To(HaveKeyWithValue("team", "qa"))
		g.Expect(c.Labels).NotTo(HaveKey(vmv1alpha1.PoolLabel), "a cold clone is no pool member")
		g.Expect(metav1.IsControlledBy(c, cold)).To(BeTrue())

		get(g, wait)
		g.Expect(wait.Status.CloneName).To(BeEmpty())
		g.Expect(condOf(wait.Status.Conditions, vmv1alpha1.ConditionBound).Reason).To(Equal(vmv1alpha1.ReasonWaitingForWarmMember))
		g.Expect(condOf(wait.Status.Conditions, vmv1alpha1.ConditionReady).Reason).To(Equal(vmv1alpha1.ReasonWaitingForWarmMember))

		get(g, lost)
		g.Expect(condOf(lost.Status.Conditions, vmv1alpha1.ConditionBound).Reason).To(Equal(vmv1alpha1.ReasonPoolNotFound))
		get(g, pool)
		g.Expect(pool.Status.ColdClaims).To(BeEquivalentTo(1))
		g.Expect(pool.Status.WarmHitPercent).To(Equal(ptrTo(int32(0))))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())

	// A host appears, the member is placed and turns warm: the waiting claim takes it.
	newHost(t, 16384, []string{tmpl.Name})
	warmUp(t, g, pool, 1)
	g.Eventually(func(g Gomega) {
		get(g, wait)
		g.Expect(wait.Status.Source).To(Equal(vmv1alpha1.SourceWarm))
		g.Expect(wait.Status.CloneName).To(HavePrefix("cold-"))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// TestClaimsNeverShareAMember: 200 claims at once against 50 warm members. Every claim gets
// exactly one clone, no clone is any two claims', exactly 50 are warm (each member handed to
// the claim its label names), the other 150 cold.
func TestClaimsNeverShareAMember(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "64Mi")
	newHost(t, 1<<20, []string{tmpl.Name})
	pool := newPool(t, ns, "race", tmpl.Name, 50, func(p *vmv1alpha1.VMClonePool) {
		p.Spec.MaxMaking = ptrTo(int32(50))
	})
	warmUp(t, g, pool, 50)
	// Refills from here on stay cold (not Ready): exactly 50 warm members exist.
	const claims = 200
	var wg sync.WaitGroup
	errs := make(chan error, claims)
	sem := make(chan struct{}, 16)
	for i := range claims {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			c := &vmv1alpha1.VMClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("c-%03d", i)},
				Spec: vmv1alpha1.VMClaimSpec{PoolRef: &vmv1alpha1.LocalObjectReference{Name: "race"}}}
			errs <- k8sClient.Create(ctx, c)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		g.Expect(err).NotTo(HaveOccurred())
	}
	t.Cleanup(func() { _ = k8sClient.DeleteAllOf(ctx, &vmv1alpha1.VMClaim{}, client.InNamespace(ns)) })

	g.Eventually(func(g Gomega) {
		var list vmv1alpha1.VMClaimList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		g.Expect(list.Items).To(HaveLen(claims))
		owner := map[string]string{}
		warm := 0
		for _, c := range list.Items {
			g.Expect(c.Status.CloneName).NotTo(BeEmpty(), "claim %s unbound", c.Name)
			g.Expect(owner).NotTo(HaveKey(c.Status.CloneName), "clone %s bound to %s and %s", c.Status.CloneName, owner[c.Status.CloneName], c.Name)
			owner[c.Status.CloneName] = c.Name
			if c.Status.Source == vmv1alpha1.SourceWarm {
				warm++
			}
		}
		g.Expect(warm).To(Equal(50))
		var clones vmv1alpha1.VMCloneList
		g.Expect(k8sClient.List(ctx, &clones, client.InNamespace(ns), client.HasLabels{vmv1alpha1.ClaimLabel})).To(Succeed())
		g.Expect(clones.Items).To(HaveLen(claims), "one clone per claim, none extra")
		for _, c := range clones.Items {
			g.Expect(owner[c.Name]).To(Equal(c.Labels[vmv1alpha1.ClaimLabel]), "clone %s: label and claim status disagree", c.Name)
			refs := 0
			for _, r := range c.OwnerReferences {
				if r.Controller != nil && *r.Controller {
					refs++
					g.Expect(r.Name).To(Equal(owner[c.Name]))
				}
			}
			g.Expect(refs).To(Equal(1))
		}
	}).WithTimeout(2 * eventually).WithPolling(poll).Should(Succeed())
}

// TestHandoverIsSafeWithoutTheCache: two claim reconcilers with their own memories, reading
// straight from the API server, race for the same 10 members with 40 claims: the API server's
// resourceVersion precondition alone keeps any member from going to two claims.
func TestHandoverIsSafeWithoutTheCache(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "64Mi")
	newHost(t, 1<<20, []string{tmpl.Name})
	pool := newPool(t, ns, "direct", tmpl.Name, 10, func(p *vmv1alpha1.VMClonePool) { p.Spec.MaxMaking = ptrTo(int32(10)) })
	warmUp(t, g, pool, 10)
	// Hand the members over with two private reconcilers, each claim tried by both. The
	// claims exist (a clone's owner that does not is an orphan, and deleted), but name a pool
	// that does not, so the live controller does not compete for members.
	var members vmv1alpha1.VMCloneList
	g.Expect(k8sClient.List(ctx, &members, client.InNamespace(ns), client.MatchingLabels{vmv1alpha1.PoolLabel: "direct"})).To(Succeed())
	var claims []*vmv1alpha1.VMClaim
	for i := range 40 {
		c := newClaim(t, ns, fmt.Sprintf("d-%02d", i), ofPool("not-this-pool"))
		c.Spec.PoolRef.Name = "direct"
		claims = append(claims, c)
	}
	won := make(chan [2]string, 80)
	var wg sync.WaitGroup
	for w := range 2 {
		r := newClaimReconciler(k8sClient, k8sClient, k8sClient.Scheme(), nil, Options{}.withDefaults())
		for _, c := range claims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m, err := r.takeWarm(ctx, c, pool)
				if err != nil && err != errRetryHandover {
					t.Errorf("reconciler %d, claim %s: %v", w, c.Name, err)
				}
				if m != nil {
					won <- [2]string{m.Name, c.Name}
				}
			}()
		}
	}
	wg.Wait()
	close(won)
	got := map[string]string{}
	for w := range won {
		g.Expect(got).NotTo(HaveKey(w[0]), "member %s handed to %s and %s", w[0], got[w[0]], w[1])
		got[w[0]] = w[1]
	}
	g.Expect(got).NotTo(BeEmpty())
	g.Expect(len(got)).To(BeNumerically("<=", len(members.Items)))
	// What the API server holds agrees with who won.
	for name, claim := range got {
		c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		get(g, c)
		g.Expect(c.Labels[vmv1alpha1.ClaimLabel]).To(Equal(claim))
	}
}

// TestPoolRollout: a changed spec.template replaces unclaimed members (Recreate, the
// default), never a claimed one; with OnReplenish old members stay.
func TestPoolRollout(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "64Mi")
	newHost(t, 1<<20, []string{tmpl.Name})
	pool := newPool(t, ns, "roll", tmpl.Name, 3, func(p *vmv1alpha1.VMClonePool) { p.Spec.MaxMaking = ptrTo(int32(2)) })
	warmUp(t, g, pool, 3)
	claim := newClaim(t, ns, "keep", ofPool("roll"))
	g.Eventually(func(g Gomega) {
		get(g, claim)
		g.Expect(claim.Status.Source).To(Equal(vmv1alpha1.SourceWarm))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	claimed := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: claim.Status.CloneName}}
	get(g, claimed)
	warmUp(t, g, pool, 3)
	old := map[types.UID]bool{}
	for _, m := range poolMembers(g, pool) {
		if m.Labels[vmv1alpha1.ClaimLabel] == "" {
			old[m.UID] = true
		}
	}

	// OnReplenish: a new template version makes new members only.
	get(g, pool)
	patch := client.MergeFrom(pool.DeepCopy())
	pool.Spec.UpdateStrategy.Type = vmv1alpha1.PoolUpdateOnReplenish
	pool.Spec.Template.Spec.Resources = &vmv1alpha1.CloneResources{VCPUs: ptrTo(int32(2))}
	g.Expect(k8sClient.Patch(ctx, pool, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		get(g, pool)
		g.Expect(pool.Status.ObservedGeneration).To(Equal(pool.Generation))
		g.Expect(pool.Status.UpdatedReplicas).To(BeZero())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Consistently(func(g Gomega) {
		for _, m := range poolMembers(g, pool) {
			if m.Labels[vmv1alpha1.ClaimLabel] == "" {
				g.Expect(old).To(HaveKey(m.UID), "OnReplenish replaced %s", m.Name)
			}
		}
	}).WithTimeout(2 * time.Second).WithPolling(poll).Should(Succeed())

	// Recreate: they are replaced, at most maxMaking at a time; the claimed one stays.
	get(g, pool)
	patch = client.MergeFrom(pool.DeepCopy())
	pool.Spec.UpdateStrategy.Type = vmv1alpha1.PoolUpdateRecreate
	g.Expect(k8sClient.Patch(ctx, pool, patch)).To(Succeed())
	g.Eventually(func(g Gomega) {
		get(g, pool)
		g.Expect(condOf(pool.Status.Conditions, vmv1alpha1.ConditionReady).Reason).To(Equal(vmv1alpha1.ReasonRollingOut))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	g.Eventually(func(g Gomega) {
		making := 0
		for name, m := range poolMembers(g, pool) {
			if m.Labels[vmv1alpha1.ClaimLabel] != "" {
				continue
			}
			if !old[m.UID] && m.Status.NodeName != "" && !meta.IsStatusConditionTrue(m.Status.Conditions, vmv1alpha1.ConditionReady) {
				markRunning(g, &m)
			}
			if !meta.IsStatusConditionTrue(m.Status.Conditions, vmv1alpha1.ConditionReady) {
				making++
			}
			g.Expect(m.Spec.Resources).NotTo(BeNil(), "member %s not rolled out yet", name)
		}
		g.Expect(making).To(BeNumerically("<=", 2), "more than maxMaking members made at once")
		get(g, pool)
		g.Expect(pool.Status.UpdatedReplicas).To(BeEquivalentTo(3))
		g.Expect(pool.Status.ReadyReplicas).To(BeEquivalentTo(3))
	}).WithTimeout(2 * eventually).WithPolling(poll).Should(Succeed())
	c := claimed.DeepCopy()
	get(g, c)
	g.Expect(c.UID).To(Equal(claimed.UID), "the claimed member was touched")
	g.Expect(c.Spec.Resources).To(BeNil())
}

// TestClaimLifetime: the lifetime counts from binding; onExpiry Delete deletes the claim and
// its VM.
func TestClaimLifetime(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "64Mi")
	claim := newClaim(t, ns, "brief", func(c *vmv1alpha1.VMClaim) {
		c.Spec.TemplateRef = &vmv1alpha1.LocalObjectReference{Name: tmpl.Name}
		c.Spec.Lifetime = &vmv1alpha1.Lifetime{ExpireAfter: metav1.Duration{Duration: 10 * time.Minute}}
	})
	g.Eventually(func(g Gomega) {
		get(g, claim)
		g.Expect(claim.Status.CloneName).NotTo(BeEmpty())
		g.Expect(claim.Status.ExpiresAt).NotTo(BeNil())
		g.Expect(claim.Status.ExpiresAt.Sub(claim.Status.BoundTime.Time)).To(BeNumerically("~", 10*time.Minute, time.Second))
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	clone := claim.Status.CloneName
	fakeClock.Step(11 * time.Minute)
	// Wake the claim (the fake clock does not drive the workqueue's timers).
	g.Expect(k8sClient.Patch(ctx, claim, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"wake":"1"}}}`)))).To(Succeed())
	g.Eventually(func(g Gomega) {
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(claim), &vmv1alpha1.VMClaim{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
		err = k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: clone}, &vmv1alpha1.VMClone{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
	}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
}

// staleClaims serves one frozen copy of a claim (finalizer set, status empty: what the cache
// holds right after the claim's finalizer write), a pool only this test knows of, and the
// clones as they were before any handover; gets of clones go to the API server.
type staleClaims struct {
	client.Client
	claim  *vmv1alpha1.VMClaim
	pool   *vmv1alpha1.VMClonePool
	clones *vmv1alpha1.VMCloneList // as they were before the first handover
}

func (s staleClaims) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if l, ok := list.(*vmv1alpha1.VMCloneList); ok {
		lo := (&client.ListOptions{}).ApplyOptions(opts)
		l.Items = nil
		for _, c := range s.clones.Items {
			if lo.LabelSelector == nil || lo.LabelSelector.Matches(labels.Set(c.Labels)) {
				l.Items = append(l.Items, *c.DeepCopy())
			}
		}
		return nil
	}
	return s.Client.List(ctx, list, opts...)
}

func (s staleClaims) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	switch o := obj.(type) {
	case *vmv1alpha1.VMClaim:
		s.claim.DeepCopyInto(o)
		return nil
	case *vmv1alpha1.VMClonePool:
		s.pool.DeepCopyInto(o)
		return nil
	}
	return s.Client.Get(ctx, key, obj, opts...)
}

// TestClaimBindsOnceWhileTheCacheLags: a reconcile that runs before the cache shows the
// claim's binding (its finalizer write's event comes first) must not bind it a second time.
func TestClaimBindsOnceWhileTheCacheLags(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "64Mi")
	newHost(t, 1<<20, []string{tmpl.Name})
	// A pool the live controller does not know (it is not in the API server), with two warm
	// members: only this test's reconciler hands them out.
	pool := &vmv1alpha1.VMClonePool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost", UID: "ghost-pool-uid"},
		Spec: vmv1alpha1.VMClonePoolSpec{Template: vmv1alpha1.VMCloneTemplateSpec{Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tmpl.Name}}}}}
	pool.APIVersion, pool.Kind = vmv1alpha1.GroupVersion.String(), "VMClonePool"
	for i := range 2 {
		newClone(t, ns, tmpl.Name, func(c *vmv1alpha1.VMClone) {
			c.Name = fmt.Sprintf("ghost-%d", i)
			c.Labels = map[string]string{vmv1alpha1.PoolLabel: "ghost", vmv1alpha1.PoolIndexLabel: fmt.Sprint(i)}
			c.Annotations = map[string]string{vmv1alpha1.PoolTemplateHashAnnotation: PoolTemplateHash(pool)}
			c.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(pool, vmv1alpha1.GroupVersion.WithKind("VMClonePool"))}
		})
	}
	for i := range 2 {
		c := &vmv1alpha1.VMClone{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("ghost-%d", i)}}
		g.Eventually(func(g Gomega) {
			get(g, c)
			g.Expect(c.Status.NodeName).NotTo(BeEmpty())
			markRunning(g, c)
			get(g, c)
			g.Expect(meta.IsStatusConditionTrue(c.Status.Conditions, vmv1alpha1.ConditionReady)).To(BeTrue())
		}).WithTimeout(eventually).WithPolling(poll).Should(Succeed())
	}
	claim := newClaim(t, ns, "once", ofPool("ghost"), func(c *vmv1alpha1.VMClaim) { c.Finalizers = []string{vmv1alpha1.ClaimFinalizer} })
	t.Cleanup(func() {
		_ = k8sClient.Patch(ctx, claim, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`)))
	})
	frozen := claim.DeepCopy()
	var before vmv1alpha1.VMCloneList
	g.Expect(k8sClient.List(ctx, &before, client.InNamespace(ns))).To(Succeed())
	stale := staleClaims{Client: k8sClient, claim: frozen, pool: pool, clones: &before}
	r := newClaimReconciler(stale, stale, k8sClient.Scheme(), events.NewFakeRecorder(100), Options{Clock: fakeClock}.withDefaults())
	req := ctrl.Request{NamespacedName: client.ObjectKeyFromObject(claim)}
	for range 3 {
		_, err := r.Reconcile(ctx, req)
		g.Expect(err).NotTo(HaveOccurred())
	}
	var clones vmv1alpha1.VMCloneList
	g.Expect(k8sClient.List(ctx, &clones, client.InNamespace(ns), client.MatchingLabels{vmv1alpha1.ClaimLabel: "once"})).To(Succeed())
	g.Expect(clones.Items).To(HaveLen(1), "the claim was bound more than once")
}

// A claim deleted before its finalizer was applied is gone at once; its clone must not stay
// behind where no garbage collector runs. A clone merely labelled with the name but controlled
// by something else stays.
func TestClaimDeletedBeforeItsFinalizerLeavesNoClone(t *testing.T) {
	needEnvtest(t)
	g := NewWithT(t)
	ctx := context.Background()
	ns := newNamespace(t)
	tmpl := newTemplate(t, "64Mi")
	mk := func(name, ownerKind string) *vmv1alpha1.VMClone {
		c := &vmv1alpha1.VMClone{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{vmv1alpha1.ClaimLabel: "gone"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: vmv1alpha1.GroupVersion.String(), Kind: ownerKind, Name: "gone",
					UID: types.UID("uid-of-a-deleted-" + ownerKind), Controller: ptrTo(true)}}},
			Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: tmpl.Name}},
		}
		g.Expect(k8sClient.Create(ctx, c)).To(Succeed())
		t.Cleanup(func() { _ = k8sClient.Delete(context.Background(), c) })
		return c
	}
	orphan, other := mk("orphan", "VMClaim"), mk("other", "VMClonePool")
	r := newClaimReconciler(k8sClient, k8sClient, k8sClient.Scheme(), nil, Options{}.withDefaults())
	_, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "gone"}})
	g.Expect(err).NotTo(HaveOccurred())
	for _, c := range []*vmv1alpha1.VMClone{orphan, other} {
		got := &vmv1alpha1.VMClone{}
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(c), got)
		deleted := apierrors.IsNotFound(err) || (err == nil && !got.DeletionTimestamp.IsZero())
		g.Expect(deleted).To(Equal(c == orphan), "clone %s: deleted %v (err %v)", c.Name, deleted, err)
	}
}
