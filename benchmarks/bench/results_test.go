package main

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestTableRoundTrip(t *testing.T) {
	nan := math.NaN()
	m := measurement{requests: 742064, rps: 74201.34, p50: 0.86, p75: 1.24, p90: 1.47, p99: 1.99, rssMiB: 15.6,
		cpuUS: 13.4512, util: 99.6, gen: 53.2, coCPU: nan, coUtil: nan}
	nats := m
	nats.coCPU, nats.coUtil = 73.91, 78
	rows := []row{
		{name: "null", round: 1, measurement: m, storedMiB: nan, parcels: -1},
		{name: "nats-enqueued", round: 1, measurement: nats, storedMiB: 222.46, parcels: 1071045},
	}
	var sb strings.Builder
	writeTable(&sb, sinkColumns, rows)
	want := strings.Join(sinkColumns, "\t") + "\n" +
		"null\t1\t74201.3\t0.860\t1.990\t15.6\t13.45\t100\t53\t742064\t-\t-\t-\t-\t1.240\t1.470\n" +
		"nats-enqueued\t1\t74201.3\t0.860\t1.990\t15.6\t13.45\t100\t53\t742064\t73.91\t78\t222.5\t1071045\t1.240\t1.470\n"
	if sb.String() != want {
		t.Fatalf("writeTable:\n%s\nwant:\n%s", sb.String(), want)
	}
	got, err := parseTable(strings.Split(strings.TrimSuffix(sb.String(), "\n"), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("parseTable: %d rows, want 2", len(got))
	}
	for i, g := range got {
		w := rows[i]
		for _, col := range sinkColumns[2:] {
			if col == "requests" || col == "parcels_stored" {
				continue
			}
			gv, wv := g.figure(col), w.figure(col)
			if math.IsNaN(gv) != math.IsNaN(wv) || (!math.IsNaN(wv) && math.Abs(gv-wv) > math.Pow(10, -float64(precision[col]))) {
				t.Errorf("row %d, %s: %v, want %v", i, col, gv, wv)
			}
		}
		if g.name != w.name || g.round != w.round || g.requests != w.requests || g.parcels != w.parcels {
			t.Errorf("row %d: %+v, want %+v", i, g, w)
		}
	}
}

func TestParseTableBenchShColumns(t *testing.T) {
	// bench.sh's table: no p75 or p90, which stay missing.
	rows, err := parseTable([]string{
		"server\tround\treq/s\tp50_ms\tp99_ms\tpeak_rss_mib\tcpu_us_per_req\tserver_cpu_pct\twrk_cpu_pct\trequests",
		"noop\t2\t188672.3\t0.316\t0.672\t8.4\t5.25\t99\t98\t1886799",
		"",
		"== next section",
	})
	if err != nil || len(rows) != 1 {
		t.Fatalf("parseTable = %v, %v; want 1 row", rows, err)
	}
	r := rows[0]
	if r.name != "noop" || r.round != 2 || r.rps != 188672.3 || r.p50 != 0.316 || r.cpuUS != 5.25 || r.requests != 1886799 ||
		!math.IsNaN(r.p75) || !math.IsNaN(r.p90) || !math.IsNaN(r.storedMiB) || r.parcels != -1 {
		t.Errorf("parseTable: %+v", r)
	}
	if _, err := parseTable([]string{"server\tround\treq/s", "noop\tone\t1"}); err == nil {
		t.Error("parseTable took a round that is not a number")
	}
}

func TestParseResults(t *testing.T) {
	r, _ := readResults(t, "full-run.txt")
	if r.stamp != "2026-11-29-111453" || r.commit != "23d1810" || r.smoke || r.conns != 64 || r.duration != "10s" ||
		r.rounds != 3 || r.parcels != 9 || r.rate != 16667 || r.vegetaWorkers != 64 || r.baseline != "" || r.natsRuns != 2 ||
		r.natsRSS != "365.5" || r.natsPinning != "nats-server on CPU 1, shared with the load generator (no third CPU)" {
		t.Errorf("parseResults: %+v", r)
	}
	if want := []string{"fastingest", "classic", "noop"}; !slices.Equal(r.servers, want) {
		t.Errorf("servers %v, want %v", r.servers, want)
	}
	if want := []string{"null", "file-enqueued", "file-persisted", "nats-enqueued", "nats-persisted"}; !slices.Equal(r.sinkRuns, want) {
		t.Errorf("sink runs %v, want %v", r.sinkRuns, want)
	}
	if len(r.rows) != 9 || len(r.sinkRows) != 15 || len(r.hey) != 3 {
		t.Errorf("%d rows, %d sink rows, %d hey rows; want 9, 15, 3", len(r.rows), len(r.sinkRows), len(r.hey))
	}
	if v := r.vegeta; v == nil || v.p50 != 0.335 || v.p99 != 3.153 || v.p999 != 5.243 || r.vegetaCPU != 24.78 {
		t.Errorf("vegeta: %+v, CPU %v", v, r.vegetaCPU)
	}

	b, _ := readResults(t, "baseline-run.txt")
	if b.baseline != "fastingest@23d1810" || b.baselineRef != "23d1810" || len(b.sinkRuns) != 0 {
		t.Errorf("baseline run: baseline %q = %q, sink runs %v", b.baseline, b.baselineRef, b.sinkRuns)
	}
	if want := []string{"fastingest", "fastingest@23d1810", "classic", "noop"}; !slices.Equal(b.servers, want) {
		t.Errorf("servers %v, want %v", b.servers, want)
	}

	for _, bad := range []string{"", "hello\n", "fastingest benchmark 1\ncommit x; y\n"} {
		if _, err := parseResults(strings.NewReader(bad)); err == nil {
			t.Errorf("parseResults(%q) took it", bad)
		}
	}
}

// rawOutput is the raw output of two wrk rounds of bench.sh, cut down: a
// warm-up, a measured run, the server's log, for fastingest then a sink run.
const rawOutput = `-- /usr/bin/wrk -t1 -c64 -d1s -s post.lua http://127.0.0.1:1/  (exit status 0)
  50%    9.99ms
  1 requests in 1.00s, 1.00MB read
Requests/sec:  1.0
-- /usr/bin/wrk -t1 -c64 -d10s --latency -s post.lua http://127.0.0.1:1/  (exit status 0)
  Latency Distribution
     50%    0.86ms
     75%    1.24ms
     90%    1.47ms
     99%    2.03ms
  743324 requests in 10.00s, 104.92MB read
Requests/sec:  74329.43
-- fastingest log (exit status 0)
time=... msg="shutdown complete"
-- /root/go/bin/hey -z 10s -c 64 http://127.0.0.1:2/  (exit status 0)
  75%% in 0.0021 secs
-- fastingest log (exit status 0)
-- /usr/bin/wrk -t1 -c64 -d10s --latency -s post.lua http://127.0.0.1:3/  (exit status 0)
     50%    1.08ms
     75%    2.00ms
     90%    4.00ms
     99%    8.02ms
  592711 requests in 10.00s, 1.00MB read
Requests/sec:  59265.30
-- fastingest (file/enqueued) log (exit status 0)
`

func TestFillPercentiles(t *testing.T) {
	rows := []row{
		{name: "fastingest", round: 1, measurement: missing()},
		{name: "file-enqueued", round: 1, measurement: missing()},
		{name: "noop", round: 1, measurement: missing()}, // no run in the raw output: left alone
	}
	fillPercentiles(rows, strings.Split(rawOutput, "\n"))
	for i, want := range [][2]float64{{1.24, 1.47}, {2, 4}, {math.NaN(), math.NaN()}} {
		got := [2]float64{rows[i].p75, rows[i].p90}
		if !slices.EqualFunc(got[:], want[:], func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }) {
			t.Errorf("%s: p75, p90 = %v, want %v", rows[i].name, got, want)
		}
	}

	// Two rows, one run: which round it belongs to is unknown, so nothing.
	two := []row{{name: "fastingest", round: 1, measurement: missing()}, {name: "fastingest", round: 2, measurement: missing()}}
	fillPercentiles(two, strings.Split(rawOutput, "\n"))
	if !math.IsNaN(two[0].p75) || !math.IsNaN(two[1].p75) {
		t.Errorf("filled rows whose count differs from the runs': %+v", two)
	}
}
