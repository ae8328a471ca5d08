package hostagent

// Rebound copies. A host that comes back after its clones were moved elsewhere (the controller
// rebinds a clone with onNodeLost: Reschedule to another host, with the same identity) may still
// run the old copy: fenced late, or not at all (an agent that was itself down). That copy is
// destroyed at once, not after the orphan grace period, and the clone gets a Warning event
// naming both hosts. Its disk stays for the orphan collector: only the running domain is a
// danger (two guests with one identity on the network, or writing to shared storage).
//
// Like KubeVirt's virt-handler, the agent reconciles against the host's real state when it
// starts: the sweep runs before the clone reconciler may start any domain (Fencer.mayStart).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// StopReboundCopies destroys every domain on this host whose xl.cfg the agent wrote for a clone
// that still exists but is now bound to another host (or to none, while it is placed again).
// The cluster's clones are listed live only when some running domain of ours belongs to no
// clone the cache shows here, which is rare.
func (f *Fencer) StopReboundCopies(ctx context.Context) error {
	entries, err := os.ReadDir(f.ConfigDir)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read %s: %w", f.ConfigDir, err)
	}
	configured := map[string]string{} // domain name -> uuid, from the configs we wrote
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".cfg")
		if !ok || e.IsDir() {
			continue
		}
		if uuid, err := configUUID(filepath.Join(f.ConfigDir, e.Name())); err == nil && uuid != "" {
			configured[name] = uuid
		}
	}
	if len(configured) == 0 {
		return nil
	}
	lctx, cancel := context.WithTimeout(ctx, fenceDestroyTimeout)
	doms, err := f.Hypervisor.List(lctx)
	cancel()
	if err != nil {
		return fmt.Errorf("list domains: %w", err)
	}
	bound, err := boundClones(ctx, f.Client, f.NodeName)
	if err != nil {
		return err
	}
	here := map[string]bool{}
	for _, c := range bound {
		here[c.Status.UUID] = true
	}
	unknown := map[string]string{} // uuid -> domain name
	for _, d := range doms {
		if uuid, ok := configured[d.Name]; ok && !here[uuid] && !d.State.Dying {
			unknown[uuid] = d.Name
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	var all vmv1alpha1.VMCloneList
	rctx, cancel := context.WithTimeout(ctx, apiTimeout)
	err = f.Reader.List(rctx, &all)
	cancel()
	if err != nil {
		return fmt.Errorf("list VMClones: %w", err)
	}
	var errs []error
	for i := range all.Items {
		c := &all.Items[i]
		name, ok := unknown[c.Status.UUID]
		if !ok || c.Status.UUID == "" || c.Status.NodeName == f.NodeName {
			// Bound here after all (the cache lags), or not ours to judge: a domain whose
			// clone is gone is an orphan, removed after the grace period.
			continue
		}
		if err := f.stopCopy(ctx, c, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// StopReboundCopy destroys the domain of the clone key if it runs here although the API server
// says the clone is bound to another host: the clone reconciler calls it for a clone its cache
// no longer shows here.
func (f *Fencer) StopReboundCopy(ctx context.Context, key types.NamespacedName) error {
	live := &vmv1alpha1.VMClone{}
	rctx, cancel := context.WithTimeout(ctx, apiTimeout)
	err := f.Reader.Get(rctx, key, live)
	cancel()
	if apierrors.IsNotFound(err) {
		return nil // deleted: its leftovers are orphans
	}
	if err != nil {
		return fmt.Errorf("read clone %s: %w", key, err)
	}
	if live.Status.NodeName == f.NodeName || live.Status.UUID == "" {
		return nil
	}
	var errs []error
	for _, name := range hostDomainNames(live) {
		errs = append(errs, f.stopCopy(ctx, live, name))
	}
	return errors.Join(errs...)
}

// stopCopy destroys the local domain name of clone c, bound elsewhere, and says so.
func (f *Fencer) stopCopy(ctx context.Context, c *vmv1alpha1.VMClone, name string) error {
	destroyed, err := f.destroy(ctx, name, c.Status.UUID)
	if err != nil {
		return fmt.Errorf("stop copy of %s/%s rebound to %s: %w", c.Namespace, c.Name, boundTo(c), err)
	}
	if !destroyed {
		return nil
	}
	duplicatesStopped.WithLabelValues(f.NodeName).Inc()
	log.FromContext(ctx).Info("destroyed the copy of a clone bound to another host", "vmclone", client.ObjectKeyFromObject(c).String(),
		"domain", name, "boundTo", c.Status.NodeName, "bindingGeneration", c.Status.BindingGeneration)
	f.event(c, corev1.EventTypeWarning, vmv1alpha1.ReasonDuplicateStopped, "StopDuplicate",
		"domain %s was running on %s although the clone is bound to %s (binding generation %d): destroyed it at once, so the clone runs once. Its old disk on %s is removed by orphan collection",
		name, f.NodeName, boundTo(c), c.Status.BindingGeneration, f.NodeName)
	return nil
}
