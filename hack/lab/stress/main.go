// Command stress checks that a CPU (here: QEMU TCG running Xen with a PV dom0) keeps user-space
// SIMD state intact: it runs TLS (AES-GCM) over loopback, SHA-256 and memmove on known data,
// channel churn and garbage collection concurrently, and exits 1 on the first wrong result.
// Run two instances at once so the kernel and the hypervisor switch FPU state between them.
// The host lab's TestCPUStress (hack/lab/e2e) runs it in dom0; docs/host-lab.md has the results.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var (
	duration = flag.Duration("d", time.Minute, "how long to run")
	workers  = flag.Int("w", 2, "workers per kind")
)

var counts struct{ tls, sha, mem, ch, fp atomic.Int64 }

func fail(format string, a ...any) {
	fmt.Printf("STRESS-FAIL: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	cfg := tlsConfig()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		fail("listen: %v", err)
	}
	go serve(ln)
	var wg sync.WaitGroup
	for i := 0; i < *workers; i++ {
		for _, f := range []func(context.Context, int){
			func(ctx context.Context, i int) { tlsClient(ctx, ln.Addr().String(), i) },
			shaWorker, memWorker, chanWorker, fpWorker,
		} {
			wg.Add(1)
			go func() { defer wg.Done(); f(ctx, i) }()
		}
	}
	start := time.Now()
	tick := time.NewTicker(15 * time.Second)
	defer tick.Stop()
	report := func() {
		fmt.Printf("stress %s: tls=%d sha=%d mem=%d chan=%d fp=%d\n", time.Since(start).Round(time.Second),
			counts.tls.Load(), counts.sha.Load(), counts.mem.Load(), counts.ch.Load(), counts.fp.Load())
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-tick.C:
			report()
		case <-done:
			report()
			fmt.Println("STRESS-OK")
			return
		}
	}
}

func tlsConfig() *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fail("key: %v", err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		fail("cert: %v", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, MaxVersion: tls.VersionTLS12}
}

// serve echoes every connection.
func serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
	}
}

func tlsClient(ctx context.Context, addr string, seed int) {
	r := mrand.New(mrand.NewPCG(uint64(seed), 1))
	buf := make([]byte, 256<<10)
	got := make([]byte, len(buf))
	for ctx.Err() == nil {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
		if err != nil {
			fail("tls dial: %v", err)
		}
		for j := 0; j < 8 && ctx.Err() == nil; j++ {
			for k := range buf {
				buf[k] = byte(r.Uint32())
			}
			errc := make(chan error, 1)
			go func() { _, err := c.Write(buf); errc <- err }()
			if _, err := io.ReadFull(c, got); err != nil {
				fail("tls read: %v", err)
			}
			if err := <-errc; err != nil {
				fail("tls write: %v", err)
			}
			if !bytes.Equal(buf, got) {
				fail("tls echo differs")
			}
			counts.tls.Add(1)
		}
		c.Close()
	}
}

// shaWorker hashes the same data twice in different chunkings; the digests must agree.
func shaWorker(ctx context.Context, seed int) {
	r := mrand.New(mrand.NewPCG(uint64(seed), 2))
	data := make([]byte, 1<<20)
	for ctx.Err() == nil {
		for k := range data {
			data[k] = byte(r.Uint32())
		}
		a := sha256.Sum256(data)
		h := sha256.New()
		for off := 0; off < len(data); off += 4093 {
			h.Write(data[off:min(off+4093, len(data))])
		}
		if b := h.Sum(nil); !bytes.Equal(a[:], b) {
			fail("sha256 differs: %x vs %x", a, b)
		}
		counts.sha.Add(1)
	}
}

// memWorker copies with memmove at odd offsets and compares byte by byte.
func memWorker(ctx context.Context, seed int) {
	r := mrand.New(mrand.NewPCG(uint64(seed), 3))
	src := make([]byte, 1<<20)
	for ctx.Err() == nil {
		for k := range src {
			src[k] = byte(k*7 + seed)
		}
		for i := 0; i < 64; i++ {
			off, n := r.IntN(4096), 4096+r.IntN(len(src)-8192)
			dst := make([]byte, n+64)
			copy(dst[off%64:], src[off:off+n])
			for k := 0; k < n; k++ {
				if dst[off%64+k] != byte((off+k)*7+seed) {
					fail("memmove: byte %d of %d wrong", k, n)
				}
			}
			clear(dst)
			for k := range dst {
				if dst[k] != 0 {
					fail("memclr: byte %d not zero", k)
				}
			}
		}
		counts.mem.Add(1)
	}
}

// chanWorker churns channels: make, send, close, receive on many goroutines.
func chanWorker(ctx context.Context, seed int) {
	for ctx.Err() == nil {
		var wg sync.WaitGroup
		for g := 0; g < 64; g++ {
			ch := make(chan int, 4)
			wg.Add(1)
			go func() {
				defer wg.Done()
				sum := 0
				for v := range ch {
					sum += v
				}
				if sum != 0+1+2+3 {
					fail("channel sum %d", sum)
				}
			}()
			for v := 0; v < 4; v++ {
				ch <- v
			}
			close(ch)
		}
		wg.Wait()
		counts.ch.Add(1)
	}
}

// fpWorker: floating point in XMM registers with a result known in advance.
func fpWorker(ctx context.Context, seed int) {
	want := 0.0
	for k := 1; k <= 100000; k++ {
		want += 1 / (float64(k) * float64(k))
	}
	for ctx.Err() == nil {
		got := 0.0
		for k := 1; k <= 100000; k++ {
			got += 1 / (float64(k) * float64(k))
		}
		if got != want || math.Abs(got-math.Pi*math.Pi/6) > 1e-4 {
			fail("float sum %v want %v", got, want)
		}
		counts.fp.Add(1)
	}
}
