// Command xenclone is the one binary of the xenclone operator. Its first argument picks a role:
//
//	xenclone manager    the central controller (Deployment, leader-elected)
//	xenclone hostagent  the node agent (DaemonSet on every Xen dom0)
//	xenclone playground an embedded kube-apiserver + etcd with the CRDs, the manager and
//	                    simulated Xen hosts, for trying xenclone without a cluster or Xen
//	xenclone xlsim      the xl simulator the playground's hosts run
//	xenclone console    a domain's Xen console on this host (what `kubectl xenclone console`
//	                    execs in the agent's pod)
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	vmv1alpha1 "github.com/xenclone/xenclone/api/v1alpha1"
	"github.com/xenclone/xenclone/hostagent/console"
	"github.com/xenclone/xenclone/hostagent/xen/xlsim"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

const usage = `usage: xenclone <role> [flags]

roles:
  manager     run the central controller
  hostagent   run the node agent on a Xen dom0
  playground  run an embedded control plane, the manager and simulated Xen hosts
  xlsim       the xl simulator (xl's arguments and output) used by the playground
  console     attach this terminal to a domain's Xen console (kubectl xenclone console)
  version     print the version this binary was built as

Run "xenclone <role> -h" for the role's flags.
`

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(vmv1alpha1.AddToScheme(s))
	return s
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	role, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet("xenclone "+role, flag.ExitOnError)
	zapOpts := zap.Options{Development: false}

	var run func() error
	switch role {
	case "manager":
		opts := managerFlags(fs)
		run = func() error {
			fs.Visit(func(f *flag.Flag) { opts.memoryLimitSet = opts.memoryLimitSet || f.Name == "memory-limit" })
			return runManager(ctrl.SetupSignalHandler(), opts)
		}
	case "hostagent":
		opts := hostagentFlags(fs)
		run = func() error { return runHostAgent(ctrl.SetupSignalHandler(), opts) }
	case "playground":
		opts := playgroundFlags(fs)
		zapOpts.Development = true
		run = func() error { return runPlayground(ctrl.SetupSignalHandler(), opts) }
	case "xlsim":
		// The xl simulator (the playground's and the tests' Xen): same arguments and output
		// as xl. A leading "xl" is accepted so the agent's command runner can use this binary
		// as a prefix.
		if len(args) > 0 && args[0] == "xl" {
			args = args[1:]
		}
		os.Exit(xlsim.Main(args, os.Stdout, os.Stderr))
	case "console":
		// Exec'd by `kubectl xenclone console` in the agent's pod, with the session's TTY: no
		// logger, no API server, only xl console behind $XENCLONE_COMMAND_PREFIX.
		os.Exit(console.Main(args, os.Stdin, os.Stdout, os.Stderr))
	case "version":
		fmt.Println(version)
		return
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "xenclone: unknown role %q\n\n%s", role, usage)
		os.Exit(2)
	}
	zapOpts.BindFlags(fs)
	// controller-runtime registers --kubeconfig on the global flag set; offer it per role.
	if f := flag.CommandLine.Lookup("kubeconfig"); f != nil {
		fs.Var(f.Value, f.Name, f.Usage)
	}
	_ = fs.Parse(args)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(); err != nil {
		ctrl.Log.Error(err, "exiting", "role", role)
		os.Exit(1)
	}
}
