package main

import (
	"math"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

// measurement is what one measured wrk run gives. A figure that is missing
// is NaN.
type measurement struct {
	requests      int64
	rps           float64
	p50, p99      float64 // ms
	p75, p90      float64 // ms
	rssMiB        float64 // peak, VmHWM
	cpuUS         float64 // server CPU per request
	util, gen     float64 // server's and wrk's CPU, % of one core
	coCPU, coUtil float64 // nats-server's over the same run (sink runs)
}

// row is one measured run in a table of rounds: a server (the wrk rounds) or
// a sink run.
type row struct {
	name  string
	round int
	measurement
	storedMiB float64 // sink runs: bytes written (NaN: none)
	parcels   int64   // sink runs: parcels stored (-1: none)
}

// sinkFailure is a sink run that failed or was not run in a round.
type sinkFailure struct {
	run    string
	round  int
	reason string
}

// heyRow is the one hey run of a server.
type heyRow struct {
	name     string
	rps, p99 float64
}

// vegetaResult is the constant-rate run.
type vegetaResult struct {
	summary, verdict string  // as printed
	p50, p99, p999   float64 // ms, exact from the results
}

// results is everything a run measured and the settings its tables quote:
// what the summary, the results file and the charts are made from.
type results struct {
	stamp, commit string
	smoke         bool
	pinning       string
	natsPinning   string
	rounds        int
	duration      string
	conns         int
	parcels       int
	baseline      string // fastingest@<short sha>, "" without --baseline-ref
	baselineRef   string
	servers       []string // of the wrk rounds, in order
	rows          []row
	hey           []heyRow
	vegeta        *vegetaResult
	vegetaCPU     float64 // fastingest's CPU per request at the constant rate, us
	rate          int
	vegetaWorkers int
	sim           string // the SINK=sim summary
	simSettings   string // MAX_WORKERS=6000 MAX_QUEUE=10000 SIM_LATENCY=5ms-55ms
	sinkRuns      []string
	natsRuns      int
	sinkRows      []row
	sinkFailures  []sinkFailure
	natsRSS       string // nats-server's peak RSS over the sink section, MiB
	kfakeRSS      string // kfake's, MiB
}

// figure returns one figure of a row by its column name in the tables.
func (r *row) figure(col string) float64 {
	switch col {
	case "req/s":
		return r.rps
	case "p50_ms":
		return r.p50
	case "p75_ms":
		return r.p75
	case "p90_ms":
		return r.p90
	case "p99_ms":
		return r.p99
	case "peak_rss_mib":
		return r.rssMiB
	case "cpu_us_per_req":
		return r.cpuUS
	case "server_cpu_pct":
		return r.util
	case "wrk_cpu_pct":
		return r.gen
	case "nats_cpu_us_per_req":
		return r.coCPU
	case "nats_cpu_pct":
		return r.coUtil
	case "stored_mib":
		return r.storedMiB
	}
	panic("unknown column " + col)
}

// median returns the median of a column over the rows of one server or run.
func median(rows []row, name, col string) float64 {
	var xs []float64
	for i := range rows {
		if rows[i].name == name {
			xs = append(xs, rows[i].figure(col))
		}
	}
	return stats.Median(xs)
}

// roundFigure returns a column of one round of a server or run; NaN if that
// round has no row.
func roundFigure(rows []row, name string, round int, col string) float64 {
	for i := range rows {
		if rows[i].name == name && rows[i].round == round {
			return rows[i].figure(col)
		}
	}
	return math.NaN()
}

// count returns how many rows a server or run has.
func count(rows []row, name string) int {
	n := 0
	for i := range rows {
		if rows[i].name == name {
			n++
		}
	}
	return n
}

// set sets a figure by its column name.
func (r *row) set(col string, v float64) {
	switch col {
	case "req/s":
		r.rps = v
	case "p50_ms":
		r.p50 = v
	case "p75_ms":
		r.p75 = v
	case "p90_ms":
		r.p90 = v
	case "p99_ms":
		r.p99 = v
	case "peak_rss_mib":
		r.rssMiB = v
	case "cpu_us_per_req":
		r.cpuUS = v
	case "server_cpu_pct":
		r.util = v
	case "wrk_cpu_pct":
		r.gen = v
	case "nats_cpu_us_per_req":
		r.coCPU = v
	case "nats_cpu_pct":
		r.coUtil = v
	case "stored_mib":
		r.storedMiB = v
	}
}

// missing returns a measurement with every figure missing.
func missing() measurement {
	n := math.NaN()
	return measurement{requests: 0, rps: n, p50: n, p75: n, p90: n, p99: n, rssMiB: n, cpuUS: n, util: n, gen: n, coCPU: n, coUtil: n}
}
