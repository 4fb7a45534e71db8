package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

const usageText = `Usage: go run ./benchmarks/bench [--rounds N] [--out FILE] [--smoke]
                                 [--baseline-ref REF] [--charts DIR]
       go run ./benchmarks/bench --charts-from FILE [--charts DIR]
(bash scripts/bench.sh takes the same arguments)

Benchmarks fastingest (SINK=null) against the classic "1M requests per minute"
design and a no-op fasthttp server, with wrk (medians over N interleaved
rounds), hey (one run per server), vegeta (constant 1M requests/min) and a
SINK=sim run; then fastingest's sinks (null, file, nats and kafka, each ACK
mode) with wrk, medians over N interleaved rounds. Prints the tables, writes
them with every round and the tools' raw output to a results file, and draws
SVG charts of them. Starts a local nats-server for the nats runs, and
benchmarks/kfake (franz-go's fake Kafka cluster, one broker, on the load
generator's CPU) for the kafka runs. Installs what is
missing: wrk with apt-get (as root), hey, vegeta and nats-server with
go install. Sends traffic to 127.0.0.1 only.

  --rounds N   interleaved wrk rounds per server (default 3)
  --out FILE   where to write every round's raw figures
               (default benchmarks/results/<date>-<time>.txt; with --smoke,
               a file in ${TMPDIR:-/tmp}). Commit only the results files that
               benchmarks/RESULTS.md quotes
  --smoke      every run for 1 second, 1 round: checks that the harness
               works (for CI), not the figures; exits non-zero on any failure
  --baseline-ref REF
               also measure fastingest as of git revision REF (a commit,
               branch or tag: HEAD~3, main, v1.2) in the wrk rounds, as
               fastingest@<short sha>, interleaved with the others and
               started exactly like the working tree's (SINK=null, the same
               environment and CPU, no flags); the summary shows the
               working tree's req/s and CPU/request over its (medians and
               per round). REF's tree is exported with git archive into the
               work directory and built there; needs a git checkout. Not
               used by the hey, vegeta, SINK=sim and sink runs
  --charts DIR where to write the charts, servers.svg, latency.svg and
               sinks.svg (default: benchmarks, next to RESULTS.md; with
               --smoke, a directory in ${TMPDIR:-/tmp}). A chart without
               figures in the run (sinks.svg with SINKS=none) is not written
  --charts-from FILE
               run nothing: draw the charts of a results file this harness
               (or scripts/bench.sh before it) wrote

Environment: BASELINE_REF (as --baseline-ref; the option wins),
DURATION (default 10s: Ns, Nm or Nh), CONNS (default 64),
RATE (default 16667 requests/s), VEGETA_WORKERS (default 64),
SIM_WORKERS (default 6000), SIM_QUEUE (default 10000),
SIM_LATENCY (default 5ms-55ms),
SINKS (default "null file-enqueued file-persisted file+s3-enqueued
  nats-enqueued nats-persisted kafka-enqueued kafka-persisted": the sink
  runs, in this order; "none" for none; file+s3 ships closed segments to
  moto's S3 server),
SINK_RETAIN_MIB (default 512: a file run's RETAIN_BYTES, a nats run's
  stream max_bytes and a kafka run's topic retention.bytes, in MiB, so
  that a long run cannot fill the disk or kfake's memory),
PIN (default on; off: servers on every CPU with GOMAXPROCS unset,
  sharing them with the load generators, for context beside the
  pinned figures).
`

// config is what the command line and the environment ask for.
type config struct {
	rounds      int
	out         string // results file; empty: the default
	smoke       bool
	baselineRef string
	charts      string // charts directory; empty: the default
	chartsFrom  string // a results file to draw, running nothing

	duration      string // as the tools take it: 10s
	durSec        int
	warmUp        string
	conns         int
	rate          int
	vegetaWorkers int
	simWorkers    int
	simQueue      int
	simLatency    string
	sinks         []string // the sink runs, in order
	sinkRetainMiB int
	// unpinned (PIN=off) lets the servers use every CPU (GOMAXPROCS
	// unset), shared with the load generators, for context beside the
	// pinned figures.
	unpinned bool
}

// natsRuns returns how many of the sink runs need nats-server.
func (c *config) natsRuns() int {
	n := 0
	for _, r := range c.sinks {
		if strings.HasPrefix(r, "nats-") {
			n++
		}
	}
	return n
}

// kafkaRuns returns how many of the sink runs need kfake.
func (c *config) kafkaRuns() int {
	n := 0
	for _, r := range c.sinks {
		if strings.HasPrefix(r, "kafka-") {
			n++
		}
	}
	return n
}

// sinkRunNames are the runs SINKS may name, in the default order.
var sinkRunNames = []string{"null", "file-enqueued", "file-persisted", "file+s3-enqueued", "nats-enqueued", "nats-persisted",
	"kafka-enqueued", "kafka-persisted"}

// errUsage is a usage error: the usage goes to stderr with it.
var errUsage = errors.New("usage")

var positive = regexp.MustCompile(`^[1-9][0-9]*$`)

// parseConfig reads the arguments and the environment (getenv), with the
// defaults and checks bench.sh had. flag.ErrHelp asks for the usage; an error
// wrapping errUsage is a wrong argument.
func parseConfig(args []string, getenv func(string) string) (config, error) {
	c := config{
		baselineRef:   getenv("BASELINE_REF"),
		warmUp:        "1s",
		simLatency:    or(getenv("SIM_LATENCY"), "5ms-55ms"),
		duration:      or(getenv("DURATION"), "10s"),
		sinkRetainMiB: 512,
	}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	rounds := fs.String("rounds", "3", "")
	fs.StringVar(&c.out, "out", "", "")
	fs.BoolVar(&c.smoke, "smoke", false, "")
	fs.StringVar(&c.baselineRef, "baseline-ref", c.baselineRef, "")
	fs.StringVar(&c.charts, "charts", "", "")
	fs.StringVar(&c.chartsFrom, "charts-from", "", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("%w: unknown argument: %s", errUsage, fs.Arg(0))
	}
	if !positive.MatchString(*rounds) {
		return c, fmt.Errorf("--rounds wants a positive integer, not '%s'", *rounds)
	}
	c.rounds, _ = strconv.Atoi(*rounds)
	if strings.HasPrefix(c.baselineRef, "-") {
		return c, fmt.Errorf("--baseline-ref wants a git revision, not '%s'", c.baselineRef)
	}
	if c.chartsFrom != "" {
		return c, nil // runs nothing: the rest does not matter
	}

	for _, v := range []struct {
		name string
		def  int
		dst  *int
	}{
		{"CONNS", 64, &c.conns},
		{"RATE", 16667, &c.rate},
		{"VEGETA_WORKERS", 64, &c.vegetaWorkers},
		{"SIM_WORKERS", 6000, &c.simWorkers},
		{"SIM_QUEUE", 10000, &c.simQueue},
		{"SINK_RETAIN_MIB", 512, &c.sinkRetainMiB},
	} {
		s := getenv(v.name)
		if s == "" {
			*v.dst = v.def
			continue
		}
		n, err := strconv.Atoi(s)
		if !positive.MatchString(s) || err != nil {
			return c, fmt.Errorf("%s wants a positive integer, not '%s'", v.name, s)
		}
		*v.dst = n
	}
	switch getenv("PIN") {
	case "", "on":
	case "off":
		c.unpinned = true
	default:
		return c, fmt.Errorf("PIN wants on or off, not '%s'", getenv("PIN"))
	}
	if c.sinkRetainMiB < 4 {
		return c, errors.New("SINK_RETAIN_MIB must be at least 4 (a file run's segments are a quarter of it)")
	}
	sinks := getenv("SINKS")
	if sinks == "" {
		sinks = strings.Join(sinkRunNames, " ")
	}
	for _, r := range strings.Fields(sinks) {
		if slices.Contains(c.sinks, r) {
			return c, fmt.Errorf("SINKS names '%s' twice", r)
		}
		switch {
		case r == "none":
		case slices.Contains(sinkRunNames, r):
			c.sinks = append(c.sinks, r)
		default:
			return c, fmt.Errorf("SINKS: unknown run '%s' (want %s or none)", r, strings.Join(sinkRunNames, ", "))
		}
	}
	if c.smoke {
		c.duration, c.rounds = "1s", 1
	}
	sec, err := stats.Seconds(c.duration)
	if err != nil {
		return c, fmt.Errorf("DURATION wants Ns, Nm or Nh (e.g. 10s), not '%s'", c.duration)
	}
	if sec == 0 {
		return c, errors.New("DURATION must be at least 1s")
	}
	c.durSec = sec
	return c, nil
}

// or returns s, or def when s is empty.
func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
