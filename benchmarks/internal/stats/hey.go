package stats

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Hey is what one hey run printed. Latencies are in milliseconds, NaN when
// hey printed none (no response at all).
type Hey struct {
	RPS           float64 // "Requests/sec:"
	P50, P90, P99 float64 // "Latency distribution:"
	OK            int64   // 2xx responses, from "Status code distribution:"
	Non2xx        int64   // other responses
	Errors        int64   // requests without a response, from "Error distribution:"
}

// Requests returns every request hey completed or gave up on.
func (h Hey) Requests() int64 { return h.OK + h.Non2xx + h.Errors }

// ParseHey reads hey's output (v0.1.5 prints its percentiles as
// "99%% in 0.0040 secs", statuses as "[202]\t435252 responses", errors as
// "[12]\tPost ...: connection refused" under "Error distribution:"). It fails
// when the output has no rate: hey did not run to its end.
func ParseHey(out string) (Hey, error) {
	h := Hey{RPS: math.NaN(), P50: math.NaN(), P90: math.NaN(), P99: math.NaN()}
	inErrors := false
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Error distribution:"):
			inErrors = true
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return h, fmt.Errorf("hey rate line %q: %w", line, err)
			}
			h.RPS = v
		case len(f) == 4 && f[1] == "in" && f[3] == "secs" && strings.HasSuffix(f[0], "%"):
			sec, err := strconv.ParseFloat(f[2], 64)
			if err != nil {
				return h, fmt.Errorf("hey latency line %q: %w", line, err)
			}
			switch strings.TrimRight(f[0], "%") {
			case "50":
				h.P50 = sec * 1000
			case "90":
				h.P90 = sec * 1000
			case "99":
				h.P99 = sec * 1000
			}
		case len(f) >= 2 && strings.HasPrefix(f[0], "[") && strings.HasSuffix(f[0], "]"):
			if inErrors { // [count] message
				n, err := strconv.ParseInt(f[0][1:len(f[0])-1], 10, 64)
				if err == nil {
					h.Errors += n
				}
				continue
			}
			code, n := f[0][1:len(f[0])-1], f[1] // [status] count responses
			count, err := strconv.ParseInt(n, 10, 64)
			if err != nil || len(code) != 3 {
				continue // a histogram line: "0.001 [158738]" starts with a number
			}
			if code[0] == '2' {
				h.OK += count
			} else {
				h.Non2xx += count
			}
		}
	}
	if math.IsNaN(h.RPS) {
		return h, fmt.Errorf("hey printed no rate (did it run to its end?)")
	}
	return h, nil
}
