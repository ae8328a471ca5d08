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
)

func init() {
	metrics.Registry.MustRegister(schedulingSeconds, readySeconds)
}
