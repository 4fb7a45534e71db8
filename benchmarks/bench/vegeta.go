package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

// vegetaRun runs fastingest (SINK=null) at a constant rate with vegeta: wrk
// and hey stop sending while a server stalls and so hide tail latency;
// vegeta keeps the rate.
//
// vegeta's default, unbounded workers, collapses when vegeta has one CPU: on
// a hiccup it starts workers, each dialling a new connection, which costs
// more CPU, so it falls further behind (measured: 1,219 req/s sent of
// 16,667, 8,221 connections, p50 8.5 s, the server 7% busy). A fixed pool of
// VEGETA_WORKERS keeps the rate; if the server is too slow for it, the rate
// is not achieved and the report says so.
func (b *bench) vegetaRun() error {
	rate, workers := b.cfg.rate, strconv.Itoa(b.cfg.vegetaWorkers)
	fmt.Printf("\n== vegeta: fastingest (SINK=null) at a constant %d req/s for %s, %s workers\n", rate, b.cfg.duration, workers)
	s, err := b.start("fastingest", serverSettings("fastingest")...)
	if err != nil {
		return err
	}
	if err := b.warmUp(s, "fastingest"); err != nil {
		return err
	}
	targets := filepath.Join(b.work, "targets.txt")
	results := filepath.Join(b.work, "vegeta.bin")
	if err := os.WriteFile(targets, fmt.Appendf(nil, "POST %s\nContent-Type: application/json\n@%s\n", s.url(), b.payload), 0o644); err != nil {
		return err
	}
	c0, err := cpuTicks(s.pid())
	if err != nil {
		return fmt.Errorf("fastingest is not running: %w", err)
	}
	t0 := time.Now()
	run, err := b.runLoad(b.runLimit(), filepath.Join(b.work, "vegeta-attack.txt"), b.vegeta, "attack",
		"-rate="+strconv.Itoa(rate)+"/s", "-duration="+b.cfg.duration, "-timeout=10s", "-workers="+workers,
		"-max-workers="+workers, "-targets="+targets, "-output="+results)
	if err != nil {
		return fmt.Errorf("vegeta attack failed (%v): %s", err, tail(run.out, 3))
	}
	elapsed := time.Since(t0).Seconds()
	c1, err := cpuTicks(s.pid())
	if err != nil || !s.alive() {
		return fmt.Errorf("fastingest exited during the vegeta run")
	}
	gen := 100 * run.cpuSec / elapsed
	b.stopServer(s, "fastingest")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reportJSON, err := exec.CommandContext(ctx, b.vegeta, "report", "-type=json", results).Output()
	if err != nil {
		return fmt.Errorf("vegeta report failed: %w", err)
	}
	report, err := stats.ParseVegetaReport(reportJSON)
	if err != nil {
		return err
	}
	// vegeta's JSON report has no p99.9 (and estimates the others), so the
	// percentiles come from the results themselves.
	encode := exec.CommandContext(ctx, b.vegeta, "encode", "-to", "csv", results)
	csv, err := encode.StdoutPipe()
	if err != nil {
		return err
	}
	if err := encode.Start(); err != nil {
		return fmt.Errorf("vegeta encode failed: %w", err)
	}
	lat, err := stats.VegetaLatencies(csv)
	if werr := encode.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("vegeta encode failed: %w", werr)
	}
	if err != nil {
		return err
	}
	if report.Requests == 0 {
		return fmt.Errorf("vegeta sent no request")
	}
	v := &vegetaResult{p50: stats.Quantile(lat, 0.5), p99: stats.Quantile(lat, 0.99), p999: stats.Quantile(lat, 0.999)}
	cpuUS, util := stats.CPUPerRequest(c1-c0, b.hz, report.Requests, elapsed)
	codes, _ := json.Marshal(report.StatusCodes)
	v.summary = fmt.Sprintf("sent %.0f req/s, successful %.0f req/s (success ratio %s, status codes %s)\n"+
		"latency p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms; server CPU %.0f%% of one core, %.2f us/request; vegeta CPU %.0f%%",
		report.Rate, report.Throughput, strconv.FormatFloat(report.Success, 'f', -1, 64), codes, v.p50, v.p99, v.p999,
		util, cpuUS, gen)
	if report.Throughput >= 0.99*float64(rate) {
		v.verdict = fmt.Sprintf("rate achieved (%.0f req/s >= 99%% of %d)", report.Throughput, rate)
	} else {
		v.verdict = fmt.Sprintf("rate NOT achieved: %.0f req/s (want >= 99%% of %d)", report.Throughput, rate)
		if util < 90 {
			v.verdict += fmt.Sprintf("; the server used only %.0f%% of its CPU (vegeta %.0f%%), so it is not the server's CPU", util, gen)
		}
	}
	if len(report.Errors) > 0 {
		errs, _ := json.Marshal(report.Errors)
		notice("vegeta errors: %.300s", errs)
	}
	b.res.vegeta, b.res.vegetaCPU = v, cpuUS
	fmt.Println(v.summary)
	fmt.Println(v.verdict)
	b.appendOut(fmt.Sprintf("\n== vegeta attack -rate=%d/s -duration=%s -workers=%s -max-workers=%s against fastingest (SINK=null)\n%s\n%s\nreport: %s\n",
		rate, b.cfg.duration, workers, workers, v.summary, v.verdict, compactJSON(reportJSON)))
	return nil
}

// compactJSON returns JSON on one line.
func compactJSON(data []byte) []byte {
	var buf bytes.Buffer
	if json.Compact(&buf, data) != nil {
		return bytes.TrimSpace(data)
	}
	return buf.Bytes()
}
