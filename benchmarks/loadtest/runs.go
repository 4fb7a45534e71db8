package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
	"github.com/fastingest/fastingest/benchmarks/internal/tools"
)

// figures is one tool's run, as the summary shows it. Latencies in ms.
type figures struct {
	tool               string
	requests           int64
	rps                float64
	p50, p90, p99      float64
	non2xx, errorCount int64
}

// runTool runs a load generator for the run's duration and a minute at
// most, its output shown as it comes, and returns that output.
func (lt *loadtest) runTool(path string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(lt.cfg.durSec+60)*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "PAYLOAD="+lt.payload) // read by post.lua
	cmd.Stdout = io.MultiWriter(os.Stdout, &out)
	cmd.Stderr = cmd.Stdout
	err := cmd.Run()
	return out.Bytes(), err
}

func (lt *loadtest) runWrk() {
	wrk, err := tools.Wrk(os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v\n", err)
		lt.problem("wrk skipped: not installed")
		return
	}
	c := lt.cfg
	fmt.Printf("\n== wrk: %s -t%d -c%d -d%s --latency -s scripts/post.lua %s\n", wrk, c.threads, c.conns, c.duration, c.url)
	out, err := lt.runTool(wrk, "-t"+strconv.Itoa(c.threads), "-c"+strconv.Itoa(c.conns), "-d"+c.duration, "--latency", "-s", lt.lua, c.url)
	if err != nil {
		lt.problem("wrk failed: %v", err)
		return
	}
	w, err := stats.ParseWrk(string(out))
	if err != nil {
		lt.problem("wrk: %v", err)
		return
	}
	lt.report(figures{tool: "wrk", requests: w.Requests, rps: w.RPS, p50: w.P50, p90: w.P90, p99: w.P99,
		non2xx: w.Non2xx, errorCount: w.SocketErrors})
}

func (lt *loadtest) runHey() {
	hey, err := tools.GoTool("hey", tools.HeyPackage, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loadtest: %v (then it is in $(go env GOPATH)/bin)\n", err)
		lt.problem("hey skipped: not installed")
		return
	}
	c := lt.cfg
	fmt.Printf("\n== hey: %s -z %s -c %d -m POST -T application/json -D %s %s\n", hey, c.duration, c.conns, lt.payload, c.url)
	out, err := lt.runTool(hey, "-z", c.duration, "-c", strconv.Itoa(c.conns), "-m", "POST", "-T", "application/json",
		"-D", lt.payload, c.url)
	if err != nil {
		lt.problem("hey failed: %v", err)
		return
	}
	h, err := stats.ParseHey(string(out))
	if err != nil {
		lt.problem("hey: %v", err)
		return
	}
	lt.report(figures{tool: "hey", requests: h.Requests(), rps: h.RPS, p50: h.P50, p90: h.P90, p99: h.P99,
		non2xx: h.Non2xx, errorCount: h.Errors})
}

// report prints a tool's figures and keeps its row for the summary.
func (lt *loadtest) report(f figures) {
	line, row := formatFigures(f, lt.parcels)
	fmt.Println(line)
	lt.rows = append(lt.rows, row)
	switch {
	case f.requests == 0:
		lt.problem("%s: no request completed", f.tool)
	case f.non2xx > 0 || f.errorCount > 0:
		lt.problem("%s: %d responses were not 2xx and %d requests failed: the figures include them", f.tool, f.non2xx, f.errorCount)
	}
}

// formatFigures returns a tool's line and its row of the summary table.
func formatFigures(f figures, parcels int) (line, row string) {
	perMin := fmt.Sprintf("%.0f", f.rps*60)
	ms := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.3f", v)
	}
	line = fmt.Sprintf("%s: %d requests, %.1f req/s = %s requests/min (%.0f parcels/min); latency p50 %s ms, p90 %s ms, p99 %s ms; not 2xx: %d, errors: %d",
		f.tool, f.requests, f.rps, perMin, f.rps*60*float64(parcels), ms(f.p50), ms(f.p90), ms(f.p99), f.non2xx, f.errorCount)
	row = fmt.Sprintf("%-4s %12d %14s %10s %10s %10s %9d %8d", f.tool, f.requests, perMin, ms(f.p50), ms(f.p90), ms(f.p99), f.non2xx, f.errorCount)
	return line, row
}
