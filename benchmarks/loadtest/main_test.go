package main

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      map[string]string
		want     config
		wantNote string
	}{
		{"defaults", []string{"http://127.0.0.1:8080/"}, nil,
			config{url: "http://127.0.0.1:8080/", duration: "30s", durSec: 30, conns: 64, threads: 2, tools: []string{"wrk", "hey"}}, ""},
		{"after --", []string{"--", "https://lb.example.com"}, map[string]string{"DURATION": "2m", "TOOLS": "hey", "PAYLOAD": "p.json"},
			config{url: "https://lb.example.com", duration: "2m", durSec: 120, conns: 64, threads: 2, tools: []string{"hey"}, payload: "p.json"}, ""},
		{"bare seconds", []string{"http://x"}, map[string]string{"DURATION": "45", "CONNS": "256", "THREADS": "4"},
			config{url: "http://x", duration: "45s", durSec: 45, conns: 256, threads: 4, tools: []string{"wrk", "hey"}}, ""},
		{"threads above conns", []string{"http://x"}, map[string]string{"CONNS": "1", "THREADS": "2"},
			config{url: "http://x", duration: "30s", durSec: 30, conns: 1, threads: 1, tools: []string{"wrk", "hey"}},
			"THREADS=2 > CONNS=1; wrk needs a connection per thread, using THREADS=1"},
	} {
		got, note, err := parseArgs(tc.args, getenv(tc.env))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.url != tc.want.url || got.duration != tc.want.duration || got.durSec != tc.want.durSec ||
			got.conns != tc.want.conns || got.threads != tc.want.threads || !slices.Equal(got.tools, tc.want.tools) ||
			got.payload != tc.want.payload || note != tc.wantNote {
			t.Errorf("%s: %+v, note %q; want %+v, note %q", tc.name, got, note, tc.want, tc.wantNote)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "missing URL"},
		{[]string{"-v", "http://x"}, nil, "unknown option: -v"},
		{[]string{"http://x", "http://y"}, nil, "one URL only (got 'http://x' and 'http://y')"},
		{[]string{"http://x", "--", "http://y"}, nil, "one URL only"},
		{[]string{"127.0.0.1:8080"}, nil, "URL must start with http:// or https:// and name a host, not '127.0.0.1:8080' (e.g. http://127.0.0.1:8080)"},
		{[]string{"http:///path"}, nil, "URL must start with http://"},
		{[]string{"http://x"}, map[string]string{"DURATION": "0s"}, "DURATION wants Ns, Nm or Nh (e.g. 30s), not '0s'"},
		{[]string{"http://x"}, map[string]string{"DURATION": "1d"}, "DURATION wants"},
		{[]string{"http://x"}, map[string]string{"CONNS": "-1"}, "CONNS wants a positive integer, not '-1'"},
		{[]string{"http://x"}, map[string]string{"THREADS": "0"}, "THREADS wants a positive integer, not '0'"},
		{[]string{"http://x"}, map[string]string{"TOOLS": "  "}, "TOOLS is empty"},
		{[]string{"http://x"}, map[string]string{"TOOLS": "wrk ab"}, "TOOLS: unknown tool 'ab' (wrk, hey)"},
	} {
		_, _, err := parseArgs(tc.args, getenv(tc.env))
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(ue.msg, tc.want) {
			t.Errorf("parseArgs(%q, %v) = %v, want a usage error with %q", tc.args, tc.env, err, tc.want)
		}
	}
	for _, h := range []string{"-h", "--help"} {
		if _, _, err := parseArgs([]string{"http://x", h}, getenv(nil)); !errors.Is(err, errHelp) {
			t.Errorf("parseArgs(%s) = %v, want errHelp", h, err)
		}
	}
}

func TestFormatFigures(t *testing.T) {
	line, row := formatFigures(figures{tool: "wrk", requests: 743324, rps: 74329.43, p50: 0.86, p90: 1.47, p99: 2.03}, 9)
	if want := "wrk: 743324 requests, 74329.4 req/s = 4459766 requests/min (40137892 parcels/min); latency p50 0.860 ms, p90 1.470 ms, p99 2.030 ms; not 2xx: 0, errors: 0"; line != want {
		t.Errorf("line:\n%s\nwant:\n%s", line, want)
	}
	if want := "wrk        743324        4459766      0.860      1.470      2.030         0        0"; row != want {
		t.Errorf("row:\n%q\nwant:\n%q", row, want)
	}
	_, row = formatFigures(figures{tool: "hey", requests: 0, rps: 0, p50: math.NaN(), p90: math.NaN(), p99: math.NaN(), errorCount: 64}, 9)
	if want := "hey             0              0          -          -          -         0       64"; row != want {
		t.Errorf("row without latencies:\n%q\nwant:\n%q", row, want)
	}
}
