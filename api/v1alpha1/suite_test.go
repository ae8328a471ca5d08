package v1alpha1_test

import (
	"fmt"
	"os"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/xenclone/xenclone/hack/testenv"
)

// k8sClient talks to a real kube-apiserver + etcd with the generated CRDs installed, so the
// schema and CEL rules are enforced exactly as in a cluster.
var k8sClient client.Client

func TestMain(m *testing.M) {
	if !testenv.Available("the API validation suite") {
		// The unit tests run; the API server's skip (testNamespace calls testenv.Need).
		os.Exit(m.Run())
	}
	env, err := testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	k8sClient = env.Client
	code := m.Run()
	env.Stop()
	os.Exit(code)
}
