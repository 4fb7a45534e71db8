package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/fastingest/fastingest/benchmarks/internal/stats"
)

// heyRuns runs hey once per server (not the baseline): a second,
// independent client.
func (b *bench) heyRuns() error {
	fmt.Printf("\n== hey: ONE run of %s per server (not a median), -c 64\n", b.cfg.duration)
	for _, name := range []string{"fastingest", "classic", "noop"} {
		s, err := b.start(name, serverSettings(name)...)
		if err != nil {
			return err
		}
		if err := b.warmUp(s, name); err != nil {
			return err
		}
		run, err := b.runLoad(b.runLimit(), filepath.Join(b.work, "hey.txt"), b.hey, "-z", b.cfg.duration, "-c", "64",
			"-m", "POST", "-T", "application/json", "-D", b.payload, s.url())
		if err != nil {
			return fmt.Errorf("hey against %s failed (%v): %s", name, err, tail(run.out, 3))
		}
		b.stopServer(s, name)
		h, err := stats.ParseHey(string(run.out))
		if err != nil {
			return fmt.Errorf("hey against %s: %v: %s", name, err, run.out)
		}
		if h.OK == 0 {
			return fmt.Errorf("hey against %s got no 2xx response: %s", name, run.out)
		}
		if h.Non2xx > 0 {
			b.warn("hey against %s: %d responses were not 2xx", name, h.Non2xx)
		}
		if h.Errors > 0 {
			notice("hey against %s reported %d errors (see raw output)", name, h.Errors)
		}
		b.res.hey = append(b.res.hey, heyRow{name: name, rps: h.RPS, p99: h.P99})
		fmt.Printf("  %-10s %10.0f req/s  p99 %7.3f ms\n", name, h.RPS, h.P99)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n== hey, one run per server (-z %s -c 64)\nserver\treq/s\tp99_ms\n", b.cfg.duration)
	for _, h := range b.res.hey {
		fmt.Fprintf(&sb, "%s\t%.1f\t%.3f\n", h.name, h.rps, h.p99)
	}
	b.appendOut(sb.String())
	return nil
}
