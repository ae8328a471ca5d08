// Package plugin is kubectl-xenclone, the kubectl plugin for VMClones: a clone's Xen console
// and VNC console through its host's agent pod, ssh to its guest, and the spec changes people
// otherwise type as patches (reset, stop, start). Lookups and patches are plain functions of a
// controller-runtime client, so they are tested against a real API server; the exec and
// port-forward streams need a kubelet and stay thin (stream.go).
package plugin

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

// ExitCodeError ends the plugin with Code and no message of its own: the command it ran
// (ssh) has already said what happened.
type ExitCodeError struct{ Code int }

func (e *ExitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// options is what every command shares: kubeconfig flags (cli-runtime's, as kubectl's) and
// the streams the commands write to.
type options struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
}

// session is a connection to the API server and the namespace the user's flags pick.
type session struct {
	config    *rest.Config
	client    client.Client
	namespace string
}

func (o *options) session() (*session, error) {
	cfg, err := o.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	ns, _, err := o.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("namespace from kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	return &session{config: cfg, client: c, namespace: ns}, nil
}

// Scheme has the Kubernetes kinds and xenclone's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(vmv1alpha1.AddToScheme(s))
	return s
}

// NewCommand is `kubectl xenclone` with its subcommands, writing to streams.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &options{flags: genericclioptions.NewConfigFlags(true), streams: streams}
	root := &cobra.Command{
		Use:   "kubectl-xenclone",
		Short: "Consoles, ssh, reset and power for xenclone VMClones",
		Long: `kubectl xenclone works on VMClones (vm.xenclone.dev/v1alpha1): it opens a clone's Xen
console or VNC console through the xenclone host agent's pod on the clone's host, runs ssh to
the guest's address, and resets, stops and starts clones.

NAME is a VMClone in the namespace of -n/--namespace (or the kubeconfig context's).
See docs/kubectl-plugin.md for the RBAC the console commands need.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl xenclone"},
		SilenceUsage:  true,
		SilenceErrors: true,
		// Completion scripts would name the binary, not "kubectl xenclone".
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	o.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newConsoleCommand(o),
		newVNCCommand(o),
		newResetCommand(o),
		newRunStrategyCommand(o, "stop", vmv1alpha1.RunStrategyHalted),
		newRunStrategyCommand(o, "start", vmv1alpha1.RunStrategyAlways),
		newSSHCommand(o),
	)
	return root
}
