package stats

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Seconds parses a run length as wrk, hey and vegeta all accept it, N, Ns, Nm
// or Nh (N a whole number), into whole seconds.
func Seconds(s string) (int, error) {
	num, mult := s, 1
	switch {
	case strings.HasSuffix(s, "s"):
		num = s[:len(s)-1]
	case strings.HasSuffix(s, "m"):
		num, mult = s[:len(s)-1], 60
	case strings.HasSuffix(s, "h"):
		num, mult = s[:len(s)-1], 3600
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || num == "" || num[0] == '+' || num[0] == '-' {
		return 0, fmt.Errorf("%q is not a duration of the form Ns, Nm or Nh (e.g. 10s)", s)
	}
	return n * mult, nil
}

// MeanLatency returns the mean, in seconds, of a latency range as SIM_LATENCY
// takes it: "min-max" (uniform, e.g. 5ms-55ms) or one duration for a fixed
// latency. Durations are Go's (ns, us, µs, ms, s, m, h), as the server
// parses them.
func MeanLatency(s string) (float64, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := time.ParseDuration(lo)
	if err != nil || a < 0 {
		return 0, fmt.Errorf("latency %q: %q is not a duration", s, lo)
	}
	b := a
	if isRange {
		if b, err = time.ParseDuration(hi); err != nil || b < a {
			return 0, fmt.Errorf("latency %q: want min-max with min <= max, e.g. 5ms-55ms", s)
		}
	}
	return (a + b).Seconds() / 2, nil
}

// wrkUnits are the units wrk prints latencies in, with their length in
// milliseconds; "ms" before "s", "us" before "s".
var wrkUnits = []struct {
	suffix string
	ms     float64
}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}}

// WrkLatency parses a latency as wrk prints it ("255.00us", "0.86ms",
// "1.20s", "2.00m") into milliseconds.
func WrkLatency(s string) (float64, error) {
	for _, u := range wrkUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v < 0 || math.IsInf(v, 0) {
				break
			}
			return v * u.ms, nil
		}
	}
	return 0, fmt.Errorf("%q is not a wrk latency (e.g. 0.86ms)", s)
}
