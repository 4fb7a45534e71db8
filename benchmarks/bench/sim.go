package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

// simRun runs fastingest with SINK=sim, the reference's simulated store,
// and checks the worker arithmetic behind 1M requests/min.
func (b *bench) simRun() error {
	c := &b.cfg
	fmt.Printf("\n== SINK=sim: fastingest with %s, wrk %s\n", b.res.simSettings, c.duration)
	s, err := b.start("fastingest", "SINK=sim", "MAX_WORKERS="+strconv.Itoa(c.simWorkers),
		"MAX_QUEUE="+strconv.Itoa(c.simQueue), "SIM_LATENCY="+c.simLatency, "LOG_LEVEL=info")
	if err != nil {
		return err
	}
	if err := b.warmUp(s, "fastingest (sim)"); err != nil {
		return err
	}
	m, err := b.measureWrk(s, "fastingest", "SINK=sim", nil)
	if err != nil {
		return err
	}
	b.stopServer(s, "fastingest (sim)")
	b.res.sim = simSummary(&m, c.simWorkers, c.simLatency, b.res.parcels)
	fmt.Println(b.res.sim)
	b.appendOut(fmt.Sprintf("\n== SINK=sim: %s, wrk -t1 -c%d -d%s\n%s\n", b.res.simSettings, c.conns, c.duration, b.res.sim))
	return nil
}

// simSummary compares the SINK=sim run with its bound, MAX_WORKERS / mean
// latency, and says how many workers 1M requests/min needs (Little's law).
func simSummary(m *measurement, workers int, latency string, parcels int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "measured: %.0f req/s = %.0f req/min = %.0f parcels/s (p50 %.3f ms, p99 %.3f ms, server CPU %s%%, %.1f MiB peak RSS)\n",
		m.rps, m.rps*60, m.rps*float64(parcels), m.p50, m.p99, pct(m.util), m.rssMiB)
	mean, err := stats.MeanLatency(latency)
	if err != nil || mean <= 0 {
		fmt.Fprintf(&sb, "bound:    SIM_LATENCY '%s' is not a form this harness reads (e.g. 5ms-55ms); no bound computed", latency)
		return sb.String()
	}
	p := float64(parcels)
	bound := float64(workers) / mean
	fmt.Fprintf(&sb, "bound:    MAX_WORKERS / mean latency = %d / %.3f s = %.0f parcels/s = %.0f req/s = %.0f req/min (%d parcels per request)\n",
		workers, mean, bound, bound/p, bound/p*60, parcels)
	fmt.Fprintf(&sb, "          measured is %.0f%% of the bound\n", 100*m.rps*p/bound)
	target := 1e6 / 60
	need := target * p * mean
	fmt.Fprintf(&sb, "1M req/min: workers >= %.0f req/s x %d parcels x %.3f s = %.0f (Little's law: no margin at all;\n", target, parcels, mean, need)
	fmt.Fprintf(&sb, "          latency spread and bursts need more): recommend MAX_WORKERS >= %.0f (+25%%), with MAX_QUEUE\n", need*1.25)
	fmt.Fprintf(&sb, "          absorbing bursts; MAX_WORKERS=%d is %.2fx the minimum", workers, float64(workers)/need)
	return sb.String()
}
