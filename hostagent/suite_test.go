package hostagent_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/xenclone/xenclone/controllers"
	"github.com/xenclone/xenclone/hack/testenv"
	"github.com/xenclone/xenclone/hostagent"
	"github.com/xenclone/xenclone/hostagent/sim"
)

// The suite runs the real controller and two node agents, each on a simulated Xen host
// (in-memory LVM, the xl simulator behind the real xen driver), against a real kube-apiserver
// and etcd: what a user sees with kubectl, end to end.

var (
	k8sClient  client.Client
	restCfg    *rest.Config
	testScheme *runtime.Scheme
	hosts      = map[string]*sim.Host{}

	agentsMu sync.Mutex
	agents   = map[string]*runningAgent{}
)

// runningAgent is one node agent's manager, which a test can kill like a crashed pod.
type runningAgent struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startAgent runs a node agent for name on host in its own manager (own cache, only its node's
// clones), as a DaemonSet pod would.
func startAgent(ctx context.Context, name string, host hostagent.Host) error {
	return startAgentWith(ctx, name, host, restCfg, nil)
}

// startAgentWith is startAgent with the agent's own API config (a network that can be cut)
// and options changed by edit (if not nil).
func startAgentWith(ctx context.Context, name string, host hostagent.Host, cfg *rest.Config, edit func(*hostagent.Options)) error {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: testScheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Cache: hostagent.CacheOptions(name), MapperProvider: hostagent.MapperProvider})
	if err != nil {
		return err
	}
	o := hostagent.Options{
		NodeName: name, Host: host, LeaseNamespace: leaseNamespace,
		RenewInterval: time.Second, ShutdownGrace: 3 * time.Second, UsageResync: 2 * time.Second, DomainPoll: 300 * time.Millisecond,
		OrphanInterval: 500 * time.Millisecond, OrphanGrace: 2 * time.Second,
	}
	if edit != nil {
		edit(&o)
	}
	if err := hostagent.SetupWithManager(mgr, o); err != nil {
		return err
	}
	actx, cancel := context.WithCancel(ctx)
	a := &runningAgent{cancel: cancel, done: make(chan struct{})}
	go func() { defer close(a.done); _ = mgr.Start(actx) }()
	agentsMu.Lock()
	agents[name] = a
	agentsMu.Unlock()
	return nil
}

// killAgent stops node name's agent and waits until it is gone.
func killAgent(name string) {
	agentsMu.Lock()
	a := agents[name]
	delete(agents, name)
	agentsMu.Unlock()
	if a != nil {
		a.cancel()
		<-a.done
	}
}

func stopAgents() {
	for _, n := range []string{"xen-a", "xen-b"} {
		killAgent(n)
	}
}

const leaseNamespace = "xenclone-system"

func TestMain(m *testing.M) {
	if !testenv.Available("the agent suite") {
		// The unit tests run; the suite's skip (its fixtures call testenv.Need).
		os.Exit(m.Run())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.Level(zapLevel()))))
	tmp, err := os.MkdirTemp("", "hostagent-suite-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)

	xl := filepath.Join(tmp, "xl")
	if out, err := exec.Command("go", "build", "-o", xl, "./xen/xlsim/cmd/xl").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build xl simulator: %v\n%s", err, out)
		return 1
	}

	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer env.Stop()
	cfg, scheme := env.Config, env.Scheme
	k8sClient = env.Client
	restCfg, testScheme = cfg, scheme
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	noMetrics := metricsserver.Options{BindAddress: "0"}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: noMetrics})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := controllers.SetupWithManager(mgr, controllers.Options{LeaseNamespace: leaseNamespace, HeartbeatGrace: 20 * time.Second}); err != nil {
		fmt.Fprintln(os.Stderr, "controller:", err)
		return 1
	}
	go func() { _ = mgr.Start(ctx) }()

	for _, name := range []string{"xen-a", "xen-b"} {
		h, err := sim.NewHost(ctx, name, filepath.Join(tmp, name), sim.HostOptions{
			MemoryMiB: 16384, Templates: map[string]uint64{"debian12": 4 << 30}, XL: []string{xl},
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		hosts[name] = h
		if err := startAgent(ctx, name, h.AgentHost()); err != nil {
			fmt.Fprintln(os.Stderr, "agent:", err)
			return 1
		}
	}
	defer stopAgents()
	return m.Run()
}

func zapLevel() int8 {
	if os.Getenv("XENCLONE_TEST_LOG") != "" {
		return -1
	}
	return 2 // errors only
}
