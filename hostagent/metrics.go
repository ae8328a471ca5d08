package hostagent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// The agent's metrics, on the controller-runtime registry (served at --metrics-bind-address).
var (
	hostCommandSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "xenclone_host_command_duration_seconds",
		Help:    "Duration of host tool runs (lvm, xl, losetup, mount, …) by tool and result.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
	}, []string{"tool", "result"})
	stepSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "xenclone_hostagent_step_duration_seconds",
		Help:    "Duration of the agent's reconcile steps (reset, volume, storage, guest, domain) by result.",
		Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60},
	}, []string{"step", "result"})
	clonesByPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "xenclone_hostagent_clones",
		Help: "VMClones bound to this host, by phase.",
	}, []string{"node", "phase"})
	fencedDomains = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xenclone_hostagent_fenced_domains_total",
		Help: "Domains of onNodeLost: Reschedule clones the agent destroyed because it could not renew its heartbeat for --fence-after.",
	}, []string{"node"})
	duplicatesStopped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xenclone_hostagent_duplicates_stopped_total",
		Help: "Domains the agent destroyed at once because their clone is bound to another host (a rebound copy).",
	}, []string{"node"})
	renewFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "xenclone_hostagent_heartbeat_renew_failures_total",
		Help: "Heartbeat Lease renewals that failed or timed out; once none has succeeded for --fence-after, the agent fences.",
	}, []string{"node"})
)

func init() {
	metrics.Registry.MustRegister(hostCommandSeconds, stepSeconds, clonesByPhase, fencedDomains, duplicatesStopped, renewFailures)
}

// ObserveCommand feeds command.Runner.Observe: every host tool run is timed.
func ObserveCommand(tool string, took time.Duration, err error) {
	hostCommandSeconds.WithLabelValues(tool, result(err)).Observe(took.Seconds())
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}
