package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fastingest/fastingest/sink/natssink"
)

// config is everything fastingest reads at startup.
type config struct {
	Addr            string
	MaxQueue        int
	MaxQueueBytes   int64
	MaxWorkers      int
	Sink            string
	SimMin, SimMax  time.Duration
	MaxBodyBytes    int
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration // 0: close the listener at once

	Ack        string // enqueued or persisted
	AckTimeout time.Duration

	DataDir       string
	SegmentBytes  int64
	SegmentAge    time.Duration
	RetainBytes   int64
	FsyncInterval time.Duration // 0: fsync after every write

	NATSURL      string
	NATSSubject  string
	NATSStream   string
	NATSReplicas int

	EnqueueTimeout    time.Duration // 0: wait for queue room indefinitely
	ReadyMaxQueueWait time.Duration // 0: readiness ignores queue wait
	MaxConns          int
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	MaxHeaderBytes    int64

	AuthToken     string // from AUTH_TOKEN, or read from AUTH_TOKEN_FILE
	AuthTokenFile string
	MetricsPublic bool
	TLSCert       string
	TLSKey        string
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
	{"MAX_QUEUE_BYTES", "max-queue-bytes", "256MiB", "most body bytes the queued requests may hold, from their reservation before the body is copied until every parcel is stored; at least MAX_BODY_BYTES", "a size from 1KiB to 1TiB: bytes, or with a KiB, MiB, GiB or TiB suffix",
		func(c *config, v string) bool { return parseSize(v, 1<<10, 1<<40, &c.MaxQueueBytes) }},
	{"SINK", "sink", "file", "where tasks go: file (NDJSON segments in DATA_DIR), nats (a JetStream stream), sim (simulated store, random latency) or null (discard)", "file, nats, sim or null",
		func(c *config, v string) bool {
			c.Sink = strings.ToLower(v)
			return c.Sink == "file" || c.Sink == "nats" || c.Sink == "sim" || c.Sink == "null"
		}},
	{"ACK", "ack", "enqueued", "when a request is answered 202: enqueued (its parcels are queued) or persisted (its parcels are stored: fsynced, or acknowledged by JetStream)", "enqueued or persisted",
		func(c *config, v string) bool {
			c.Ack = strings.ToLower(v)
			return c.Ack == "enqueued" || c.Ack == "persisted"
		}},
	{"ACK_TIMEOUT", "ack-timeout", "10s", "with ACK=persisted, longest wait for a request's parcels to be stored before answering 503", "a positive duration, e.g. 10s",
		func(c *config, v string) bool { return parsePositiveDuration(v, &c.AckTimeout) }},
	{"DATA_DIR", "data-dir", "./data", "directory of the file sink's segments; created if missing", "a directory path",
		func(c *config, v string) bool { c.DataDir = v; return v != "" }},
	{"SEGMENT_BYTES", "segment-bytes", "128MiB", "file sink: a segment is closed and a new one started past this size", "a size from 1KiB to 1TiB: bytes, or with a KiB, MiB, GiB or TiB suffix",
		func(c *config, v string) bool { return parseSize(v, 1<<10, 1<<40, &c.SegmentBytes) }},
	{"SEGMENT_AGE", "segment-age", "1h", "file sink: a segment is closed and a new one started this long after it was opened; 0 disables", "a duration of 0 or more, e.g. 1h",
		func(c *config, v string) bool {
			d, err := time.ParseDuration(v)
			c.SegmentAge = d
			return err == nil && d >= 0
		}},
	{"RETAIN_BYTES", "retain-bytes", "1GiB", "file sink: the oldest closed segments are deleted while all segments together exceed this size", "a size from 1KiB to 1PiB: bytes, or with a KiB, MiB, GiB, TiB or PiB suffix",
		func(c *config, v string) bool { return parseSize(v, 1<<10, 1<<50, &c.RetainBytes) }},
	{"FSYNC_INTERVAL", "fsync-interval", "1s", "file sink: longest time a written parcel may stay unsynced; 0 fsyncs after every write", "a duration of 0 or more, e.g. 1s",
		func(c *config, v string) bool {
			d, err := time.ParseDuration(v)
			c.FsyncInterval = d
			return err == nil && d >= 0
		}},
	{"NATS_URL", "nats-url", "nats://127.0.0.1:4222", "nats sink: server URLs, comma-separated", "nats:// URLs, comma-separated",
		func(c *config, v string) bool {
			c.NATSURL = v
			for _, u := range strings.Split(v, ",") {
				if strings.TrimSpace(u) == "" {
					return false
				}
			}
			return true
		}},
	{"NATS_SUBJECT", "nats-subject", "fastingest.parcels", "nats sink: subject parcels are published to", "a subject without spaces or wildcards",
		func(c *config, v string) bool {
			c.NATSSubject = v
			return v != "" && !strings.ContainsAny(v, " \t*>")
		}},
	{"NATS_STREAM", "nats-stream", "FASTINGEST", "nats sink: JetStream stream holding the subject; created if missing", "a stream name without spaces, dots or wildcards",
		func(c *config, v string) bool {
			c.NATSStream = v
			return v != "" && !strings.ContainsAny(v, " \t.*>/\\")
		}},
	{"NATS_REPLICAS", "nats-replicas", "1", "nats sink: replicas of a stream it creates", "an integer from 1 to 5",
		func(c *config, v string) bool { return parseInt(v, 1, 5, &c.NATSReplicas) }},
	{"ENQUEUE_TIMEOUT", "enqueue-timeout", "5s", "longest a request waits for queue room, body bytes and places together, before 503; 0 waits indefinitely", "a duration of 0 or more, e.g. 5s",
		func(c *config, v string) bool { return parseDuration(v, &c.EnqueueTimeout) }},
	{"READY_MAX_QUEUE_WAIT", "ready-max-queue-wait", "1s", "/readyz answers 503 while requests recently waited longer than this for queue room; 0 disables", "a duration of 0 or more, e.g. 1s",
		func(c *config, v string) bool { return parseDuration(v, &c.ReadyMaxQueueWait) }},
	{"MAX_CONNS", "max-conns", "16384", "most connections served at once; more get 503", "an integer from 1 to 1000000",
		func(c *config, v string) bool { return parseInt(v, 1, 1_000_000, &c.MaxConns) }},
	{"READ_TIMEOUT", "read-timeout", "30s", "longest time to read one whole request, body included", "a positive duration, e.g. 30s",
		func(c *config, v string) bool { return parsePositiveDuration(v, &c.ReadTimeout) }},
	{"WRITE_TIMEOUT", "write-timeout", "30s", "longest time to write one response", "a positive duration, e.g. 30s",
		func(c *config, v string) bool { return parsePositiveDuration(v, &c.WriteTimeout) }},
	{"IDLE_TIMEOUT", "idle-timeout", "90s", "longest a keep-alive connection may wait for its next request", "a positive duration, e.g. 90s",
		func(c *config, v string) bool { return parsePositiveDuration(v, &c.IdleTimeout) }},
	{"MAX_HEADER_BYTES", "max-header-bytes", "8KiB", "largest request line and headers; larger get 431", "a size from 1KiB to 1MiB: bytes, or with a KiB or MiB suffix",
		func(c *config, v string) bool { return parseSize(v, 1<<10, 1<<20, &c.MaxHeaderBytes) }},
	{"AUTH_TOKEN", "auth-token", "", "bearer token POST / (and /metrics, unless METRICS_PUBLIC=1) requires (Authorization: Bearer TOKEN); empty: no authentication", "a token of visible ASCII characters",
		func(c *config, v string) bool { c.AuthToken = v; return validToken(v) }},
	{"AUTH_TOKEN_FILE", "auth-token-file", "", "file holding the bearer token (instead of AUTH_TOKEN, which it may not be combined with)", "a readable file path",
		func(c *config, v string) bool { c.AuthTokenFile = v; return true }},
	{"METRICS_PUBLIC", "metrics-public", "0", "1: /metrics needs no token even when AUTH_TOKEN is set", "0 or 1",
		func(c *config, v string) bool { c.MetricsPublic = v == "1"; return v == "0" || v == "1" }},
	{"TLS_CERT", "tls-cert", "", "PEM certificate (chain) file: serve HTTPS; needs TLS_KEY", "a readable file path",
		func(c *config, v string) bool { c.TLSCert = v; return true }},
	{"TLS_KEY", "tls-key", "", "PEM private key file for TLS_CERT", "a readable file path",
		func(c *config, v string) bool { c.TLSKey = v; return true }},
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
	{"MAX_BODY_BYTES", "max-body-bytes", "1MiB", "largest request body accepted; larger ones get 413", "a size from 1 byte to 1GiB: bytes, or with a KiB, MiB, GiB or TiB suffix",
		func(c *config, v string) bool {
			var n int64
			ok := parseSize(v, 1, 1<<30, &n)
			c.MaxBodyBytes = int(n)
			return ok
		}},
	{"LOG_LEVEL", "log-level", "info", "log level; debug logs every parcel", "debug, info, warn or error",
		func(c *config, v string) bool {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				return c.LogLevel.UnmarshalText([]byte(v)) == nil
			}
			return false
		}},
	{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "30s", "longest wait, after SIGINT or SIGTERM (and DRAIN_DELAY), for requests to finish and the queue to drain", "a positive duration, e.g. 30s",
		func(c *config, v string) bool { return parsePositiveDuration(v, &c.ShutdownTimeout) }},
	{"DRAIN_DELAY", "drain-delay", "0s", "after SIGINT or SIGTERM, how long to keep serving with /readyz answering 503, so that load balancers stop sending traffic before the listener closes", "a duration of 0 or more, e.g. 20s",
		func(c *config, v string) bool { return parseDuration(v, &c.DrainDelay) }},
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
			if o.env == "AUTH_TOKEN" {
				value = "<redacted>" // a secret stays out of logs, even a bad one
			}
			return config{}, &configError{name: name, value: value, accepts: o.accepts}
		}
	}
	if c.MaxQueueBytes < int64(c.MaxBodyBytes) {
		// The largest body could never be admitted.
		return config{}, &configError{name: "MAX_QUEUE_BYTES", value: strconv.FormatInt(c.MaxQueueBytes, 10),
			accepts: "at least MAX_BODY_BYTES (" + strconv.Itoa(c.MaxBodyBytes) + "): raise it, or lower MAX_BODY_BYTES"}
	}
	return c, nil
}

// logAttrs describes the configuration for the startup log line.
func (c config) logAttrs() []any {
	attrs := []any{"addr", c.Addr, "max_workers", c.MaxWorkers, "max_queue", c.MaxQueue, "max_queue_bytes", c.MaxQueueBytes,
		"sink", c.Sink, "max_body_bytes", c.MaxBodyBytes, "log_level", c.LogLevel.String(),
		"shutdown_timeout", c.ShutdownTimeout.String(), "drain_delay", c.DrainDelay.String()}
	attrs = append(attrs, "enqueue_timeout", c.EnqueueTimeout.String(), "ready_max_queue_wait", c.ReadyMaxQueueWait.String(),
		"max_conns", c.MaxConns, "read_timeout", c.ReadTimeout.String(), "write_timeout", c.WriteTimeout.String(),
		"idle_timeout", c.IdleTimeout.String(), "max_header_bytes", c.MaxHeaderBytes,
		"auth", c.AuthToken != "" || c.AuthTokenFile != "", "metrics_public", c.MetricsPublic, "tls", c.TLSCert != "")
	attrs = append(attrs, "ack", c.Ack)
	if c.Ack == "persisted" {
		attrs = append(attrs, "ack_timeout", c.AckTimeout.String())
	}
	switch c.Sink {
	case "sim":
		attrs = append(attrs, "sim_latency", c.SimMin.String()+"-"+c.SimMax.String())
	case "file":
		attrs = append(attrs, "data_dir", c.DataDir, "segment_bytes", c.SegmentBytes,
			"segment_age", c.SegmentAge.String(), "retain_bytes", c.RetainBytes,
			"fsync_interval", c.FsyncInterval.String())
	case "nats":
		attrs = append(attrs, "nats_url", natssink.RedactURLs(c.NATSURL), "nats_subject", c.NATSSubject,
			"nats_stream", c.NATSStream, "nats_replicas", c.NATSReplicas)
	}
	return attrs
}

func parseInt(v string, min, max int, dst *int) bool {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	*dst = n
	return err == nil && n >= min && n <= max
}

func parseDuration(v string, dst *time.Duration) bool {
	d, err := time.ParseDuration(v)
	*dst = d
	return err == nil && d >= 0
}

// validToken reports whether a bearer token can travel in an HTTP header
// as it is: visible ASCII, no spaces (RFC 6750's b64token is stricter).
func validToken(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

func parsePositiveDuration(v string, dst *time.Duration) bool {
	d, err := time.ParseDuration(v)
	*dst = d
	return err == nil && d > 0
}

// parseSize reads a byte count such as 1048576, 512KiB or 1MiB, from min to
// max bytes.
func parseSize(v string, min, max int64, dst *int64) bool {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50}} {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(s), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > max/mult || n*mult < min {
		return false
	}
	*dst = n * mult
	return true
}

// loadSecrets reads the files the configuration names: the bearer token of
// AUTH_TOKEN_FILE and the TLS certificate and key. It returns the TLS
// configuration, nil without TLS_CERT. Errors are configuration errors:
// fastingest exits 2.
func (c *config) loadSecrets() (*tls.Config, error) {
	if c.AuthTokenFile != "" {
		if c.AuthToken != "" {
			return nil, errors.New("AUTH_TOKEN and AUTH_TOKEN_FILE are both set: set one")
		}
		b, err := os.ReadFile(c.AuthTokenFile)
		if err != nil {
			return nil, fmt.Errorf("invalid AUTH_TOKEN_FILE: %w", err)
		}
		c.AuthToken = strings.TrimRight(string(b), "\r\n")
		if c.AuthToken == "" || !validToken(c.AuthToken) {
			return nil, fmt.Errorf("invalid AUTH_TOKEN_FILE %q: want one token of visible ASCII characters", c.AuthTokenFile)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("TLS_CERT and TLS_KEY go together: set both or neither")
	}
	if c.TLSCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("invalid TLS_CERT/TLS_KEY: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}
