package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fastingest/fastingest/benchmarks/internal/svgchart"
)

// chartFile is a chart and the file it goes to.
type chartFile struct {
	name  string // servers.svg, latency.svg, sinks.svg
	chart *svgchart.Chart
}

// serverColors keeps a server's colour the same in every chart.
var serverColors = map[string]string{"fastingest": "#0072B2", "classic": "#E69F00", "noop": "#999999"}

// baselineColor is the colour of fastingest@<sha>: fastingest's, lighter.
const baselineColor = "#56B4E9"

// percentiles are the latency chart's series; their colours run from light to dark: the higher the percentile, the
// darker its bar.
var percentiles = []struct {
	name, color string
}{{"p50", "#9ecae1"}, {"p75", "#6baed6"}, {"p90", "#3182bd"}, {"p99", "#08519c"}, {"p99.9", "#08306b"}}

// buildCharts makes the charts of a run; source names its results file.
// A chart without figures (sinks with SINKS=none) is left out.
func buildCharts(r *results, source string) []chartFile {
	sub := fmt.Sprintf("%s, commit %s; wrk -t1 -c%d -d%s, medians of %d round(s)", source, or(r.commit, "unknown"), r.conns, r.duration, r.rounds)
	if r.smoke {
		sub = "SMOKE RUN, the figures mean nothing: " + sub
	}
	cs := []chartFile{{"servers.svg", serversChart(r, sub)}, {"latency.svg", latencyChart(r, sub)}}
	if len(r.sinkRows) > 0 {
		cs = append(cs, chartFile{"sinks.svg", sinksChart(r, sub)})
	}
	return cs
}

// writeCharts writes the charts into dir and returns their paths.
func writeCharts(dir string, cs []chartFile) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, c := range cs {
		p := filepath.Join(dir, c.name)
		if err := os.WriteFile(p, c.chart.SVG(), 0o644); err != nil {
			return paths, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// serversChart: req/s and CPU per request of each server, medians.
func serversChart(r *results, sub string) *svgchart.Chart {
	c := &svgchart.Chart{
		Title:    "fastingest (SINK=null) against classic and noop",
		Subtitle: sub,
		Panels: []svgchart.Panel{
			{Title: "requests per second (higher is better)", Format: thousands},
			{Title: "server CPU per request (lower is better)", Unit: "µs", Format: decimals(2)},
		},
	}
	for i, name := range r.servers {
		color := serverColors[name]
		if name == r.baseline {
			color = baselineColor
		}
		c.Series = append(c.Series, svgchart.Series{Name: name, Color: color})
		for p, col := range []string{"req/s", "cpu_us_per_req"} {
			c.Panels[p].Groups = append(c.Panels[p].Groups, svgchart.Group{Label: name,
				Bars: []svgchart.Bar{{Segments: []svgchart.Segment{{Value: median(r.rows, name, col), Series: i}}}}})
		}
	}
	f, cl, n := median(r.rows, "fastingest", "req/s"), median(r.rows, "classic", "req/s"), median(r.rows, "noop", "req/s")
	fc, nc := median(r.rows, "fastingest", "cpu_us_per_req"), median(r.rows, "noop", "cpu_us_per_req")
	c.Notes = append(c.Notes, fmt.Sprintf("fastingest: %s classic's req/s, %s noop's; CPU per request %s noop's (+%.2f µs to decode, validate and queue).",
		ratioX(f, cl), ratioX(f, n), ratioX(fc, nc), fc-nc))
	if r.baseline != "" {
		c.Notes = append(c.Notes, fmt.Sprintf("fastingest over %s, the same rounds: req/s %s, CPU per request %s.", r.baseline,
			ratioX(f, median(r.rows, r.baseline, "req/s")), ratioX(fc, median(r.rows, r.baseline, "cpu_us_per_req"))))
	}
	c.Notes = append(c.Notes, "classic: the published \"1M requests per minute\" design (net/http, encoding/json); noop: fasthttp answering 200, the ceiling.")
	return c
}

// latencyChart: each server's latency percentiles under wrk, and
// fastingest's at vegeta's constant rate.
func latencyChart(r *results, sub string) *svgchart.Chart {
	c := &svgchart.Chart{
		Title:    "Latency percentiles: saturated (wrk) and at a constant rate (vegeta)",
		Subtitle: sub,
		Legend:   true,
		Panels:   []svgchart.Panel{{Title: "latency (shorter is better)", Unit: "ms", Log: true, SeriesInLabel: true, Format: significant}},
	}
	for _, p := range percentiles {
		c.Series = append(c.Series, svgchart.Series{Name: p.name, Color: p.color})
	}
	bars := func(values ...float64) []svgchart.Bar {
		var bs []svgchart.Bar
		for i, v := range values {
			if !math.IsNaN(v) {
				bs = append(bs, svgchart.Bar{Segments: []svgchart.Segment{{Value: v, Series: i}}})
			}
		}
		return bs
	}
	panel := &c.Panels[0]
	for _, name := range r.servers {
		panel.Groups = append(panel.Groups, svgchart.Group{Label: name, Bars: bars(median(r.rows, name, "p50_ms"),
			median(r.rows, name, "p75_ms"), median(r.rows, name, "p90_ms"), median(r.rows, name, "p99_ms"))})
	}
	if v := r.vegeta; v != nil {
		label := "fastingest, vegeta"
		if r.rate > 0 {
			label = fmt.Sprintf("fastingest at %s req/s", thousands(float64(r.rate)))
		}
		panel.Groups = append(panel.Groups, svgchart.Group{Label: label,
			Bars: bars(v.p50, math.NaN(), math.NaN(), v.p99, v.p999)})
	}
	c.Notes = []string{
		fmt.Sprintf("wrk: %d connections sending as fast as each server answers; medians over the rounds.", r.conns),
		"vegeta keeps its rate while a server stalls, so its tail shows what wrk's closed loop hides.",
	}
	return c
}

// sinksChart: req/s and CPU per request of fastingest with each sink,
// nats-server's or kfake's CPU stacked on fastingest's.
func sinksChart(r *results, sub string) *svgchart.Chart {
	kafka := slices.ContainsFunc(r.sinkRuns, func(run string) bool { return strings.HasPrefix(run, "kafka-") })
	title := "fastingest's sinks: null, file and nats, each ACK mode"
	if kafka {
		title = "fastingest's sinks: null, file, nats and kafka, each ACK mode"
	}
	c := &svgchart.Chart{
		Title:    title,
		Subtitle: sub,
		Series:   []svgchart.Series{{Name: "fastingest", Color: "#0072B2"}, {Name: "nats-server", Color: "#D55E00"}},
		Legend:   r.natsRuns > 0 || kafka,
		Panels: []svgchart.Panel{
			{Title: "requests per second (× SINK=null's)", Format: thousands},
			{Title: "CPU per request", Unit: "µs", Format: decimals(1)},
		},
	}
	if kafka {
		c.Series = append(c.Series, svgchart.Series{Name: "kfake", Color: "#009E73"}) // series 2
	}
	for _, run := range r.sinkRuns {
		label := sinkLabel(run)
		if x := sinkRatio(r, run, 0); !math.IsNaN(x) && run != "null" {
			label += fmt.Sprintf(" (%.2f×)", x)
		}
		c.Panels[0].Groups = append(c.Panels[0].Groups, svgchart.Group{Label: label,
			Bars: []svgchart.Bar{{Segments: []svgchart.Segment{{Value: median(r.sinkRows, run, "req/s")}}}}})
		cpu := []svgchart.Segment{{Value: median(r.sinkRows, run, "cpu_us_per_req")}}
		if co := median(r.sinkRows, run, "nats_cpu_us_per_req"); !math.IsNaN(co) && strings.HasPrefix(run, "nats-") {
			cpu = append(cpu, svgchart.Segment{Value: co, Series: 1})
		} else if !math.IsNaN(co) && strings.HasPrefix(run, "kafka-") {
			cpu = append(cpu, svgchart.Segment{Value: co, Series: 2})
		}
		c.Panels[1].Groups = append(c.Panels[1].Groups, svgchart.Group{Label: sinkLabel(run),
			Bars: []svgchart.Bar{{Segments: cpu}}})
	}
	c.Notes = []string{"file/persisted answers once its parcels are fsynced; nats/persisted once JetStream acknowledged them."}
	if kafka {
		c.Notes = append(c.Notes, "kafka/persisted answers once the brokers acknowledged every record (acks=all); "+
			"kfake, franz-go's in-memory fake cluster, runs on the load generator's CPU, its CPU measured apart.")
	}
	if r.natsRuns > 0 && r.natsPinning != "" {
		c.Notes = append(c.Notes, "nats-server's CPU is measured apart over the same interval; "+r.natsPinning+".")
	}
	return c
}

// thousands writes a whole number with thousands separators: 74,622.
func thousands(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// decimals returns a formatter with n decimals.
func decimals(n int) func(float64) string {
	return func(v float64) string { return strconv.FormatFloat(v, 'f', n, 64) }
}

// significant writes a latency with 3 significant digits, no exponent:
// 0.255, 1.96, 106.8 (wrk's own precision).
func significant(v float64) string {
	if v >= 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	d := 2 - int(math.Floor(math.Log10(v)))
	return strconv.FormatFloat(v, 'f', max(d, 0), 64)
}
