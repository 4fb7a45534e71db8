package stats

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// wrkLatency is a measured wrk run against classic, as a results file keeps it.
const wrkLatency = `Running 10s test @ http://127.0.0.1:42413/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    17.84ms   27.16ms 157.40ms   83.26%
    Req/Sec    23.72k   684.04    25.48k    71.00%
  Latency Distribution
     50%    1.04ms
     75%   29.22ms
     90%   60.86ms
     99%  106.78ms
  235949 requests in 10.00s, 16.88MB read
Requests/sec:  23590.32
Transfer/sec:      1.69MB
`

// wrkWarmUp is a warm-up run: no --latency, so no percentiles.
const wrkWarmUp = `Running 1s test @ http://127.0.0.1:44775/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   260.76us  155.77us   2.57ms   82.73%
    Req/Sec   181.68k    17.57k  192.78k    90.00%
  180425 requests in 1.00s, 15.31MB read
Requests/sec: 180274.11
Transfer/sec:     15.30MB
`

// wrkErrors is a run that met a server going away.
const wrkErrors = `Running 1s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   255.00us  100.00us   1.20s    90.00%
    Req/Sec   100.00k    10.00k  110.00k    90.00%
  Latency Distribution
     50%  255.00us
     75%  374.00us
     90%  500.00us
     99%    1.20s
  1000 requests in 1.00s, 1.00MB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 17
Requests/sec:   1000.00
Transfer/sec:      1.00MB
`

func TestParseWrk(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name    string
		out     string
		want    Wrk
		wantErr bool
	}{
		{"--latency", wrkLatency, Wrk{Requests: 235949, RPS: 23590.32, P50: 1.04, P75: 29.22, P90: 60.86, P99: 106.78}, false},
		{"no --latency", wrkWarmUp, Wrk{Requests: 180425, RPS: 180274.11, P50: nan, P75: nan, P90: nan, P99: nan}, false},
		{"errors", wrkErrors, Wrk{Requests: 1000, RPS: 1000, P50: 0.255, P75: 0.374, P90: 0.5, P99: 1200, Non2xx: 17, SocketErrors: 10}, false},
		{"no request completed", "unable to connect to 127.0.0.1:1 Connection refused\n", Wrk{}, true},
		{"cut short", strings.Split(wrkLatency, "Requests/sec")[0], Wrk{}, true},
		{"bad percentile", "     50%    fast\n", Wrk{}, true},
	} {
		got, err := ParseWrk(tc.out)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: ParseWrk error %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if got.Requests != tc.want.Requests || !same(got.RPS, tc.want.RPS) || !same(got.P50, tc.want.P50) ||
			!same(got.P75, tc.want.P75) || !same(got.P90, tc.want.P90) || !same(got.P99, tc.want.P99) ||
			got.Non2xx != tc.want.Non2xx || got.SocketErrors != tc.want.SocketErrors {
			t.Errorf("%s: ParseWrk = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// heyOK is hey v0.1.5 against fastingest.
const heyOK = `
Summary:
  Total:	10.0032 secs
  Slowest:	0.0104 secs
  Fastest:	0.0000 secs
  Average:	0.0015 secs
  Requests/sec:	43511.4380
  
  Total data:	6093528 bytes
  Size/request:	14 bytes

Response time histogram:
  0.000 [1]	|
  0.001 [158738]	|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■
  0.002 [173850]	|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■


Latency distribution:
  10%% in 0.0004 secs
  25%% in 0.0008 secs
  50%% in 0.0014 secs
  75%% in 0.0021 secs
  90%% in 0.0025 secs
  95%% in 0.0027 secs
  99%% in 0.0040 secs

Details (average, fastest, slowest):
  DNS+dialup:	0.0000 secs, 0.0000 secs, 0.0061 secs
  resp read:	0.0000 secs, 0.0000 secs, 0.0024 secs

Status code distribution:
  [202]	435252 responses
`

// heyMixed has refusals and requests that got no answer.
const heyMixed = `
Summary:
  Requests/sec:	100.5000

Latency distribution:
  50% in 0.0100 secs
  90% in 0.0200 secs
  99% in 0.1000 secs

Status code distribution:
  [202]	900 responses
  [503]	80 responses
  [415]	5 responses

Error distribution:
  [12]	Post "http://127.0.0.1:8080/": dial tcp 127.0.0.1:8080: connect: connection refused
  [3]	Post "http://127.0.0.1:8080/": EOF
`

func TestParseHey(t *testing.T) {
	nan := math.NaN()
	for _, tc := range []struct {
		name    string
		out     string
		want    Hey
		wantErr bool
	}{
		{"v0.1.5, all 202", heyOK, Hey{RPS: 43511.438, P50: 1.4, P90: 2.5, P99: 4.0, OK: 435252}, false},
		{"refusals and errors", heyMixed, Hey{RPS: 100.5, P50: 10, P90: 20, P99: 100, OK: 900, Non2xx: 85, Errors: 15}, false},
		{"no response at all", "\nSummary:\n  Requests/sec:\t0.0000\n\nError distribution:\n  [64]\tconnection refused\n",
			Hey{RPS: 0, P50: nan, P90: nan, P99: nan, Errors: 64}, false},
		{"cut short", "\nSummary:\n  Total:\t10.0032 secs\n", Hey{}, true},
	} {
		got, err := ParseHey(tc.out)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: ParseHey error %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if !same(got.RPS, tc.want.RPS) || !same(got.P50, tc.want.P50) || !same(got.P90, tc.want.P90) ||
			!same(got.P99, tc.want.P99) || got.OK != tc.want.OK || got.Non2xx != tc.want.Non2xx ||
			got.Errors != tc.want.Errors {
			t.Errorf("%s: ParseHey = %+v, want %+v", tc.name, got, tc.want)
		}
		if got.Requests() != tc.want.OK+tc.want.Non2xx+tc.want.Errors {
			t.Errorf("%s: Requests() = %d, want %d", tc.name, got.Requests(), tc.want.OK+tc.want.Non2xx+tc.want.Errors)
		}
	}
}

func TestParseVegetaReport(t *testing.T) {
	const report = `{"latencies":{"total":96640018097,"mean":579831,"50th":346906,"90th":1588359,"95th":2092212,"99th":3146057,"max":9528074,"min":24549},"bytes_in":{"total":2333366,"mean":14},"bytes_out":{"total":82834493,"mean":497},"earliest":"2026-11-29T12:10:11.761513552Z","latest":"2026-11-29T12:10:21.761992659Z","end":"2026-11-29T12:10:21.762409631Z","duration":10000479107,"wait":416972,"requests":166669,"rate":16666.101515410126,"throughput":16665.406647907635,"success":1,"status_codes":{"202":166669},"errors":[]}`
	for _, tc := range []struct {
		name    string
		in      string
		want    VegetaReport
		wantErr bool
	}{
		{"a report", report, VegetaReport{Requests: 166669, Rate: 16666.101515410126, Throughput: 16665.406647907635,
			Success: 1, StatusCodes: map[string]int64{"202": 166669}, Errors: []string{}}, false},
		{"errors", `{"requests":10,"rate":1,"throughput":0.5,"success":0.5,"status_codes":{"0":5,"202":5},"errors":["dial tcp: connection refused"]}`,
			VegetaReport{Requests: 10, Rate: 1, Throughput: 0.5, Success: 0.5, StatusCodes: map[string]int64{"0": 5, "202": 5},
				Errors: []string{"dial tcp: connection refused"}}, false},
		{"not a report", `{"foo":1}`, VegetaReport{}, true},
		{"not JSON", `Requests [total, rate] 10, 1.00`, VegetaReport{}, true},
	} {
		got, err := ParseVegetaReport([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: ParseVegetaReport error %v, want error %v", tc.name, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		if got.Requests != tc.want.Requests || got.Rate != tc.want.Rate || got.Throughput != tc.want.Throughput ||
			got.Success != tc.want.Success || len(got.StatusCodes) != len(tc.want.StatusCodes) ||
			!slices.Equal(got.Errors, tc.want.Errors) {
			t.Errorf("%s: ParseVegetaReport = %+v, want %+v", tc.name, got, tc.want)
		}
		for code, n := range tc.want.StatusCodes {
			if got.StatusCodes[code] != n {
				t.Errorf("%s: status %s: %d, want %d", tc.name, code, got.StatusCodes[code], n)
			}
		}
	}
}

func TestVegetaLatencies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		csv     string
		want    []float64
		wantErr bool
	}{
		{"sorted into ms", "1764410000000000000,202,346906,497,14,,e30=,,1,POST,http://127.0.0.1:1/,\n" +
			"1764410000000100000,202,24549,497,14,,e30=,,2,POST,http://127.0.0.1:1/,\n" +
			"1764410000000200000,0,3146057,0,0,\"Post \"\"http://127.0.0.1:1/\"\": EOF, retry\",,,3,POST,http://127.0.0.1:1/,\n",
			[]float64{0.024549, 0.346906, 3.146057}, false},
		{"empty", "", nil, false},
		{"short line", "1,202\n", nil, true},
		{"latency not a number", "1,202,fast\n", nil, true},
	} {
		got, err := VegetaLatencies(strings.NewReader(tc.csv))
		if (err != nil) != tc.wantErr || !slices.EqualFunc(got, tc.want, same) {
			t.Errorf("%s: VegetaLatencies = %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.wantErr)
		}
	}
}
