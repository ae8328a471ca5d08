package sim

import (
	"errors"
	"io"
	"net/http"
	"sync"

	"k8s.io/client-go/rest"
)

// ErrNetworkCut is what an agent's API requests fail with while its network is cut.
var ErrNetworkCut = errors.New("sim: network to the API server is cut")

// Network is a switchable link between one agent and the API server, for tests of a host that
// is cut off while its agent keeps running (the case self-fencing is for; a stopped agent
// cannot fence). While cut, every request fails and every open response (a watch, a long
// list) ends, as when the host's link goes down; requests made after Restore go through.
type Network struct {
	mu     sync.Mutex
	cut    bool
	bodies map[*cutBody]struct{}
}

// Config returns a copy of cfg whose requests go through n.
func (n *Network) Config(cfg *rest.Config) *rest.Config {
	out := rest.CopyConfig(cfg)
	out.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &cutTransport{n: n, next: rt} })
	return out
}

// Cut takes the link down.
func (n *Network) Cut() {
	n.mu.Lock()
	n.cut = true
	open := n.bodies
	n.bodies = nil
	n.mu.Unlock()
	for b := range open {
		b.sever()
	}
}

// Restore brings the link up again.
func (n *Network) Restore() {
	n.mu.Lock()
	n.cut = false
	n.mu.Unlock()
}

// IsCut says whether the link is down.
func (n *Network) IsCut() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cut
}

type cutTransport struct {
	n    *Network
	next http.RoundTripper
}

func (t *cutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.n.IsCut() {
		return nil, ErrNetworkCut
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b := &cutBody{ReadCloser: resp.Body, n: t.n}
	t.n.mu.Lock()
	if t.n.cut {
		t.n.mu.Unlock()
		_ = resp.Body.Close()
		return nil, ErrNetworkCut
	}
	if t.n.bodies == nil {
		t.n.bodies = map[*cutBody]struct{}{}
	}
	t.n.bodies[b] = struct{}{}
	t.n.mu.Unlock()
	resp.Body = b
	return resp, nil
}

// cutBody is a response body that ends when the link is cut.
type cutBody struct {
	io.ReadCloser
	n       *Network
	mu      sync.Mutex
	severed bool
}

func (b *cutBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	severed := b.severed
	b.mu.Unlock()
	if severed {
		return 0, ErrNetworkCut
	}
	return b.ReadCloser.Read(p)
}

func (b *cutBody) sever() {
	b.mu.Lock()
	b.severed = true
	b.mu.Unlock()
	_ = b.ReadCloser.Close() // wakes a Read blocked on the stream
}

func (b *cutBody) Close() error {
	b.n.mu.Lock()
	delete(b.n.bodies, b)
	b.n.mu.Unlock()
	return b.ReadCloser.Close()
}
