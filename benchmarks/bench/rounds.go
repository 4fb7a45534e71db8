package main

import (
	"fmt"
	"math"
	"strings"
)

// serverSettings returns the environment each server runs with in the
// comparison: fastingest and classic with the same (default) pool sizes,
// whatever the caller's environment says. The baseline gets fastingest's:
// environment variables only, no flags, which every revision reads (an older
// one ignores a variable it does not know, but would reject a flag).
func serverSettings(name string) []string {
	switch {
	case name == "fastingest" || strings.HasPrefix(name, "fastingest@"):
		return []string{"SINK=null", "MAX_WORKERS=1000", "MAX_QUEUE=10000", "LOG_LEVEL=info"}
	case name == "classic":
		return []string{"MAX_WORKERS=1000", "MAX_QUEUE=10000"}
	}
	return nil
}

// nameWidth returns the width of the servers' names in the tables.
func (r *results) nameWidth() int {
	return max(10, len(r.baseline))
}

// wrkRounds runs the servers interleaved (fastingest, the baseline, classic,
// noop, then again) for the rounds asked, under wrk.
func (b *bench) wrkRounds() error {
	r := b.res
	r.servers = []string{"fastingest"}
	if r.baseline != "" {
		r.servers = append(r.servers, r.baseline)
	}
	r.servers = append(r.servers, "classic", "noop")
	fmt.Printf("\n== wrk: %d interleaved round(s) of %s per server, -t1 -c%d\n", b.cfg.rounds, b.cfg.duration, b.cfg.conns)
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, name := range r.servers {
			s, err := b.start(name, serverSettings(name)...)
			if err != nil {
				return err
			}
			if err := b.warmUp(s, name); err != nil {
				return err
			}
			m, err := b.measureWrk(s, name, fmt.Sprintf("round %d", round), nil)
			if err != nil {
				return err
			}
			b.stopServer(s, name)
			r.rows = append(r.rows, row{name: name, round: round, measurement: m, storedMiB: math.NaN(), parcels: -1})
			fmt.Println(roundLine(round, r.nameWidth(), name, &m))
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n== wrk, every round (-t1 -c%d -d%s --latency)\n", b.cfg.conns, b.cfg.duration)
	writeTable(&sb, wrkColumns, r.rows)
	b.appendOut(sb.String())
	return nil
}
