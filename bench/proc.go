package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
)

// Machine is what the numbers ran on.
type Machine struct {
	CPUModel   string `json:"cpuModel"`
	CPUs       int    `json:"cpus"`
	MemTotal   string `json:"memTotal"`
	Kernel     string `json:"kernel"`
	GoVersion  string `json:"goVersion"`
	LoadBefore string `json:"loadBefore"`
	LoadAfter  string `json:"loadAfter"`
	// Commit is the tree the binaries were built from; Dirty lists uncommitted changes to
	// the code under test (the worktree is shared, so say so).
	Commit string   `json:"commit"`
	Dirty  []string `json:"dirty,omitempty"`
}

func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadavg()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "model name") {
				m.CPUModel = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemTotal = strings.TrimSpace(strings.TrimPrefix(strings.SplitN(string(data), "\n", 2)[0], "MemTotal:"))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("git", "status", "--porcelain", "--", "api", "controllers", "hostagent", "main.go", "manager.go", "hostagent.go").Output(); err == nil {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.HasSuffix(l, "_test.go") {
				m.Dirty = append(m.Dirty, strings.TrimSpace(l))
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	return m
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// ProcSample is one look at a process in /proc.
type ProcSample struct {
	// CPUSeconds is user+system of the process itself; ChildCPUSeconds that of its waited-for
	// children (the agents' xl simulator runs).
	CPUSeconds      float64 `json:"cpuSeconds"`
	ChildCPUSeconds float64 `json:"childCpuSeconds"`
	RSSMiB          float64 `json:"rssMiB"`
	PeakRSSMiB      float64 `json:"peakRssMiB"`
}

var clockTicks = 100.0 // USER_HZ; 100 on every Linux this runs on

func sampleProc(pid int) (ProcSample, error) {
	var s ProcSample
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// Fields after the command name, which is in parentheses and may contain spaces.
	rest := string(data)[strings.LastIndexByte(string(data), ')')+2:]
	f := strings.Fields(rest)
	// f[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17.
	num := func(i int) float64 { v, _ := strconv.ParseFloat(f[i-3], 64); return v }
	s.CPUSeconds = (num(14) + num(15)) / clockTicks
	s.ChildCPUSeconds = (num(16) + num(17)) / clockTicks
	if v, err := procStatusKiB(strconv.Itoa(pid), "VmRSS"); err == nil {
		s.RSSMiB = v / 1024
	}
	if v, err := procStatusKiB(strconv.Itoa(pid), "VmHWM"); err == nil {
		s.PeakRSSMiB = v / 1024
	}
	return s, nil
}

// resetPeakRSS makes VmHWM start again from the current RSS (proc(5), clear_refs value 5), so a
// phase's peak is its own.
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

func procStatusField(pid, key string) (string, error) {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && k == key {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s not in /proc/%s/status", key, pid)
}

func procStatusKiB(pid, key string) (float64, error) {
	v, err := procStatusField(pid, key)
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64)
}

// delta is what a process spent between two samples; the peak is the later sample's.
func delta(a, b ProcSample) ProcSample {
	return ProcSample{CPUSeconds: b.CPUSeconds - a.CPUSeconds, ChildCPUSeconds: b.ChildCPUSeconds - a.ChildCPUSeconds,
		RSSMiB: b.RSSMiB, PeakRSSMiB: b.PeakRSSMiB}
}

// findPid returns the first process whose command line contains every fragment, or 0: how the
// bench finds envtest's kube-apiserver and etcd, which it does not start itself.
func findPid(fragments ...string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(data), "\x00", " ")
		ok := true
		for _, f := range fragments {
			ok = ok && strings.Contains(cmd, f)
		}
		if ok {
			return pid
		}
	}
	return 0
}
