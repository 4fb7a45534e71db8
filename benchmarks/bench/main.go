// Command bench measures fastingest against the servers it must be judged
// by, on any Linux machine with Go:
//
//	classic     the published "Handling 1 Million Requests per Minute with Go"
//	            design (net/http, encoding/json, a goroutine per job): the
//	            baseline users would otherwise deploy (benchmarks/classic)
//	noop        fasthttp reading the body and answering 200: the ceiling
//	            (benchmarks/noop)
//	fastingest  this repository, with SINK=null so that the ingest path is
//	            what is measured
//
// The servers run interleaved (fastingest classic noop, fastingest ...) for
// --rounds rounds under wrk; the table shows medians. With --baseline-ref
// REF, fastingest as of git revision REF (exported with git archive into the
// work directory, built like the working tree's) runs in those rounds too,
// right after fastingest and started exactly like it, and the summary gives
// the working tree's req/s and CPU per request over its: the check that a
// change costs the request path nothing measurable. Then: one hey run per
// server (a second, independent client), a constant-rate vegeta run against
// fastingest at 1M requests/min, a SINK=sim run that checks the worker
// arithmetic behind 1M requests/min, and the sinks (null, file and nats in
// each ACK mode, interleaved the same way).
//
// With 2 or more CPUs each server runs on one CPU with GOMAXPROCS=1 and the
// load generators on another (taskset), so that figures compare servers, not
// scheduling. CPU per request is the server's user + system time from
// /proc/PID/stat over the run, divided by the requests wrk completed.
//
// It writes the tables, every round and the tools' raw output to a results
// file, and draws the tables as SVG charts next to benchmarks/RESULTS.md.
// The load generators stay external tools, installed when missing (wrk with
// apt-get, hey, vegeta and nats-server with go install); what the harness
// computes from their output lives in benchmarks/internal/stats, unit-tested.
//
// Usage: go run ./benchmarks/bench -h (scripts/bench.sh runs it).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fastingest/fastingest/benchmarks/internal/tools"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// run runs the harness and returns the exit status: 0, or 1 when something
// failed or a figure may not be trustworthy.
func run(args []string) int {
	cfg, err := parseConfig(args, os.Getenv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Print(usageText)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprint(os.Stderr, usageText)
		fmt.Fprintf(os.Stderr, "bench: %s\n", strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 1
	case err != nil:
		return fail(err)
	}
	root, err := tools.RepoRoot()
	if err != nil {
		return fail(err)
	}
	if cfg.chartsFrom != "" {
		return drawFrom(cfg, root)
	}

	b, err := newBench(cfg, root)
	if err != nil {
		if b != nil {
			b.cleanup()
		}
		return fail(err)
	}
	// On SIGINT or SIGTERM: stop every process started, keep what was
	// measured, and exit as a shell would.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		b.cleanup()
		if sig == syscall.SIGINT {
			os.Exit(130)
		}
		os.Exit(143)
	}()

	err = b.run()
	b.cleanup()
	if err != nil {
		return fail(err)
	}
	if b.failures > 0 {
		return fail(fmt.Errorf("%d problem(s) above: the figures may not be trustworthy", b.failures))
	}
	return 0
}

// fail prints err and returns the exit status 1.
func fail(err error) int {
	fmt.Fprintf(os.Stderr, "bench: %v\n", err)
	return 1
}

// run builds the servers and runs every section, then prints the summary
// and draws the charts.
func (b *bench) run() error {
	if err := b.build(); err != nil {
		return err
	}
	b.header()
	for _, section := range []func() error{b.wrkRounds, b.heyRuns, b.vegetaRun, b.simRun} {
		if err := section(); err != nil {
			return err
		}
	}
	if len(b.cfg.sinks) > 0 {
		b.sinkSection()
	}
	var sb strings.Builder
	writeSummary(&sb, b.res)
	fmt.Print(sb.String())
	b.appendOut(sb.String())

	dir := b.cfg.charts
	if dir == "" {
		dir = filepath.Join(b.root, "benchmarks")
		if b.cfg.smoke {
			dir = strings.TrimSuffix(b.outPath, ".txt") + "-charts"
		}
	}
	paths, err := writeCharts(dir, buildCharts(b.res, relPath(b.root, b.outPath)))
	if err != nil {
		return fmt.Errorf("cannot write the charts: %w", err)
	}
	fmt.Printf("\nresults (every round's raw figures and tool output): %s\ncharts: %s\n", b.outPath, strings.Join(paths, " "))
	return nil
}

// relPath returns path relative to root if it is inside it: the charts name
// their results file as the repository does.
func relPath(root, path string) string {
	if rel, err := filepath.Rel(root, path); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return path
}

// drawFrom draws the charts of a results file (--charts-from), running
// nothing.
func drawFrom(cfg config, root string) int {
	f, err := os.Open(cfg.chartsFrom)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	res, err := parseResults(f)
	if err != nil {
		return fail(fmt.Errorf("%s: %w", cfg.chartsFrom, err))
	}
	dir := cfg.charts
	if dir == "" {
		dir = filepath.Join(root, "benchmarks")
	}
	abs, _ := filepath.Abs(cfg.chartsFrom)
	paths, err := writeCharts(dir, buildCharts(res, relPath(root, abs)))
	if err != nil {
		return fail(err)
	}
	fmt.Printf("charts of %s: %s\n", cfg.chartsFrom, strings.Join(paths, " "))
	return 0
}
