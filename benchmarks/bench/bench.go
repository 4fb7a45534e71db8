package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fastingest/fastingest/benchmarks/internal/tools"
)

// bench is one run of the harness.
type bench struct {
	cfg     config
	root    string // the repository
	work    string // the work directory: binaries, logs, tools' output
	payload string // scripts/payload.json
	lua     string // scripts/post.lua, wrk's POST script
	hz      int64  // clock ticks per second of /proc/PID/stat
	pin     pinning
	res     *results

	wrk, hey, vegeta string
	natsServer       string // "" if missing
	natsServerErr    string // why it is missing

	baselineSHA string

	outMu   sync.Mutex
	outPath string
	out     *os.File // the results file
	raw     *os.File // every tool's output, appended to out at the end

	procs    procSet
	seq      int // numbers server logs
	failures int // warnings: figures that may not be trustworthy
	cleaned  sync.Once
}

// newBench prepares a run: checks the baseline revision (before anything is
// installed or built), finds or installs the tools, makes the work directory
// and the results file.
func newBench(cfg config, root string) (*bench, error) {
	b := &bench{
		cfg:     cfg,
		root:    root,
		payload: filepath.Join(root, "scripts", "payload.json"),
		lua:     filepath.Join(root, "scripts", "post.lua"),
		res: &results{
			rounds: cfg.rounds, duration: cfg.duration, conns: cfg.conns, smoke: cfg.smoke,
			rate: cfg.rate, vegetaWorkers: cfg.vegetaWorkers, sinkRuns: cfg.sinks, natsRuns: cfg.natsRuns(),
			baselineRef: cfg.baselineRef,
			simSettings: fmt.Sprintf("MAX_WORKERS=%d MAX_QUEUE=%d SIM_LATENCY=%s", cfg.simWorkers, cfg.simQueue, cfg.simLatency),
		},
	}
	payload, err := os.ReadFile(b.payload)
	if err != nil {
		return nil, fmt.Errorf("missing scripts/payload.json: %w", err)
	}
	if _, err := os.Stat(b.lua); err != nil {
		return nil, fmt.Errorf("missing scripts/post.lua: %w", err)
	}
	b.res.parcels = bytes.Count(payload, []byte(`"id"`))
	if b.res.parcels == 0 {
		return nil, errors.New("scripts/payload.json holds no parcels")
	}
	if cfg.baselineRef != "" {
		if err := b.resolveBaseline(); err != nil {
			return nil, err
		}
	}

	if _, err := exec.LookPath("go"); err != nil {
		return nil, errors.New("go is missing: install Go (https://go.dev/dl/)")
	}
	if b.wrk, err = tools.Wrk(os.Stdout); err != nil {
		return nil, err
	}
	if b.hey, err = tools.GoTool("hey", tools.HeyPackage, os.Stderr); err != nil {
		return nil, err
	}
	if b.vegeta, err = tools.GoTool("vegeta", tools.VegetaPackage, os.Stderr); err != nil {
		return nil, err
	}
	// Failing to install nats-server fails the nats runs (see the sink
	// section), not the whole benchmark.
	if b.res.natsRuns > 0 {
		if b.natsServer, err = tools.GoTool("nats-server", tools.NatsServerPackage, os.Stderr); err != nil {
			b.natsServerErr = "nats-server is missing and could not be installed (go install " + tools.NatsServerPackage + ")"
		}
	}

	if b.work, err = os.MkdirTemp(os.Getenv("TMPDIR"), "fastingest-bench."); err != nil {
		return b, err
	}
	if b.raw, err = os.Create(filepath.Join(b.work, "raw.txt")); err != nil {
		return b, err
	}
	b.res.stamp = time.Now().Format("2006-01-02-150405")
	b.outPath = cfg.out
	if b.outPath == "" {
		if cfg.smoke {
			b.outPath = filepath.Join(os.TempDir(), "fastingest-bench-smoke-"+b.res.stamp+".txt")
		} else {
			b.outPath = filepath.Join(root, "benchmarks", "results", b.res.stamp+".txt")
		}
	}
	if err := os.MkdirAll(filepath.Dir(b.outPath), 0o755); err != nil {
		return b, err
	}
	if b.out, err = os.Create(b.outPath); err != nil {
		return b, err
	}
	b.hz = clockTicks()
	if cfg.unpinned {
		b.pin = unpinnedPlan(runtime.NumCPU())
	} else {
		b.pin = machinePinning()
	}
	b.res.pinning, b.res.natsPinning = b.pin.text, b.pin.natsText
	return b, nil
}

// note prints lines and keeps them in the results file.
func (b *bench) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...) + "\n"
	fmt.Print(s)
	b.appendOut(s)
}

// appendOut writes to the results file only.
func (b *bench) appendOut(s string) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	if b.out != nil {
		_, _ = io.WriteString(b.out, s)
	}
}

// rawLog appends a tool's or a server's output to the raw output.
func (b *bench) rawLog(header string, body []byte) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	if b.raw == nil {
		return
	}
	fmt.Fprintf(b.raw, "-- %s\n", header)
	_, _ = b.raw.Write(body)
	if len(body) > 0 && body[len(body)-1] != '\n' {
		_, _ = b.raw.Write([]byte("\n"))
	}
}

// warn reports a problem that makes the figures doubtful: the run goes on,
// and ends with a non-zero status.
func (b *bench) warn(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: warning: %s\n", fmt.Sprintf(format, args...))
	b.failures++
}

// notice reports something worth knowing that does not fail the run.
func notice(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: note: %s\n", fmt.Sprintf(format, args...))
}

// cleanup stops every process still running, appends the raw output to the
// results file and removes the work directory. Safe to call twice and from
// the signal handler.
func (b *bench) cleanup() {
	b.cleaned.Do(func() {
		b.procs.stopAll()
		b.outMu.Lock()
		defer b.outMu.Unlock()
		if b.raw != nil && b.out != nil {
			if fi, err := b.raw.Stat(); err == nil && fi.Size() > 0 {
				_, _ = io.WriteString(b.out, "\n== raw tool output\n")
				if _, err := b.raw.Seek(0, io.SeekStart); err == nil {
					_, _ = io.Copy(b.out, b.raw)
				}
			}
		}
		if b.raw != nil {
			b.raw.Close()
			b.raw = nil
		}
		if b.out != nil {
			// A run that failed before its first line leaves no empty
			// results file behind.
			if fi, err := b.out.Stat(); err == nil && fi.Size() == 0 {
				os.Remove(b.outPath)
			}
			b.out.Close()
			b.out = nil
		}
		if b.work != "" {
			os.RemoveAll(b.work)
		}
	})
}

// header writes what the figures depend on: commit, machine, load, pinning,
// settings, tools.
func (b *bench) header() {
	b.res.commit = commitOf(b.root)
	kind := ""
	if b.cfg.smoke {
		kind = " (SMOKE: checks the harness; the figures mean nothing)"
	}
	payload, _ := os.Stat(b.payload)
	load, load1 := loadAverage()
	b.note("fastingest benchmark %s%s", b.res.stamp, kind)
	b.note("commit %s; %s", b.res.commit, machineLine())
	b.note("load average before: %s", load)
	b.note("%s", b.pin.text)
	b.note("rounds %d, duration %s, warm-up %s, %d connections, payload %d parcels (%d bytes)",
		b.cfg.rounds, b.cfg.duration, b.cfg.warmUp, b.cfg.conns, b.res.parcels, payload.Size())
	b.note("wrk %s; hey %s; vegeta %s", b.wrk, b.hey, b.vegeta)
	if b.res.baseline != "" {
		subject := "?"
		if out, err := exec.Command("git", "-C", b.root, "log", "-1", "--date=short", "--format=%cd %s", b.baselineSHA).Output(); err == nil {
			subject = strings.TrimSpace(string(out))
			if r := []rune(subject); len(r) > 80 {
				subject = string(r[:77]) + "..."
			}
		}
		b.note("baseline: %s = %s = %s (%s), in the wrk rounds only", b.res.baseline, b.cfg.baselineRef, b.baselineSHA, subject)
	}
	if len(b.cfg.sinks) > 0 {
		b.note("sink runs: %s; SINK_RETAIN_MIB %d", strings.Join(b.cfg.sinks, " "), b.cfg.sinkRetainMiB)
		if b.res.natsRuns > 0 {
			if b.natsServer != "" {
				version := "?"
				if out, err := exec.Command(b.natsServer, "--version").CombinedOutput(); err == nil {
					version, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
				}
				b.note("nats-server %s (%s); %s", b.natsServer, version, b.pin.natsText)
			} else {
				b.note("nats-server: %s", b.natsServerErr)
			}
		}
	}
	if load1 > 0.5 {
		notice("the 1-minute load average is %.2f: if something else is running, figures will be noisy", load1)
	}
}
