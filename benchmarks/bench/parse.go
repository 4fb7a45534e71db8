package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

var (
	stampLine    = regexp.MustCompile(`^fastingest benchmark (\S+)( \(SMOKE)?`)
	commitLine   = regexp.MustCompile(`^commit (.+?); `)
	runSettings  = regexp.MustCompile(`-c(\d+) -d(\S+)`)
	vegetaLat    = regexp.MustCompile(`latency p50 ([0-9.]+) ms, p99 ([0-9.]+) ms, p99\.9 ([0-9.]+) ms`)
	logHeader    = regexp.MustCompile(`^-- (\S+)(?: \((.+)\))? log \(`)
	vegetaRate   = regexp.MustCompile(`-rate=(\d+)/s .*-workers=(\d+) `)
	vegetaCPU    = regexp.MustCompile(`, ([0-9.]+) us/request;`)
	baselineHdr  = regexp.MustCompile(`^baseline: (\S+) = (.+?) = [0-9a-f]+ `)
	simHeader    = regexp.MustCompile(`^== SINK=sim: (.+), wrk `)
	payloadLine  = regexp.MustCompile(`, payload (\d+) parcels \(`)
	natsRSSLine  = regexp.MustCompile(`^nats-server peak RSS over the section: (\S+) MiB$`)
	kfakeRSSLine = regexp.MustCompile(`^kfake peak RSS over the section: (\S+) MiB`)
)

// parseResults reads a results file this harness or bench.sh wrote: the
// figures the charts need. Sections start with "== "; the tables of rounds
// are tab-separated.
func parseResults(r io.Reader) (*results, error) {
	res := &results{}
	sections := map[string][]string{} // by the section's first word(s)
	var order []string
	var cur string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		n++
		switch {
		case n == 1:
			m := stampLine.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("not a results file of the harness: the first line is %q", line)
			}
			res.stamp, res.smoke = m[1], m[2] != ""
		case n == 2:
			if m := commitLine.FindStringSubmatch(line); m != nil {
				res.commit = m[1]
			}
		case n == 4 && cur == "":
			res.pinning = line
		case cur == "" && strings.HasPrefix(line, "nats-server ") && strings.Contains(line, "; "):
			res.natsPinning = line[strings.LastIndex(line, "; ")+2:]
		case cur == "" && payloadLine.MatchString(line):
			res.parcels, _ = strconv.Atoi(payloadLine.FindStringSubmatch(line)[1])
		case cur == "" && baselineHdr.MatchString(line):
			res.baselineRef = baselineHdr.FindStringSubmatch(line)[2]
		case strings.HasPrefix(line, "== "):
			cur = line
			order = append(order, cur)
		}
		if cur != "" && line != cur {
			sections[cur] = append(sections[cur], line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, title := range order {
		lines := sections[title]
		var err error
		switch {
		case strings.HasPrefix(title, "== wrk, every round"):
			if m := runSettings.FindStringSubmatch(title); m != nil {
				res.conns, _ = strconv.Atoi(m[1])
				res.duration = m[2]
			}
			res.rows, err = parseTable(lines)
		case strings.HasPrefix(title, "== sinks, every round"):
			res.sinkRows, err = parseTable(lines)
			for i := range lines {
				if lines[i] == "failed sink runs:" {
					res.sinkFailures = parseFailures(lines[i+1:])
				}
			}
		case strings.HasPrefix(title, "== hey, one run per server"):
			res.hey = parseHeyRows(lines)
		case strings.HasPrefix(title, "== vegeta attack"):
			res.vegeta = parseVegeta(lines)
			if m := vegetaRate.FindStringSubmatch(title); m != nil {
				res.rate, _ = strconv.Atoi(m[1])
				res.vegetaWorkers, _ = strconv.Atoi(m[2])
			}
			if m := vegetaCPU.FindStringSubmatch(res.vegeta.summary); m != nil {
				res.vegetaCPU, _ = strconv.ParseFloat(m[1], 64)
			}
		case simHeader.MatchString(title):
			res.simSettings = simHeader.FindStringSubmatch(title)[1]
			res.sim = strings.TrimRight(strings.Join(lines, "\n"), "\n")
		case strings.HasPrefix(title, "== summary"):
			for _, line := range lines {
				if m := natsRSSLine.FindStringSubmatch(line); m != nil {
					res.natsRSS = m[1]
				}
				if m := kfakeRSSLine.FindStringSubmatch(line); m != nil {
					res.kfakeRSS = m[1]
				}
			}
		case strings.HasPrefix(title, "== raw tool output"):
			fillPercentiles(res.rows, lines)
			fillPercentiles(res.sinkRows, lines)
		}
		if err != nil {
			return nil, fmt.Errorf("section %q: %w", title, err)
		}
	}
	if len(res.rows) == 0 {
		return nil, fmt.Errorf("the file has no table of wrk rounds")
	}
	for _, r := range res.rows {
		res.rounds = max(res.rounds, r.round)
		if r.name != "" && !slices.Contains(res.servers, r.name) {
			res.servers = append(res.servers, r.name)
		}
		if strings.HasPrefix(r.name, "fastingest@") {
			res.baseline = r.name
		}
	}
	for _, r := range res.sinkRows {
		if !slices.Contains(res.sinkRuns, r.name) {
			res.sinkRuns = append(res.sinkRuns, r.name)
		}
	}
	for _, f := range res.sinkFailures {
		if !slices.Contains(res.sinkRuns, f.run) {
			res.sinkRuns = append(res.sinkRuns, f.run)
		}
	}
	for _, run := range res.sinkRuns {
		if strings.HasPrefix(run, "nats-") {
			res.natsRuns++
		}
	}
	return res, nil
}

// parseFailures reads the table of failed sink runs.
func parseFailures(lines []string) []sinkFailure {
	var fs []sinkFailure
	for _, line := range lines[min(1, len(lines)):] { // past the header
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			break
		}
		round, _ := strconv.Atoi(f[1])
		fs = append(fs, sinkFailure{run: f[0], round: round, reason: f[2]})
	}
	return fs
}

// parseHeyRows reads the hey table: server, req/s, p99_ms.
func parseHeyRows(lines []string) []heyRow {
	var hs []heyRow
	for _, line := range lines[min(1, len(lines)):] {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			break
		}
		rps, _ := strconv.ParseFloat(f[1], 64)
		p99, _ := strconv.ParseFloat(f[2], 64)
		hs = append(hs, heyRow{name: f[0], rps: rps, p99: p99})
	}
	return hs
}

// parseVegeta reads the vegeta section: summary, verdict and percentiles.
func parseVegeta(lines []string) *vegetaResult {
	v := &vegetaResult{p50: math.NaN(), p99: math.NaN(), p999: math.NaN()}
	var text []string
	for _, line := range lines {
		if line == "" || strings.HasPrefix(line, "report: ") {
			continue
		}
		text = append(text, line)
		if m := vegetaLat.FindStringSubmatch(line); m != nil {
			v.p50, _ = strconv.ParseFloat(m[1], 64)
			v.p99, _ = strconv.ParseFloat(m[2], 64)
			v.p999, _ = strconv.ParseFloat(m[3], 64)
		}
	}
	if len(text) >= 3 {
		v.summary, v.verdict = strings.Join(text[:2], "\n"), text[2]
	}
	return v
}

// fillPercentiles fills in p75 and p90 of rows that have none (a file of
// bench.sh, whose tables kept p50 and p99 only) from the raw output: each
// measured wrk run (--latency) is followed by the log of the server it
// measured, "-- NAME log" or "-- fastingest (file/enqueued) log", and the
// k-th of a server's runs is its k-th row. Nothing is filled for a server
// whose counts differ.
func fillPercentiles(rows []row, raw []string) {
	type lat struct{ p75, p90 float64 }
	runs := map[string][]lat{}
	var pending []string
	inWrk := false
	for _, line := range raw {
		if strings.HasPrefix(line, "-- ") {
			if m := logHeader.FindStringSubmatch(line); m != nil {
				if pending != nil {
					name := m[1]
					if m[2] != "" { // a sink run: "fastingest (file/enqueued)"
						name = strings.Replace(m[2], "/", "-", 1)
					}
					if w, err := stats.ParseWrk(strings.Join(pending, "\n")); err == nil {
						runs[name] = append(runs[name], lat{w.P75, w.P90})
					}
				}
				pending, inWrk = nil, false
				continue
			}
			inWrk = strings.Contains(line, "wrk ") && strings.Contains(line, " --latency ")
			pending = nil
			if inWrk {
				pending = []string{}
			}
			continue
		}
		if inWrk {
			pending = append(pending, line)
		}
	}
	for name, ls := range runs {
		if count(rows, name) != len(ls) {
			continue
		}
		k := 0
		for i := range rows {
			if rows[i].name != name {
				continue
			}
			if math.IsNaN(rows[i].p75) {
				rows[i].p75 = ls[k].p75
			}
			if math.IsNaN(rows[i].p90) {
				rows[i].p90 = ls[k].p90
			}
			k++
		}
	}
}
