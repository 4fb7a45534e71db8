package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// The columns of the tables of rounds in a results file, in order. p75 and
// p90 came last, after bench.sh's columns, so that a column keeps its place.
var (
	wrkColumns  = []string{"server", "round", "req/s", "p50_ms", "p99_ms", "peak_rss_mib", "cpu_us_per_req", "server_cpu_pct", "wrk_cpu_pct", "requests", "p75_ms", "p90_ms"}
	sinkColumns = []string{"run", "round", "req/s", "p50_ms", "p99_ms", "peak_rss_mib", "cpu_us_per_req", "server_cpu_pct", "wrk_cpu_pct", "requests", "nats_cpu_us_per_req", "nats_cpu_pct", "stored_mib", "parcels_stored", "p75_ms", "p90_ms"}
)

// precision is the decimals a column is written with.
var precision = map[string]int{
	"req/s": 1, "p50_ms": 3, "p75_ms": 3, "p90_ms": 3, "p99_ms": 3, "peak_rss_mib": 1, "cpu_us_per_req": 2,
	"server_cpu_pct": 0, "wrk_cpu_pct": 0, "nats_cpu_us_per_req": 2, "nats_cpu_pct": 0, "stored_mib": 1,
}

// fixed writes v with prec decimals, "-" for a missing figure.
func fixed(v float64, prec int) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// writeTable writes rows as a tab-separated table with a header line.
func writeTable(w io.Writer, cols []string, rows []row) {
	fmt.Fprintln(w, strings.Join(cols, "\t"))
	for i := range rows {
		r := &rows[i]
		cells := make([]string, len(cols))
		for j, c := range cols {
			switch c {
			case "server", "run":
				cells[j] = r.name
			case "round":
				cells[j] = strconv.Itoa(r.round)
			case "requests":
				cells[j] = strconv.FormatInt(r.requests, 10)
			case "parcels_stored":
				cells[j] = "-"
				if r.parcels >= 0 {
					cells[j] = strconv.FormatInt(r.parcels, 10)
				}
			default:
				cells[j] = fixed(r.figure(c), precision[c])
			}
		}
		fmt.Fprintln(w, strings.Join(cells, "\t"))
	}
}

// parseTable reads a table writeTable wrote (or bench.sh, which had fewer
// columns) from its header line on, until a line that is not a row.
func parseTable(lines []string) ([]row, error) {
	if len(lines) == 0 {
		return nil, nil
	}
	cols := strings.Split(lines[0], "\t")
	var rows []row
	for _, line := range lines[1:] {
		cells := strings.Split(line, "\t")
		if len(cells) != len(cols) {
			break
		}
		r := row{measurement: missing(), storedMiB: math.NaN(), parcels: -1}
		for j, c := range cols {
			v := cells[j]
			var err error
			switch c {
			case "server", "run":
				r.name = v
			case "round":
				r.round, err = strconv.Atoi(v)
			case "requests":
				r.requests, err = strconv.ParseInt(v, 10, 64)
			case "parcels_stored":
				if v != "-" {
					r.parcels, err = strconv.ParseInt(v, 10, 64)
				}
			default:
				if _, known := precision[c]; !known {
					continue // a column of a later version
				}
				f := math.NaN()
				if v != "-" {
					f, err = strconv.ParseFloat(v, 64)
				}
				r.set(c, f)
			}
			if err != nil {
				return rows, fmt.Errorf("column %s of %q: %w", c, line, err)
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}
