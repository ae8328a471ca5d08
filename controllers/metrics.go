package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	// schedulingSeconds is creation → binding; a growing tail means hosts are full or pending
	// clones wait for capacity.
	schedulingSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "xenclone_clone_scheduling_seconds",
		Help:    "Time from VMClone creation to its binding to a host.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	})
	// readySeconds is creation → first Ready (apply → running), the number users feel.
	readySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "xenclone_clone_ready_seconds",
		Help:    "Time from VMClone creation to its Ready condition first turning True.",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
	})
	// claimBindSeconds is a claim's first sight → bound, by source (Warm, Cold): the warm path
	// is what pools are for, so its tail is the number to watch.
	claimBindSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "xenclone_claim_bind_seconds",
		Help:    "Time from the controller's first sight of a VMClaim to its binding, by source (Warm: a pool member, Cold: a new clone).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"source"})
	// claimsBound counts warm hits and cold misses.
	claimsBound = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xenclone_claims_bound_total",
		Help: "VMClaims bound, by source (Warm: hit, Cold: miss).",
	}, []string{"source"})
	// poolMemberGauge is each pool's members by state (warm, making, claimed).
	poolMemberGauge = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "xenclone_pool_members",
		Help: "Members of each VMClonePool by state: warm (Ready, unclaimed), making (not Ready yet), claimed (handed to a claim, still existing).",
	}, []string{"namespace", "pool", "state"})
	// poolRefillSeconds is a member's creation → first Ready: how fast a pool refills.
	poolRefillSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "xenclone_pool_refill_seconds",
		Help:    "Time from a pool member's creation to its Ready condition turning True (warm).",
		Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
	})
)

func init() {
	metrics.Registry.MustRegister(schedulingSeconds, readySeconds, claimBindSeconds, claimsBound, poolMemberGauge, poolRefillSeconds)
}
