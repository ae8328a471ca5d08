package command

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRunReturnsStdout(t *testing.T) {
	out, err := Runner{}.Run(context.Background(), "printf", "%s", "a b")
	if err != nil || string(out) != "a b" {
		t.Fatalf("got %q, %v", out, err)
	}
}

func TestRunKeepsStderrAndExitCode(t *testing.T) {
	_, err := Runner{}.Run(context.Background(), "sh", "-c", "echo 'Volume group \"vg9\" not found' >&2; exit 5")
	if err == nil {
		t.Fatal("want error")
	}
	if ExitCode(err) != 5 {
		t.Errorf("exit code %d, want 5", ExitCode(err))
	}
	if !strings.Contains(Stderr(err), `Volume group "vg9" not found`) || !strings.Contains(err.Error(), "vg9") {
		t.Errorf("stderr lost: %v", err)
	}
}

func TestRunUsesPrefixAsArgumentList(t *testing.T) {
	// The prefix runs "env" which then runs our command: proves the argument list is exec'd,
	// and a metacharacter in an argument stays literal (no shell).
	out, err := Runner{Prefix: []string{"env", "--"}}.Run(context.Background(), "echo", "$(id);x")
	if err != nil || strings.TrimSpace(string(out)) != "$(id);x" {
		t.Fatalf("got %q, %v", out, err)
	}
}

func TestRunHonoursCancellation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Runner{}.Run(ctx, "sleep", "10")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want deadline exceeded, got %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("cancellation took %v", time.Since(start))
	}
}

func TestRunObserves(t *testing.T) {
	var tool string
	r := Runner{Observe: func(name string, _ time.Duration, _ error) { tool = name }}
	if _, err := r.Run(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
	if tool != "true" {
		t.Fatalf("observed %q", tool)
	}
}
