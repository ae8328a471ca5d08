package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	utilexec "k8s.io/client-go/util/exec"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
)

func newConsoleCommand(o *options) *cobra.Command {
	agentNS := DefaultAgentNamespace
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Attach this terminal to a clone's Xen console (detach with Ctrl-])",
		Long: `Attach this terminal to the Xen console (xl console) of the VMClone NAME, through the
xenclone host agent's pod on the clone's host. Detach with Ctrl-] (xl's detach key).

It needs create on pods/exec in the agent namespace: exec into the agent is root on the host,
so only host administrators have it (the Role xenclone-console, docs/kubectl-plugin.md). One
session per domain: a second one is refused while the first is attached.`,
		Example: `  # the console of web-1 in the current namespace
  kubectl xenclone console web-1

  # a clone in another namespace, agents deployed in their own namespace
  kubectl xenclone console -n team-a runner-3 --agent-namespace xenclone-agents`,
		Args: exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runConsole(cmd.Context(), o, agentNS, args[0])
		},
	}
	addAgentNamespaceFlag(cmd, &agentNS)
	return cmd
}

func runConsole(ctx context.Context, o *options, agentNS, name string) error {
	s, err := o.session()
	if err != nil {
		return err
	}
	if err := CheckAccess(ctx, s.client, agentNS, ExecPermission); err != nil {
		return err
	}
	t, err := ResolveConsole(ctx, s.client, s.namespace, name, agentNS)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.streams.ErrOut, "Connected to the console of %s (domain %s, host %s). Detach with Ctrl-].\n", t.Ref(), t.Domain.Name, t.Node)
	if err := attach(ctx, o, s, t); err != nil {
		var exitErr utilexec.ExitError
		if errors.As(err, &exitErr) {
			return fmt.Errorf("the console session on host %s ended with exit status %d (the agent's message is above)", t.Node, exitErr.ExitStatus())
		}
		return fmt.Errorf("console of %s: %w", t.Ref(), err)
	}
	return nil
}

// attach runs the agent's console command with this terminal in raw mode, so every key,
// Ctrl-] included, goes to xl.
func attach(ctx context.Context, o *options, s *session, t *Target) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := ExecStreams{Stdin: o.streams.In, Stdout: o.streams.Out, Stderr: o.streams.ErrOut}
	term, ok, err := rawTerminal(o.streams.In)
	if err != nil {
		return err
	}
	if ok {
		defer term.Restore()
		streams.TTY, streams.Sizes = true, term.Sizes(ctx)
	} else {
		fmt.Fprintln(o.streams.ErrOut, "warning: stdin is not a terminal: the console runs without a TTY and Ctrl-] cannot detach it (end it with end of input)")
	}
	return Exec(ctx, s.config, t.Pod, AgentContainer, ConsoleCommand(t.Pod, t.Domain.Name), streams)
}

// ConsoleCommand is what runs in the agent's container: the agent binary's console role, with
// the agent's own --state-dir and --xl when its pod sets them (the console lock lives in the
// same state folder the agent uses).
func ConsoleCommand(pod *corev1.Pod, domain string) []string {
	argv := []string{AgentBinary, "console"}
	for _, c := range pod.Spec.Containers {
		if c.Name != AgentContainer {
			continue
		}
		for _, flag := range []string{"state-dir", "xl"} {
			if v, ok := flagValue(c.Args, flag); ok {
				argv = append(argv, "--"+flag+"="+v)
			}
		}
	}
	return append(argv, domain)
}

// flagValue finds --name=value or --name value (Go flag syntax, one or two dashes) in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		trimmed := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if trimmed == a {
			continue
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v, true
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func newVNCCommand(o *options) *cobra.Command {
	agentNS := DefaultAgentNamespace
	address, port := "127.0.0.1", int32(0)
	cmd := &cobra.Command{
		Use:   "vnc NAME",
		Short: "Forward a local port to a clone's VNC console",
		Long: `Forward a local port to the VNC console of the VMClone NAME (status.domain.vncPort on its
host's 127.0.0.1), through the xenclone host agent's pod on the clone's host, until Ctrl-C.
The clone's template must enable VNC (spec.domain.vnc.enabled).

It needs create on pods/portforward in the agent namespace (the Role xenclone-console,
docs/kubectl-plugin.md).`,
		Example: `  # forward a free local port, then point a VNC viewer at the address printed
  kubectl xenclone vnc web-1

  # a fixed port; then, in another terminal: vncviewer 127.0.0.1:5901
  kubectl xenclone vnc web-1 --port 5901`,
		Args: exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			if port < 0 || port > 65535 {
				return fmt.Errorf("--port %d is not a TCP port (0 picks a free one)", port)
			}
			return runVNC(cmd.Context(), o, agentNS, args[0], address, port)
		},
	}
	addAgentNamespaceFlag(cmd, &agentNS)
	cmd.Flags().StringVar(&address, "address", address, "Local address to listen on.")
	cmd.Flags().Int32Var(&port, "port", port, "Local port to listen on (0 picks a free one).")
	return cmd
}

func runVNC(ctx context.Context, o *options, agentNS, name, address string, port int32) error {
	s, err := o.session()
	if err != nil {
		return err
	}
	if err := CheckAccess(ctx, s.client, agentNS, PortForwardPermission); err != nil {
		return err
	}
	t, err := ResolveVNC(ctx, s.client, s.namespace, name, agentNS)
	if err != nil {
		return err
	}
	err = PortForward(ctx, s.config, t.Pod, address, port, t.Domain.VNCPort, o.streams.ErrOut, func(local uint16) {
		fmt.Fprintf(o.streams.Out, "VNC console of %s at %s — point a VNC viewer there; Ctrl-C to stop.\n",
			t.Ref(), net.JoinHostPort(address, fmt.Sprint(local)))
	})
	if err != nil {
		return fmt.Errorf("VNC console of %s: %w", t.Ref(), err)
	}
	return nil
}

func newResetCommand(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "reset NAME",
		Short: "Reset a clone's disk to a fresh snapshot of its template",
		Long: `Reset the VMClone NAME: increment spec.resetRequests by one. Its host agent then stops the
domain, replaces the disk with a fresh snapshot of the template and starts it again (per
spec.runStrategy). Everything written to the old disk is gone.`,
		Example: `  kubectl xenclone reset web-1
  kubectl wait --for=condition=Ready vmclone/web-1`,
		Args: exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.session()
			if err != nil {
				return err
			}
			n, err := RequestReset(cmd.Context(), s.client, s.namespace, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(o.streams.Out, "vmclone %s/%s: reset %d requested (spec.resetRequests); the disk is replaced by a fresh snapshot\n", s.namespace, args[0], n)
			return nil
		},
	}
}

func newRunStrategyCommand(o *options, verb string, strategy vmv1alpha1.RunStrategy) *cobra.Command {
	effect := map[vmv1alpha1.RunStrategy]string{
		vmv1alpha1.RunStrategyHalted: "the host agent shuts the domain down (the disk is kept)",
		vmv1alpha1.RunStrategyAlways: "the host agent starts the domain and restarts it whenever it stops",
	}[strategy]
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: fmt.Sprintf("Set a clone's spec.runStrategy to %s", strategy),
		Long: fmt.Sprintf(`Set spec.runStrategy of the VMClone NAME to %s: %s.

A GitOps tool (Argo CD, Flux) that owns the clone's manifest sets it back on its next sync;
for such clones, set runStrategy in the manifest instead.`, strategy, effect),
		Example: fmt.Sprintf("  kubectl xenclone %s web-1", verb),
		Args:    exactlyOneName,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.session()
			if err != nil {
				return err
			}
			was, changed, err := SetRunStrategy(cmd.Context(), s.client, s.namespace, args[0], strategy)
			if err != nil {
				return err
			}
			reportRunStrategy(o.streams.Out, o.streams.ErrOut, s.namespace+"/"+args[0], strategy, was, changed, effect)
			return nil
		},
	}
}

func reportRunStrategy(out, errOut io.Writer, ref string, s, was vmv1alpha1.RunStrategy, changed bool, effect string) {
	if !changed {
		fmt.Fprintf(out, "vmclone %s: spec.runStrategy is already %s; nothing changed\n", ref, s)
		return
	}
	fmt.Fprintf(out, "vmclone %s: spec.runStrategy set to %s (was %s); %s\n", ref, s, was, effect)
	fmt.Fprintln(errOut, "warning: a GitOps tool (Argo CD, Flux) that owns this manifest will set spec.runStrategy back; for such clones set runStrategy in the manifest instead")
}

func newSSHCommand(o *options) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "ssh NAME [-l USER] [-- SSH ARGS...]",
		Short: "ssh to a clone's guest address (status.guest.ip)",
		Long: `Run the local ssh as "ssh [-l USER] [SSH ARGS...] IP", IP being the guest address of the
VMClone NAME (status.guest.ip, reported by its host agent). SSH ARGS are ssh options (-i, -p,
-o ...) and go before the address, so they cannot carry a remote command. This machine must
reach the guest's network: the address is the guest's own, not forwarded.`,
		Example: `  kubectl xenclone ssh web-1 -l debian
  kubectl xenclone ssh web-1 -l root -- -i ~/.ssh/lab -o StrictHostKeyChecking=accept-new`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, extra, err := SplitSSHArgs(args, cmd.ArgsLenAtDash())
			if err != nil {
				return err
			}
			return runSSHCommand(cmd.Context(), o, name, user, extra)
		},
	}
	cmd.Flags().StringVarP(&user, "login", "l", "", "User to log in as on the guest (ssh -l).")
	return cmd
}

// SplitSSHArgs takes NAME and the ssh arguments after "--" (dash is cobra's ArgsLenAtDash:
// -1 without one).
func SplitSSHArgs(args []string, dash int) (name string, sshArgs []string, err error) {
	named := args
	if dash >= 0 {
		named, sshArgs = args[:dash], args[dash:]
	}
	if len(named) != 1 {
		return "", nil, fmt.Errorf("want one NAME before \"--\", got %d (%q); ssh arguments go after \"--\"", len(named), named)
	}
	return named[0], sshArgs, nil
}

func runSSHCommand(ctx context.Context, o *options, name, user string, extra []string) error {
	s, err := o.session()
	if err != nil {
		return err
	}
	clone, err := GetClone(ctx, s.client, s.namespace, name)
	if err != nil {
		return err
	}
	ip, err := GuestIP(clone)
	if err != nil {
		return err
	}
	path, err := exec.LookPath("ssh")
	if err != nil {
		return fmt.Errorf("no ssh on PATH (install an OpenSSH client): %w", err)
	}
	return runSSH(path, SSHArgv(user, extra, ip))
}

func exactlyOneName(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%s takes one VMClone NAME, got %d arguments; see %s --help", cmd.Name(), len(args), cmd.CommandPath())
	}
	return nil
}

func addAgentNamespaceFlag(cmd *cobra.Command, ns *string) {
	cmd.Flags().StringVar(ns, "agent-namespace", *ns, "Namespace of the xenclone hostagent DaemonSet's pods.")
}
