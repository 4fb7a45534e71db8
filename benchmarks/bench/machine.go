package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

// pinning says where servers, load generators and nats-server run: with 2
// or more CPUs each server runs on one CPU with GOMAXPROCS=1 and the load
// generators on another, so that figures compare servers, not scheduling.
type pinning struct {
	server, load, nats []string // taskset prefixes; nil: not pinned
	serverEnv          []string // GOMAXPROCS=1 when pinned
	text               string   // for the results: how it is pinned
	natsText           string
}

// planPinning pins on cpus, the CPUs this process may use, when taskset is
// there; ncpu is their count without taskset. nats-server gets a third CPU
// if there is one, else shares the load generators', never the server's.
func planPinning(cpus []int, ncpu int, taskset bool) pinning {
	var p pinning
	on := func(cpu int) []string { return []string{"taskset", "-c", strconv.Itoa(cpu)} }
	switch {
	case taskset && len(cpus) >= 2:
		p.server, p.load = on(cpus[0]), on(cpus[1])
		p.serverEnv = []string{"GOMAXPROCS=1"}
		p.text = fmt.Sprintf("pinned: each server on CPU %d with GOMAXPROCS=1, load generators on CPU %d (taskset)", cpus[0], cpus[1])
	case ncpu >= 2:
		p.text = fmt.Sprintf("NOT pinned: taskset is missing (util-linux); servers and load generators share %d CPUs", ncpu)
	default:
		p.text = fmt.Sprintf("NOT pinned: only %d CPU; servers and load generators share it, so figures understate every server", ncpu)
	}
	switch {
	case taskset && len(cpus) >= 3:
		p.nats = on(cpus[2])
		p.natsText = fmt.Sprintf("nats-server on CPU %d, a CPU of its own", cpus[2])
	case taskset && len(cpus) >= 2:
		p.nats = p.load
		p.natsText = fmt.Sprintf("nats-server on CPU %d, shared with the load generator (no third CPU)", cpus[1])
	default:
		p.natsText = "nats-server NOT pinned"
	}
	return p
}

// machinePinning plans the pinning of this machine: the CPUs this process
// may run on (Cpus_allowed_list, what taskset -pc prints), if taskset is
// installed.
func machinePinning() pinning {
	_, err := exec.LookPath("taskset")
	taskset := err == nil
	var cpus []int
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(status)) {
			if list, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
				cpus, _ = stats.CPUList(list)
			}
		}
	}
	return planPinning(cpus, runtime.NumCPU(), taskset)
}

// clockTicks returns the kernel's clock tick rate (getconf CLK_TCK), the
// unit of /proc/PID/stat's CPU times; 100, the value Linux reports on every
// common architecture, if getconf cannot say.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if hz, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && hz > 0 {
			return hz
		}
	}
	return 100
}

// commitOf returns the short commit of the checkout in root, with
// "(with uncommitted changes)" when tracked files differ from it.
func commitOf(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		commit += " (with uncommitted changes)"
	}
	return commit
}

// machineLine describes the machine: "go version ...; Linux 6.18; CPU x 2".
func machineLine() string {
	gover := "go version unknown"
	if out, err := exec.Command("go", "version").Output(); err == nil {
		gover = strings.TrimSpace(string(out))
	}
	kernel := "unknown kernel"
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	model := "unknown CPU"
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(info)) {
			if rest, ok := strings.CutPrefix(line, "model name"); ok {
				if _, m, ok := strings.Cut(rest, ": "); ok {
					model = strings.TrimSpace(m)
					break
				}
			}
		}
	}
	return fmt.Sprintf("%s; %s; %s x %d", gover, kernel, model, runtime.NumCPU())
}

// loadAverage returns the 1, 5 and 15-minute load averages as /proc/loadavg
// writes them, and the first as a number (-1 if unreadable).
func loadAverage() (string, float64) {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown", -1
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown", -1
	}
	one, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		one = -1
	}
	return strings.Join(f[:3], " "), one
}

// unpinnedPlan runs every process on every CPU (PIN=off): each server with
// Go's default GOMAXPROCS, one per CPU, sharing them with the load
// generators and nats-server.
func unpinnedPlan(ncpu int) pinning {
	return pinning{
		text:     fmt.Sprintf("NOT pinned (PIN=off): each server on all %d CPUs (GOMAXPROCS=%d), shared with the load generators", ncpu, ncpu),
		natsText: "nats-server NOT pinned (PIN=off)",
	}
}
