package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// config is everything fastingest reads at startup.
type config struct {
	Addr            string
	MaxQueue        int
	MaxWorkers      int
	Sink            string
	SimMin, SimMax  time.Duration
	MaxBodyBytes    int
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
}

// option is one setting: an environment variable, the flag that overrides
// it, its default, and how to parse it into a config.
type option struct {
	env, flag, def, usage string
	// accepts says what values are valid, for error messages.
	accepts string
	parse   func(c *config, v string) bool
}

var options = []option{
	{"ADDR", "addr", ":8080", "address to listen on", "host:port with a numeric port 0-65535, e.g. :8080 or 127.0.0.1:0",
		func(c *config, v string) bool {
			c.Addr = v
			_, port, err := net.SplitHostPort(v)
			p, perr := strconv.Atoi(port)
			return err == nil && perr == nil && p >= 0 && p <= 65535
		}},
	{"MAX_WORKERS", "max-workers", "1000", "number of workers storing tasks concurrently", "an integer from 1 to 1000000",
		func(c *config, v string) bool { return parseInt(v, 1, 1_000_000, &c.MaxWorkers) }},
	{"MAX_QUEUE", "max-queue", "10000", "capacity of the global task queue, in parcels", "an integer from 1 to 10000000",
		func(c *config, v string) bool { return parseInt(v, 1, 10_000_000, &c.MaxQueue) }},
	{"SINK", "sink", "sim", "where tasks go: sim (simulated store, random latency) or null (discard)", "sim or null",
		func(c *config, v string) bool {
			c.Sink = strings.ToLower(v)
			return c.Sink == "sim" || c.Sink == "null"
		}},
	{"SIM_LATENCY", "sim-latency", "5ms-55ms", "latency range of the sim sink, uniform", "a duration or a range min-max with min <= max, e.g. 5ms-55ms or 10ms",
		func(c *config, v string) bool {
			lo, hi, isRange := strings.Cut(v, "-")
			if !isRange {
				hi = lo
			}
			var err1, err2 error
			c.SimMin, err1 = time.ParseDuration(strings.TrimSpace(lo))
			c.SimMax, err2 = time.ParseDuration(strings.TrimSpace(hi))
			return err1 == nil && err2 == nil && c.SimMin >= 0 && c.SimMin <= c.SimMax
		}},
	{"MAX_BODY_BYTES", "max-body-bytes", "1MiB", "largest request body accepted; larger ones get 413", "a size from 1 byte to 1GiB: bytes, or with a KiB, MiB or GiB suffix",
		func(c *config, v string) bool { return parseSize(v, &c.MaxBodyBytes) }},
	{"LOG_LEVEL", "log-level", "info", "log level; debug logs every parcel", "debug, info, warn or error",
		func(c *config, v string) bool {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				return c.LogLevel.UnmarshalText([]byte(v)) == nil
			}
			return false
		}},
	{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "30s", "longest wait, after SIGINT or SIGTERM, for requests to finish and the queue to drain", "a positive duration, e.g. 30s",
		func(c *config, v string) bool {
			d, err := time.ParseDuration(v)
			c.ShutdownTimeout = d
			return err == nil && d > 0
		}},
}

// configError is a setting with a value fastingest cannot use.
type configError struct {
	name, value, accepts string
}

func (e *configError) Error() string {
	return fmt.Sprintf("invalid %s %q: want %s", e.name, e.value, e.accepts)
}

// loadConfig reads every option from its flag, else its environment
// variable, else its default. -h prints the options and returns
// flag.ErrHelp.
func loadConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (config, error) {
	fs := flag.NewFlagSet("fastingest", flag.ContinueOnError)
	// The flag package would print a parse error and the whole usage;
	// run prints the error once, and -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	flagValues := make([]*string, len(options))
	for i, o := range options {
		flagValues[i] = fs.String(o.flag, o.def, o.usage+" (env "+o.env+")")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(out, "Usage: fastingest [flags]\n\nfastingest accepts batches of parcels on POST / and stores them in a sink.\n"+
				"Every flag has an environment variable; the flag wins when both are set.\n\n")
			fs.SetOutput(out)
			fs.PrintDefaults()
			return config{}, err
		}
		return config{}, fmt.Errorf("%w (fastingest -h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: fastingest takes flags only (see -h)", fs.Arg(0))
	}
	fromFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromFlag[f.Name] = true })

	var c config
	for i, o := range options {
		name, value := o.env+" (default)", o.def
		if v, ok := lookupEnv(o.env); ok && v != "" {
			name, value = o.env, v
		}
		if fromFlag[o.flag] {
			name, value = "-"+o.flag, *flagValues[i]
		}
		if !o.parse(&c, value) {
			return config{}, &configError{name: name, value: value, accepts: o.accepts}
		}
	}
	return c, nil
}

// logAttrs describes the configuration for the startup log line.
func (c config) logAttrs() []any {
	attrs := []any{"addr", c.Addr, "max_workers", c.MaxWorkers, "max_queue", c.MaxQueue,
		"sink", c.Sink, "max_body_bytes", c.MaxBodyBytes, "log_level", c.LogLevel.String(),
		"shutdown_timeout", c.ShutdownTimeout.String()}
	if c.Sink == "sim" {
		attrs = append(attrs, "sim_latency", c.SimMin.String()+"-"+c.SimMax.String())
	}
	return attrs
}

func parseInt(v string, min, max int, dst *int) bool {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	*dst = n
	return err == nil && n >= min && n <= max
}

// parseSize reads a byte count such as 1048576, 512KiB or 1MiB, at most 1GiB.
func parseSize(v string, dst *int) bool {
	v = strings.TrimSpace(v)
	mult := 1
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(s), u.mult
			break
		}
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > (1<<30)/mult {
		return false
	}
	*dst = n * mult
	return true
}
