package main

import (
	"os"
	"strings"
	"testing"
)

// readResults parses a results file of testdata.
func readResults(t *testing.T, name string) (*results, string) {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := parseResults(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("parseResults(%s): %v", name, err)
	}
	return r, string(data)
}

// newLines are the summary's lines bench.sh did not print.
var newLines = []string{"CPU per request at this rate: ", "fastingest's CPU per request is "}

// TestSummaryIsBenchSh checks that the summary is bench.sh's, figure for
// figure: the tables of rounds of two runs bench.sh made (one with a
// baseline, one with every sink), summarised again, give the summary it
// printed.
func TestSummaryIsBenchSh(t *testing.T) {
	for _, name := range []string{"baseline-run.txt", "full-run.txt"} {
		r, file := readResults(t, name)
		_, want, ok := strings.Cut(file, "\n== summary:")
		if !ok {
			t.Fatalf("%s has no summary", name)
		}
		want = "\n== summary:" + strings.TrimRight(want, "\n") + "\n"

		var sb strings.Builder
		writeSummary(&sb, r)
		var got []string
		for line := range strings.Lines(sb.String()) {
			isNew := false
			for _, prefix := range newLines {
				isNew = isNew || strings.Contains(line, prefix)
			}
			if !isNew {
				got = append(got, line)
			}
		}
		if g := "\n" + strings.TrimLeft(strings.Join(got, ""), "\n"); g != want {
			t.Errorf("%s: the summary differs from bench.sh's.\ngot:\n%s\nwant:\n%s", name, g, want)
			gl, wl := strings.Split(g, "\n"), strings.Split(want, "\n")
			for i := range min(len(gl), len(wl)) {
				if gl[i] != wl[i] {
					t.Errorf("first difference, line %d:\ngot:  %q\nwant: %q", i, gl[i], wl[i])
					break
				}
			}
		}
	}
}

func TestSummaryNewLines(t *testing.T) {
	r, _ := readResults(t, "full-run.txt")
	var sb strings.Builder
	writeSummary(&sb, r)
	for _, want := range []string{
		"CPU per request at this rate: 1.85x fastingest's saturated figure above (24.78 against 13.38 us)",
		"nats/enqueued: fastingest's CPU per request is 6.16x SINK=null's",
		"nats/persisted: fastingest's CPU per request is 6.42x SINK=null's",
	} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, sb.String())
		}
	}
}

func TestSimSummary(t *testing.T) {
	_, file := readResults(t, "full-run.txt")
	_, section, _ := strings.Cut(file, "== SINK=sim: MAX_WORKERS=6000 MAX_QUEUE=10000 SIM_LATENCY=5ms-55ms, wrk -t1 -c64 -d10s\n")
	want, _, _ := strings.Cut(section, "\n\n")
	m := missing()
	m.rps, m.p50, m.p99, m.util, m.rssMiB = 21788, 3.06, 7.11, 85, 49.8
	if got := simSummary(&m, 6000, "5ms-55ms", 9); got != want {
		t.Errorf("simSummary:\n%s\nwant:\n%s", got, want)
	}
	if got := simSummary(&m, 6000, "fast", 9); !strings.Contains(got, "SIM_LATENCY 'fast' is not a form this harness reads") {
		t.Errorf("simSummary with an unreadable latency:\n%s", got)
	}
}

func TestSinkTargets(t *testing.T) {
	r, _ := readResults(t, "full-run.txt")
	for _, tc := range []struct {
		name   string
		change func(r *results)
		want   string
	}{
		{"as measured", func(*results) {}, "file/enqueued: 0.80 × null (target ≥ 0.7: met; per round 0.80, 0.77, 0.81)"},
		{"not met", func(r *results) {
			for i := range r.sinkRows {
				if r.sinkRows[i].name == "file-enqueued" {
					r.sinkRows[i].rps /= 2
				}
			}
		}, "file/enqueued: 0.40 × null (target ≥ 0.7: NOT met; per round 0.40, 0.38, 0.40)"},
		{"no null run", func(r *results) { r.sinkRuns = r.sinkRuns[1:] },
			"file/enqueued: not measured (SINKS must include null and file-enqueued) (target ≥ 0.7)"},
		{"every run failed", func(r *results) {
			var keep []row
			for _, x := range r.sinkRows {
				if x.name != "file-enqueued" {
					keep = append(keep, x)
				}
			}
			r.sinkRows = keep
			r.sinkFailures = []sinkFailure{{"file-enqueued", 1, "wrk failed"}}
		}, "file/enqueued: no figure, the runs failed (target ≥ 0.7)"},
	} {
		c := *r
		c.sinkRows = append([]row(nil), r.sinkRows...)
		tc.change(&c)
		var sb strings.Builder
		writeSinkTable(&sb, &c)
		if !strings.Contains(sb.String(), tc.want+"\n") {
			t.Errorf("%s: the sink table lacks %q:\n%s", tc.name, tc.want, sb.String())
		}
	}
}
