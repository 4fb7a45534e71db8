package stats

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Wrk is what one wrk run printed. Latencies are in milliseconds, NaN when
// wrk did not print them (without --latency).
type Wrk struct {
	Requests           int64   // "N requests in 10.00s"
	RPS                float64 // "Requests/sec:"
	P50, P75, P90, P99 float64 // the "Latency Distribution" of --latency
	Non2xx             int64   // "Non-2xx or 3xx responses: N"
	SocketErrors       int64   // connect + read + write + timeout of "Socket errors:"
}

var (
	wrkRequests = regexp.MustCompile(`^\s*(\d+) requests in `)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// ParseWrk reads wrk's output. It fails when the output has no request count
// or no rate: wrk did not run to its end.
func ParseWrk(out string) (Wrk, error) {
	w := Wrk{Requests: -1, RPS: math.NaN(), P50: math.NaN(), P75: math.NaN(), P90: math.NaN(), P99: math.NaN()}
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && strings.HasSuffix(f[0], "%"):
			ms, err := WrkLatency(f[1])
			if err != nil {
				return w, fmt.Errorf("wrk latency line %q: %w", line, err)
			}
			switch f[0] {
			case "50%":
				w.P50 = ms
			case "75%":
				w.P75 = ms
			case "90%":
				w.P90 = ms
			case "99%":
				w.P99 = ms
			}
		case wrkRequests.MatchString(line):
			w.Requests, _ = strconv.ParseInt(wrkRequests.FindStringSubmatch(line)[1], 10, 64)
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return w, fmt.Errorf("wrk rate line %q: %w", line, err)
			}
			w.RPS = v
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:"):
			w.Non2xx, _ = strconv.ParseInt(f[len(f)-1], 10, 64)
		case wrkSocket.MatchString(line):
			for _, n := range wrkSocket.FindStringSubmatch(line)[1:] {
				v, _ := strconv.ParseInt(n, 10, 64)
				w.SocketErrors += v
			}
		}
	}
	if w.Requests < 0 || math.IsNaN(w.RPS) {
		return w, fmt.Errorf("wrk printed no request count or rate (did it run to its end?)")
	}
	return w, nil
}
