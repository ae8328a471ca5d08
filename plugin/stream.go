package plugin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	apihttpstream "k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

// The streams themselves need a kubelet, so nothing here is unit-tested: this file only wires
// client-go the way kubectl exec and kubectl port-forward do.

// shouldFallback says a websocket upgrade was refused (an API server or proxy without
// websocket streaming), so the SPDY transport is tried. client-go's websocket transports
// report it with k8s.io/streaming's error type, its SPDY dialer with apimachinery's.
func shouldFallback(err error) bool {
	return streamhttp.IsUpgradeFailure(err) || streamhttp.IsHTTPSProxyError(err) ||
		apihttpstream.IsUpgradeFailure(err) || apihttpstream.IsHTTPSProxyError(err)
}

func podSubresourceURL(cfg *rest.Config, pod *corev1.Pod, sub string, params *corev1.PodExecOptions) (*url.URL, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(pod.Namespace).Name(pod.Name).SubResource(sub)
	if params != nil {
		req = req.VersionedParams(params, scheme.ParameterCodec)
	}
	return req.URL(), nil
}

// ExecStreams are the local ends of an exec session.
type ExecStreams struct {
	Stdin  io.Reader
	Stdout io.Writer
	// Stderr is used only without a TTY (a TTY merges it into Stdout).
	Stderr io.Writer
	TTY    bool
	// Sizes reports the local terminal's size, first and on every change (TTY only).
	Sizes remotecommand.TerminalSizeQueue
}

// Exec runs command in the pod's container with the streams attached: websocket first,
// SPDY when the upgrade is refused (kubectl exec's order).
func Exec(ctx context.Context, cfg *rest.Config, pod *corev1.Pod, container string, command []string, s ExecStreams) error {
	u, err := podSubresourceURL(cfg, pod, "exec", &corev1.PodExecOptions{
		Container: container, Command: command,
		Stdin: s.Stdin != nil, Stdout: s.Stdout != nil, Stderr: !s.TTY && s.Stderr != nil, TTY: s.TTY,
	})
	if err != nil {
		return err
	}
	spdyExec, err := remotecommand.NewSPDYExecutor(cfg, http.MethodPost, u)
	if err != nil {
		return fmt.Errorf("spdy executor: %w", err)
	}
	wsExec, err := remotecommand.NewWebSocketExecutor(cfg, http.MethodGet, u.String())
	if err != nil {
		return fmt.Errorf("websocket executor: %w", err)
	}
	executor, err := remotecommand.NewFallbackExecutor(wsExec, spdyExec, shouldFallback)
	if err != nil {
		return fmt.Errorf("executor: %w", err)
	}
	opts := remotecommand.StreamOptions{Stdin: s.Stdin, Stdout: s.Stdout, Tty: s.TTY, TerminalSizeQueue: s.Sizes}
	if !s.TTY {
		opts.Stderr = s.Stderr
	}
	return executor.StreamWithContext(ctx, opts)
}

// PortForward forwards address:local (0 picks a free port) to the pod's remotePort until ctx
// ends; ready gets the local port once it listens. Websocket first, SPDY when the upgrade is
// refused (kubectl port-forward's order).
func PortForward(ctx context.Context, cfg *rest.Config, pod *corev1.Pod, address string, local, remotePort int32, errOut io.Writer, ready func(port uint16)) error {
	u, err := podSubresourceURL(cfg, pod, "portforward", nil)
	if err != nil {
		return err
	}
	transport, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return fmt.Errorf("spdy transport: %w", err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: transport}, http.MethodPost, u)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
	if err != nil {
		return fmt.Errorf("websocket dialer: %w", err)
	}
	dialer := portforward.NewFallbackDialer(wsDialer, spdyDialer, shouldFallback)
	readyCh := make(chan struct{})
	// Its per-connection chatter ("Handling connection for …") is dropped; errors go to errOut.
	fw, err := portforward.NewOnAddressesWithContext(ctx, dialer, []string{address},
		[]string{fmt.Sprintf("%d:%d", local, remotePort)}, readyCh, io.Discard, errOut)
	if err != nil {
		return fmt.Errorf("port-forward: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-readyCh:
		ports, err := fw.GetPorts()
		if err != nil {
			return fmt.Errorf("port-forward: local port: %w", err)
		}
		if len(ports) == 0 {
			return fmt.Errorf("port-forward: listening on no local port")
		}
		ready(ports[0].Local)
	case err := <-done:
		return fmt.Errorf("port-forward: %w", err)
	}
	if err := <-done; err != nil {
		return fmt.Errorf("port-forward: %w", err)
	}
	return nil
}
