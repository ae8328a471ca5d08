package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a process the bench started, in its own process group so whatever it runs (the
// xl simulator) goes with it.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startChild(name, logPath string, argv []string, stdout io.Writer) (*child, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// stop asks the process to end (SIGTERM), then kills its whole group after grace.
func (c *child) stop(grace time.Duration) {
	if c == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
		<-c.done
	}
	// Anything the process left in its group (an xl simulator mid-run) goes too.
	_ = syscall.Kill(-c.pid(), syscall.SIGKILL)
}

// freePort returns a localhost address nothing listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// statsLine reads the agents process's "STATS <addr>" line from its stdout.
func statsLine(r io.Reader, timeout time.Duration) (string, error) {
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "STATS "); ok {
				found <- addr
				break
			}
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	select {
	case a := <-found:
		return a, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("the agents process did not report its stats address in %s", timeout)
	}
}

func getAgentStats(ctx context.Context, addr string) (AgentStats, error) {
	var s AgentStats
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/stats", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// promText fetches a Prometheus text endpoint.
func promText(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// promSum sums the samples of a metric whose labels contain every given label="value"
// fragment, grouped by the value of label groupBy ("" = one total under "").
func promSum(text, metric, groupBy string, match ...string) map[string]float64 {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, metric) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(metric):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.IndexByte(rest, '}')
			if end < 0 {
				continue
			}
			labels, rest = rest[1:end], rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer metric name
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(labels, m)
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		key := ""
		if groupBy != "" {
			if i := strings.Index(labels, groupBy+`="`); i >= 0 {
				key = labels[i+len(groupBy)+2:]
				key = key[:strings.IndexByte(key, '"')]
			}
		}
		out[key] += v
	}
	return out
}

// promLabels parses the labels of one sample line, `metric{a="x",b="y"} 1`, and its value.
func promLabels(line, metric string) (map[string]string, float64, bool) {
	rest, ok := strings.CutPrefix(line, metric+"{")
	if !ok {
		return nil, 0, false
	}
	labels := map[string]string{}
	for {
		eq := strings.Index(rest, `="`)
		if eq < 0 {
			return nil, 0, false
		}
		name := strings.TrimLeft(rest[:eq], ",")
		rest = rest[eq+2:]
		var val strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
			}
			val.WriteByte(rest[i])
		}
		if i >= len(rest) {
			return nil, 0, false
		}
		labels[name] = val.String()
		rest = rest[i+1:]
		if strings.HasPrefix(rest, "}") {
			rest = rest[1:]
			break
		}
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return nil, 0, false
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return labels, v, err == nil
}

// apiserverByResource is apiserver_request_total keyed like requestKey (verb and
// resource.group/subresource); requests that name no resource are "VERB" alone.
func apiserverByResource(text string) RequestCounts {
	out := RequestCounts{}
	for _, line := range strings.Split(text, "\n") {
		l, v, ok := promLabels(line, "apiserver_request_total")
		if !ok {
			continue
		}
		key := l["verb"]
		if l["resource"] != "" {
			key = resourceKey(l["verb"], l["group"], l["resource"], l["subresource"])
		}
		out[key] += int64(v)
	}
	return out
}

func countsOf(m map[string]float64) RequestCounts {
	out := RequestCounts{}
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

// latencySums are a latency histogram's sums (seconds) and counts by key.
type latencySums struct{ Sum, Count map[string]float64 }

// apiserverLatency is apiserver_request_duration_seconds' sum and count by requestKey (the
// time the API server took to serve each request: admission, etcd, encoding; not the network).
func apiserverLatency(text string) latencySums {
	out := latencySums{Sum: map[string]float64{}, Count: map[string]float64{}}
	for _, line := range strings.Split(text, "\n") {
		for part, into := range map[string]map[string]float64{"_sum": out.Sum, "_count": out.Count} {
			l, v, ok := promLabels(line, "apiserver_request_duration_seconds"+part)
			if !ok || l["resource"] == "" {
				continue
			}
			into[resourceKey(l["verb"], l["group"], l["resource"], l["subresource"])] += v
		}
	}
	return out
}
