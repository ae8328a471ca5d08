package main

// The limit: the host operations that change a host, run directly against simulated hosts with
// no API server, controller or agent — what a shell script looping over the 2008 recipe would
// do. Per host the clones go one after another (sequential) or P at a time (P = the agent's
// MaxConcurrent, the apples-to-apples limit for an agent that prepares P clones at once); hosts
// run in parallel.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/guest/scrub"
	"github.com/xenclone/xenclone/hostagent/lvm"
	"github.com/xenclone/xenclone/hostagent/sim"
	"github.com/xenclone/xenclone/hostagent/xen"
)

const (
	templateFile = "config/samples/vm_v1alpha1_vmtemplate.yaml"
	templateLV   = "debian12-template"
	benchNS      = "bench"
)

func loadTemplate() (*vmv1alpha1.VMTemplate, error) {
	f, err := os.Open(templateFile)
	if err != nil {
		return nil, fmt.Errorf("open the sample template (run from the repository root): %w", err)
	}
	defer f.Close()
	t := &vmv1alpha1.VMTemplate{}
	if err := utilyaml.NewYAMLOrJSONDecoder(f, 4096).Decode(t); err != nil {
		return nil, fmt.Errorf("decode %s: %w", templateFile, err)
	}
	return t, nil
}

// Baseline is the limit, at two per-host parallelisms.
type Baseline struct {
	Sequential LimitRun `json:"sequential"`
	Parallel   LimitRun `json:"parallel"`
	// OpsPerClone is the operation list each clone went through.
	OpsPerClone []string `json:"opsPerClone"`
}

// LimitRun is one run of the limit.
type LimitRun struct {
	PerHost       int       `json:"perHostParallelism"`
	CreateSeconds float64   `json:"createWallSeconds"`
	DeleteSeconds float64   `json:"deleteWallSeconds"`
	CreateLatency Quantiles `json:"createLatency"`
	// PerCloneSeconds is the mean time one clone's operations took, queueing excluded.
	PerCloneSeconds float64 `json:"perCloneSeconds"`
}

func runBaseline(ctx context.Context, o Options, dir string) (*Baseline, error) {
	tpl, err := loadTemplate()
	if err != nil {
		return nil, err
	}
	b := &Baseline{OpsPerClone: []string{
		"lvchange -pr origin (once per host)", "lvcreate -s (+ its report)", "guest prepare (attach, scrub, detach)",
		"lvchange --addtag prepared", "build cloud-init seed", "render + write xl.cfg", "xl create",
	}}
	for _, p := range []int{1, o.AgentConc} {
		logf("limit: %d clones on %d hosts, %d at a time per host", o.Clones, o.Hosts, p)
		r, err := limitRun(ctx, o, tpl, filepath.Join(dir, fmt.Sprintf("p%d", p)), p)
		if err != nil {
			return b, err
		}
		if p == 1 {
			b.Sequential = r
		} else {
			b.Parallel = r
		}
	}
	return b, nil
}

func benchClone(i int) *vmv1alpha1.VMClone {
	return &vmv1alpha1.VMClone{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: fmt.Sprintf("vm-%05d", i),
			UID: types.UID(fmt.Sprintf("00000000-0000-4000-8000-%012d", i))},
		Spec: vmv1alpha1.VMCloneSpec{TemplateRef: vmv1alpha1.LocalObjectReference{Name: "debian12"}},
		Status: vmv1alpha1.VMCloneStatus{UUID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			Interfaces: []vmv1alpha1.InterfaceStatus{{MAC: fmt.Sprintf("00:16:3e:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff), Bridge: "xenbr0"}}},
	}
}

func limitRun(ctx context.Context, o Options, tpl *vmv1alpha1.VMTemplate, dir string, perHost int) (LimitRun, error) {
	r := LimitRun{PerHost: perHost}
	xl := []string{xlSimulator(o)}
	hosts := make([]*sim.Host, o.Hosts)
	for i := range hosts {
		h, err := simHost(ctx, hostName(i+1), filepath.Join(dir, hostName(i+1)), xl, o.Latency, o.GuestAgents)
		if err != nil {
			return r, err
		}
		hosts[i] = h
	}
	// Clones are dealt round-robin, as Spread placement does.
	work := make([][]*vmv1alpha1.VMClone, o.Hosts)
	for i := 0; i < o.Clones; i++ {
		work[i%o.Hosts] = append(work[i%o.Hosts], benchClone(i))
	}
	var mu sync.Mutex
	var lat, service []float64
	var firstErr error
	each := func(fn func(h *sim.Host, c *vmv1alpha1.VMClone, start time.Time) error) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		for hi, h := range hosts {
			jobs := make(chan *vmv1alpha1.VMClone)
			for w := 0; w < perHost; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for c := range jobs {
						if err := fn(h, c, start); err != nil {
							mu.Lock()
							if firstErr == nil {
								firstErr = err
							}
							mu.Unlock()
						}
					}
				}()
			}
			go func(cs []*vmv1alpha1.VMClone) {
				for _, c := range cs {
					jobs <- c
				}
				close(jobs)
			}(work[hi])
		}
		wg.Wait()
		return time.Since(start).Seconds()
	}
	// One read-only switch per host, as the agent's host reporter does before any clone.
	for _, h := range hosts {
		if err := h.Storage.SetOriginReadOnly(ctx, originRef(tpl)); err != nil {
			return r, err
		}
	}
	r.CreateSeconds = each(func(h *sim.Host, c *vmv1alpha1.VMClone, start time.Time) error {
		t0 := time.Now()
		err := createBare(ctx, h.AgentHost(), tpl, c)
		mu.Lock()
		lat = append(lat, time.Since(start).Seconds())
		service = append(service, time.Since(t0).Seconds())
		mu.Unlock()
		return err
	})
	if firstErr != nil {
		return r, firstErr
	}
	r.CreateLatency = quantiles(lat)
	r.PerCloneSeconds = mean(service)
	r.DeleteSeconds = each(func(h *sim.Host, c *vmv1alpha1.VMClone, _ time.Time) error {
		return deleteBare(ctx, h, tpl, c)
	})
	return r, firstErr
}

// createBare is one clone, the recipe's commands only: snapshot, prepare and mark it, seed,
// config, xl create. No reads of host state, no API server.
func createBare(ctx context.Context, h hostagent.Host, tpl *vmv1alpha1.VMTemplate, c *vmv1alpha1.VMClone) error {
	req := hostagent.SnapshotFor(tpl, c)
	lv, err := h.Storage.CreateSnapshot(ctx, req)
	if err != nil {
		return err
	}
	if _, err := h.Guest.Prepare(ctx, hostagent.VolumePath(lv), hostagent.PrepareRequest{
		Owner: hostagent.OwnerOf(c), Hostname: hostagent.Hostname(c), Operations: scrub.Resolve(tpl.Spec.Scrub),
		RootPartition: int(tpl.Spec.Guest.RootPartition), RootFilesystem: tpl.Spec.Guest.RootFilesystem,
	}); err != nil {
		return err
	}
	if err := h.Storage.AddTag(ctx, lv.Ref(), hostagent.OwnerOf(c), hostagent.PreparedTag); err != nil {
		return err
	}
	seed, err := h.Guest.BuildSeed(ctx, hostagent.SeedRequest{UID: string(c.UID), Hostname: hostagent.Hostname(c),
		MACs: []string{c.Status.Interfaces[0].MAC}})
	if err != nil {
		return err
	}
	cfg, err := hostagent.DomainConfigFor(tpl, c, hostagent.VolumePath(lv), seed)
	if err != nil {
		return err
	}
	path, err := xen.WriteConfigFile(h.ConfigDir, cfg)
	if err != nil {
		return err
	}
	return h.Hypervisor.Create(ctx, cfg.Name, path, xen.CreateOptions{})
}

// deleteBare stops the domain gracefully (xl shutdown, wait, destroy) and removes the config,
// the seed and the snapshot.
func deleteBare(ctx context.Context, h *sim.Host, tpl *vmv1alpha1.VMTemplate, c *vmv1alpha1.VMClone) error {
	name := vmv1alpha1.DomainNameOf(c)
	if _, err := h.Xen.Stop(ctx, name, 20*time.Second, 100*time.Millisecond); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	host := h.AgentHost()
	if err := xen.RemoveConfigFile(host.ConfigDir, name); err != nil {
		return err
	}
	if err := host.Guest.RemoveSeed(ctx, string(c.UID)); err != nil {
		return err
	}
	req := hostagent.SnapshotFor(tpl, c)
	return host.Storage.Remove(ctx, lvm.Ref{VG: req.VG, Name: req.Name}, hostagent.OwnerOf(c))
}

func originRef(tpl *vmv1alpha1.VMTemplate) lvm.Ref {
	return lvm.Ref{VG: string(tpl.Spec.Origin.VolumeGroup), Name: string(tpl.Spec.Origin.LogicalVolume)}
}

// Quantiles of a latency distribution, in seconds.
type Quantiles struct {
	N    int     `json:"n"`
	Min  float64 `json:"min"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func quantiles(xs []float64) Quantiles {
	if len(xs) == 0 {
		return Quantiles{}
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	at := func(q float64) float64 {
		i := int(q*float64(len(s))+0.5) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(s) {
			i = len(s) - 1
		}
		return s[i]
	}
	return Quantiles{N: len(s), Min: s[0], P50: at(0.5), P90: at(0.9), P95: at(0.95), P99: at(0.99), Max: s[len(s)-1], Mean: mean(s)}
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	t := 0.0
	for _, x := range xs {
		t += x
	}
	return t / float64(len(xs))
}
