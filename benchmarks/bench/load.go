package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

// loadRun is a load generator's run: its output and its own CPU time.
type loadRun struct {
	out    []byte
	cpuSec float64
}

// runLoad runs a load generator (argv) on the load generators' CPU for at
// most limit (then SIGTERM, exit status 124, as timeout(1) would), its
// output in outPath and in the raw output. It fails on a non-zero exit
// status, still returning the output.
func (b *bench) runLoad(limit time.Duration, outPath string, argv ...string) (loadRun, error) {
	env := append(os.Environ(), "PAYLOAD="+b.payload) // read by post.lua
	p, err := startProc(&b.procs, filepath.Base(argv[0]), append(slices.Clone(b.pin.load), argv...), env, outPath)
	if err != nil {
		return loadRun{}, err
	}
	timedOut := false
	if !p.wait(limit) {
		timedOut = true
		if p.stop(10 * time.Second) {
			notice("%s did not exit within 10 s of SIGTERM; killed", argv[0])
		}
	}
	b.procs.forget(p)
	status := p.status()
	if timedOut {
		status = 124
	}
	var run loadRun
	run.out, _ = os.ReadFile(outPath)
	run.cpuSec = p.cpuSeconds()
	b.rawLog(fmt.Sprintf("%s  (exit status %d)", strings.Join(argv, " "), status), run.out)
	if status != 0 {
		return run, fmt.Errorf("exit status %d", status)
	}
	return run, nil
}

// url returns the URL of a server started by launch.
func (s *server) url() string {
	return "http://127.0.0.1:" + strconv.Itoa(s.port) + "/"
}

// warmUp runs wrk briefly against a server, its figures discarded.
func (b *bench) warmUp(s *server, name string) error {
	run, err := b.runLoad(60*time.Second, filepath.Join(b.work, "warmup.txt"),
		b.wrk, "-t1", "-c"+strconv.Itoa(b.cfg.conns), "-d"+b.cfg.warmUp, "-s", b.lua, s.url())
	if err != nil {
		return fmt.Errorf("wrk warm-up against %s failed (%v): %s", name, err, tail(run.out, 3))
	}
	return nil
}

// runLimit is how long a measured run may take: its duration and a minute.
func (b *bench) runLimit() time.Duration {
	return time.Duration(b.cfg.durSec+60) * time.Second
}

// cpuTicks returns a process's user + system CPU time, in clock ticks.
func cpuTicks(pid int) (int64, error) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return stats.ProcTicks(string(stat))
}

// peakRSSMiB returns a process's peak resident set size (VmHWM), in MiB.
func peakRSSMiB(pid int) (float64, error) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	kib, err := stats.PeakRSSKiB(string(status))
	return float64(kib) / 1024, err
}

// measureWrk is the measured wrk run against a server: its figures, the
// server's CPU per request and peak RSS, wrk's CPU, and, when co is
// nats-server, that process's CPU over the same interval. It fails if wrk
// fails, completes no request or the server exits during the run.
func (b *bench) measureWrk(s *server, name, label string, co *proc) (measurement, error) {
	m := missing()
	c0, err := cpuTicks(s.pid())
	if err != nil {
		return m, fmt.Errorf("%s (%s) is not running", name, label)
	}
	k0 := int64(-1)
	if co != nil {
		if k0, err = cpuTicks(co.pid()); err != nil {
			k0 = -1
		}
	}
	t0 := time.Now()
	run, err := b.runLoad(b.runLimit(), filepath.Join(b.work, "wrk.txt"), b.wrk, "-t1", "-c"+strconv.Itoa(b.cfg.conns),
		"-d"+b.cfg.duration, "--latency", "-s", b.lua, s.url())
	if err != nil {
		return m, fmt.Errorf("wrk against %s (%s) failed (%v): %s", name, label, err, tail(run.out, 3))
	}
	elapsed := time.Since(t0).Seconds()
	// The server must still be running: its CPU and peak RSS come from
	// /proc, which forgets a process once it has been reaped.
	c1, err1 := cpuTicks(s.pid())
	rss, err2 := peakRSSMiB(s.pid())
	if err1 != nil || err2 != nil || !s.alive() {
		return m, fmt.Errorf("%s (%s) exited during the wrk run", name, label)
	}
	k1 := int64(-1)
	if k0 >= 0 {
		if k1, err = cpuTicks(co.pid()); err != nil {
			k1 = -1
		}
	}
	w, err := stats.ParseWrk(string(run.out))
	if err != nil {
		return m, fmt.Errorf("wrk against %s (%s): %v: %s", name, label, err, run.out)
	}
	if w.Requests == 0 {
		return m, fmt.Errorf("wrk against %s (%s) completed no request: %s", name, label, run.out)
	}
	if w.Non2xx > 0 {
		b.warn("%s (%s): %d responses were not 2xx", name, label, w.Non2xx)
	}
	if w.SocketErrors > 0 {
		notice("%s (%s): %d socket errors (see raw output)", name, label, w.SocketErrors)
	}
	m.requests, m.rps, m.p50, m.p75, m.p90, m.p99 = w.Requests, w.RPS, w.P50, w.P75, w.P90, w.P99
	m.rssMiB = rss
	m.gen = 100 * run.cpuSec / elapsed
	m.cpuUS, m.util = stats.CPUPerRequest(c1-c0, b.hz, w.Requests, elapsed)
	if k1 >= 0 {
		m.coCPU, m.coUtil = stats.CPUPerRequest(k1-k0, b.hz, w.Requests, elapsed)
	}
	return m, nil
}

// pct writes a share of a core as bench.sh did: a whole number, "-" if
// missing.
func pct(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// roundLine is the line printed for each measured run.
func roundLine(round, width int, label string, m *measurement) string {
	return fmt.Sprintf("  round %d %-*s %8.0f req/s  p50 %6.3f ms  p99 %7.3f ms  %5.1f MiB  %6.2f CPU us/req  server CPU %s%%  wrk CPU %s%%",
		round, width, label, m.rps, m.p50, m.p99, m.rssMiB, m.cpuUS, pct(m.util), pct(m.gen))
}
