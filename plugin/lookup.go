package plugin

import (
	"context"
	"fmt"
	"net/netip"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// Where the agent pods are and what is in them, as config/default ships them.
const (
	// DefaultAgentNamespace is config/default's namespace (--agent-namespace changes it).
	DefaultAgentNamespace = "xenclone-system"
	// AgentContainer is the agent's container in its pod.
	AgentContainer = "hostagent"
	// AgentBinary is the xenclone binary in the image (Dockerfile).
	AgentBinary = "/usr/local/bin/xenclone"
	// ConsoleRole is config/rbac/console_role.yaml's Role after config/default's name prefix.
	ConsoleRole = "xenclone-console"
	// Guide is where the RBAC and the commands are documented.
	Guide = "docs/kubectl-plugin.md"
)

// agentPodLabels select the host agent's DaemonSet pods (config/hostagent/daemonset.yaml).
func agentPodLabels() client.MatchingLabels {
	return client.MatchingLabels{"app.kubernetes.io/name": "xenclone", "app.kubernetes.io/component": "hostagent"}
}

// Permission is one verb on a pod subresource in the agent namespace, and what the user
// cannot do without it.
type Permission struct {
	// Verb and Subresource of pods, e.g. create pods/exec; Doing is the verb's -ing form.
	Verb, Doing, Subresource string
	// Action completes "you may not …", e.g. "open consoles".
	Action string
}

var (
	// ExecPermission is what `console` needs: exec into the agent's container.
	ExecPermission = Permission{Verb: "create", Doing: "creating", Subresource: "exec", Action: "open consoles"}
	// PortForwardPermission is what `vnc` needs: a port-forward to the agent's pod.
	PortForwardPermission = Permission{Verb: "create", Doing: "creating", Subresource: "portforward", Action: "open VNC consoles"}
)

// CheckAccess asks the API server (a SelfSubjectAccessReview) whether the user may do p in
// namespace ns, so a user without the Role hears which one is missing before any stream is
// opened, instead of a bare "forbidden" from the upgrade.
func CheckAccess(ctx context.Context, c client.Client, ns string, p Permission) error {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: p.Verb, Resource: "pods", Subresource: p.Subresource},
	}}
	if err := c.Create(ctx, review); err != nil {
		return fmt.Errorf("check whether you may %s pods/%s in namespace %s: %w", p.Verb, p.Subresource, ns, err)
	}
	if !review.Status.Allowed {
		return fmt.Errorf("you may not %s: %s pods/%s in namespace %s is not allowed for you; ask a cluster admin to bind the Role %s (%s)",
			p.Action, p.Doing, p.Subresource, ns, ConsoleRole, Guide)
	}
	return nil
}

// GetClone reads the VMClone ns/name.
func GetClone(ctx context.Context, c client.Client, ns, name string) (*vmv1alpha1.VMClone, error) {
	var clone vmv1alpha1.VMClone
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &clone); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("vmclone %s/%s not found (kubectl get vmclones -n %s lists them)", ns, name, ns)
		}
		return nil, fmt.Errorf("get vmclone %s/%s: %w", ns, name, err)
	}
	return &clone, nil
}

func ref(clone *vmv1alpha1.VMClone) string { return clone.Namespace + "/" + clone.Name }

func describeHint(clone *vmv1alpha1.VMClone) string {
	return fmt.Sprintf("kubectl describe vmclone %s -n %s", clone.Name, clone.Namespace)
}

// BoundNode is the node (host) the clone is bound to.
func BoundNode(clone *vmv1alpha1.VMClone) (string, error) {
	if clone.Status.NodeName == "" {
		return "", fmt.Errorf("vmclone %s is not placed on a host yet; see %s", ref(clone), describeHint(clone))
	}
	return clone.Status.NodeName, nil
}

// Domain is the clone's domain as its current host reports it. A report from a host the
// clone has left names a domain that is not on the bound host, so it does not count.
func Domain(clone *vmv1alpha1.VMClone) (*vmv1alpha1.DomainStatus, error) {
	node, err := BoundNode(clone)
	if err != nil {
		return nil, err
	}
	if !clone.HostReportCurrent() || clone.Status.Domain == nil || clone.Status.Domain.Name == "" {
		return nil, fmt.Errorf("vmclone %s has no Xen domain on host %s yet (phase %s); see %s",
			ref(clone), node, clone.Status.Phase, describeHint(clone))
	}
	return clone.Status.Domain, nil
}

// VNCPort is the domain's VNC port on its host's 127.0.0.1.
func VNCPort(clone *vmv1alpha1.VMClone) (int32, error) {
	d, err := Domain(clone)
	if err != nil {
		return 0, err
	}
	if d.VNCPort <= 0 {
		return 0, fmt.Errorf("vmclone %s has no VNC console (status.domain.vncPort is empty): its template does not enable one (spec.domain.vnc.enabled), or domain %s has not published its port yet",
			ref(clone), d.Name)
	}
	return d.VNCPort, nil
}

// GuestIP is the guest's first address. The guest itself can write it (through its agent's
// xenstore keys), so anything but a plain IP address is refused: it goes onto ssh's command
// line, where "-oProxyCommand=…" would run a command on this machine.
func GuestIP(clone *vmv1alpha1.VMClone) (string, error) {
	if clone.Status.Guest == nil || clone.Status.Guest.IP == "" {
		return "", fmt.Errorf("vmclone %s has no address known yet: see status.guest, or kubectl get vmclone %s -n %s -o wide",
			ref(clone), clone.Name, clone.Namespace)
	}
	ip := clone.Status.Guest.IP
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Zone() != "" {
		return "", fmt.Errorf("vmclone %s reports the guest address %q, which is not a plain IP address; not passing it to ssh", ref(clone), ip)
	}
	return addr.String(), nil
}

// AgentPod finds the running host agent pod on node in namespace ns.
func AgentPod(ctx context.Context, c client.Client, ns, node string) (*corev1.Pod, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.InNamespace(ns), agentPodLabels(), client.MatchingFields{"spec.nodeName": node}); err != nil {
		return nil, fmt.Errorf("list hostagent pods on node %s in namespace %s: %w", node, ns, err)
	}
	var notRunning *corev1.Pod
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			return p, nil
		}
		notRunning = p
	}
	if notRunning != nil {
		phase := string(notRunning.Status.Phase)
		if notRunning.DeletionTimestamp != nil {
			phase = "terminating"
		}
		return nil, fmt.Errorf("hostagent pod %s/%s on node %s is %s, not Running; see kubectl describe pod %s -n %s",
			ns, notRunning.Name, node, phase, notRunning.Name, ns)
	}
	return nil, noAgentPod(ctx, c, ns, node)
}

// noAgentPod explains a node without an agent pod. A node with a XenHost has an agent that
// reports it, just not as a pod here: the playground's agents are processes, or the DaemonSet
// runs in another namespace.
func noAgentPod(ctx context.Context, c client.Client, ns, node string) error {
	var host vmv1alpha1.XenHost
	if err := c.Get(ctx, types.NamespacedName{Name: node}, &host); err == nil {
		return fmt.Errorf("no hostagent pod on node %s in namespace %s: consoles go through the hostagent DaemonSet's pod (kubectl apply -k config/default); the playground runs its agents as processes and has none",
			node, ns)
	}
	return fmt.Errorf("no hostagent pod on node %s in namespace %s: is the hostagent DaemonSet deployed (kubectl get daemonset -n %s)? --agent-namespace names another namespace",
		node, ns, ns)
}

// Target is where a clone's console is: its host, domain and the agent pod there.
type Target struct {
	Clone  *vmv1alpha1.VMClone
	Node   string
	Domain vmv1alpha1.DomainStatus
	Pod    *corev1.Pod
}

// Ref is the clone's namespace/name.
func (t *Target) Ref() string { return ref(t.Clone) }

// ResolveConsole follows a clone to its host's agent pod: clone → status.nodeName → the
// domain its host reports → the Running agent pod on that node.
func ResolveConsole(ctx context.Context, c client.Client, ns, name, agentNS string) (*Target, error) {
	return resolve(ctx, c, ns, name, agentNS, func(*vmv1alpha1.VMClone) error { return nil })
}

// ResolveVNC is ResolveConsole for a clone that must have a VNC port (checked before the
// pod is looked for: without a port there is nothing to forward to).
func ResolveVNC(ctx context.Context, c client.Client, ns, name, agentNS string) (*Target, error) {
	return resolve(ctx, c, ns, name, agentNS, func(clone *vmv1alpha1.VMClone) error {
		_, err := VNCPort(clone)
		return err
	})
}

func resolve(ctx context.Context, c client.Client, ns, name, agentNS string, require func(*vmv1alpha1.VMClone) error) (*Target, error) {
	clone, err := GetClone(ctx, c, ns, name)
	if err != nil {
		return nil, err
	}
	d, err := Domain(clone)
	if err != nil {
		return nil, err
	}
	if err := require(clone); err != nil {
		return nil, err
	}
	pod, err := AgentPod(ctx, c, agentNS, clone.Status.NodeName)
	if err != nil {
		return nil, err
	}
	return &Target{Clone: clone, Node: clone.Status.NodeName, Domain: *d, Pod: pod}, nil
}
