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

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/server"
	"github.com/fastingest/fastingest/sink"
	"github.com/fastingest/fastingest/sink/filesink"
	"github.com/fastingest/fastingest/sink/kafkasink"
	"github.com/fastingest/fastingest/sink/natssink"
	"github.com/fastingest/fastingest/sink/s3ship"
)

// config is everything fastingest reads at startup.
type config struct {
	Addr            string
	MaxQueue        int
	MaxQueueBytes   int64
	MaxWorkers      int
	Shards          int // 0: one per 8 CPUs (ingest.DefaultShards)
	Sink            string
	SimMin, SimMax  time.Duration
	MaxBodyBytes    int
	LogLevel        slog.Level
	ShutdownTimeout time.Duration
	DrainDelay      time.Duration // 0: close the listener at once

	Ack        server.Ack
	AckTimeout time.Duration

	DataDir       string
	SegmentBytes  int64
	SegmentAge    time.Duration // 0: no age limit
	RetainBytes   int64
	FsyncInterval time.Duration // 0: fsync after every write

	S3Bucket            string // "": no shipping
	S3Prefix            string
	S3Compression       string
	S3UploadConcurrency int

	NATSURL      string
	NATSSubject  string
	NATSStream   string
	NATSReplicas int

	KafkaBrokers          string
	KafkaTopic            string
	KafkaCompression      string
	KafkaLinger           time.Duration
	KafkaMaxBuffered      int64
	KafkaTLS              bool
	KafkaTLSCA            string // path; its contents are read by loadSecrets
	KafkaSASLMechanism    string // upper case; "" for none
	KafkaSASLUser         string
	KafkaSASLPasswordFile string
	KafkaCreateTopic      bool
	KafkaPartitions       int    // 0: the cluster's default
	KafkaReplication      int    // 0: the cluster's default
	KafkaTLSCAPEM         string // read from KafkaTLSCA by loadSecrets
	KafkaSASLPassword     string // read from KafkaSASLPasswordFile by loadSecrets; never logged

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

// The defaults of the settings that main uses itself; every other default
// belongs to the package that uses the setting (ingest, server, filesink,
// natssink), which also owns its check.
const (
	defaultAddr            = ":8080"
	defaultSink            = "file"
	defaultSimLatency      = "5ms-55ms" // the reference design's simulated store
	defaultLogLevel        = "info"
	defaultShutdownTimeout = 30 * time.Second
	defaultDrainDelay      = 0
)

// option is one setting: an environment variable, the flag that overrides
// it, its default, and how to parse it into a config.
type option struct {
	env, flag string
	// typ names the kind of value for -h: int, size, duration, ...
	typ string
	// def is the default as it would be written in the environment; ""
	// for none.
	def   string
	usage string
	// accepts says what values are valid, for -h and error messages.
	accepts string
	// parse sets the setting in c from v. It returns errInvalid, or an
	// error saying more than accepts does (which never quotes a secret).
	parse func(c *config, v string) error
	// redact, when set, returns what of a value may be shown in an error
	// message: a secret's value never is.
	redact func(v string) string
}

// errInvalid is an option's parse error that says nothing beyond what the
// option accepts.
var errInvalid = errors.New("invalid value")

// options lists every setting, in the order -h and the README show them.
var options = []option{
	{"ADDR", "addr", "host:port", defaultAddr, "address to listen on; port 0 picks a free one",
		"host:port with a numeric port 0-65535, e.g. :8080 or 127.0.0.1:0",
		func(c *config, v string) error {
			_, port, err := net.SplitHostPort(v)
			p, perr := strconv.Atoi(port)
			if err != nil || perr != nil || p < 0 || p > 65535 {
				return errInvalid
			}
			c.Addr = v
			return nil
		}, nil},
	{"MAX_WORKERS", "max-workers", "int", strconv.Itoa(ingest.DefaultMaxWorkers),
		"number of workers storing tasks concurrently", intRange(1, ingest.MaxWorkersLimit),
		func(c *config, v string) error { return parseInt(v, ingest.ValidateMaxWorkers, &c.MaxWorkers) }, nil},
	{"MAX_QUEUE", "max-queue", "int", strconv.Itoa(ingest.DefaultMaxQueue),
		"capacity of the global task queue, in parcels", intRange(1, ingest.MaxQueueLimit),
		func(c *config, v string) error { return parseInt(v, ingest.ValidateMaxQueue, &c.MaxQueue) }, nil},
	{"SHARDS", "shards", "int", "0",
		"queues, each with its dispatcher and share of MAX_QUEUE and MAX_WORKERS; a request's parcels all go to one. 0: one per 8 CPUs (GOMAXPROCS)",
		"0, or an integer from 1 to " + strconv.Itoa(ingest.MaxShards) + " and at most MAX_QUEUE and MAX_WORKERS",
		func(c *config, v string) error { return parseInt(v, ingest.ValidateShards, &c.Shards) }, nil},
	{"MAX_QUEUE_BYTES", "max-queue-bytes", "size", formatSize(ingest.DefaultMaxQueueBytes),
		"most body bytes the queued requests may hold, from their reservation before the body is copied until every parcel is stored; at least MAX_BODY_BYTES",
		sizeRange(ingest.MinMaxQueueBytes, ingest.MaxQueueBytesLimit),
		func(c *config, v string) error { return parseSize(v, ingest.ValidateMaxQueueBytes, &c.MaxQueueBytes) }, nil},
	{"SINK", "sink", "name", defaultSink,
		"where tasks go: file (NDJSON segments in DATA_DIR), nats (a JetStream stream), kafka (a Kafka topic), sim (simulated store, random latency) or null (discard)",
		"file, nats, kafka, sim or null",
		func(c *config, v string) error {
			switch v = strings.ToLower(v); v {
			case "file", "nats", "kafka", "sim", "null":
				c.Sink = v
				return nil
			}
			return errInvalid
		}, nil},
	{"ACK", "ack", "mode", server.AckEnqueued.String(),
		"when a request is answered 202: enqueued (its parcels are queued) or persisted (its parcels are stored: fsynced, or acknowledged by JetStream or the Kafka brokers)",
		"enqueued or persisted",
		func(c *config, v string) error {
			a, err := server.ParseAck(v)
			if err != nil {
				return errInvalid
			}
			c.Ack = a
			return nil
		}, nil},
	{"ACK_TIMEOUT", "ack-timeout", "duration", formatDuration(server.DefaultAckTimeout),
		"with ACK=persisted, longest wait for a request's parcels to be stored before answering 503",
		positiveDuration(server.DefaultAckTimeout),
		func(c *config, v string) error { return parseDuration(v, server.ValidateTimeout, &c.AckTimeout) }, nil},
	{"DATA_DIR", "data-dir", "path", filesink.DefaultDir, "directory of the file sink's segments; created if missing",
		"a directory path",
		func(c *config, v string) error { return parseString(v, filesink.ValidateDir, &c.DataDir) }, nil},
	{"SEGMENT_BYTES", "segment-bytes", "size", formatSize(filesink.DefaultSegmentBytes),
		"file sink: a segment is closed and a new one started past this size",
		sizeRange(filesink.MinSegmentBytes, filesink.SegmentBytesLimit),
		func(c *config, v string) error { return parseSize(v, filesink.ValidateSegmentBytes, &c.SegmentBytes) }, nil},
	{"SEGMENT_AGE", "segment-age", "duration", formatDuration(filesink.DefaultSegmentAge),
		"file sink: a segment is closed and a new one started this long after it was opened; 0 disables",
		durationFromZero(filesink.DefaultSegmentAge),
		func(c *config, v string) error { return parseDuration(v, filesink.ValidateSegmentAge, &c.SegmentAge) }, nil},
	{"RETAIN_BYTES", "retain-bytes", "size", formatSize(filesink.DefaultRetainBytes),
		"file sink: the oldest closed segments are deleted while all segments together exceed this size",
		sizeRange(filesink.MinRetainBytes, filesink.RetainBytesLimit),
		func(c *config, v string) error { return parseSize(v, filesink.ValidateRetainBytes, &c.RetainBytes) }, nil},
	{"FSYNC_INTERVAL", "fsync-interval", "duration", formatDuration(filesink.DefaultFsyncInterval),
		"file sink: longest time a written parcel may stay unsynced; 0 fsyncs after every write",
		durationFromZero(filesink.DefaultFsyncInterval),
		func(c *config, v string) error {
			return parseDuration(v, filesink.ValidateFsyncInterval, &c.FsyncInterval)
		}, nil},
	{"S3_BUCKET", "s3-bucket", "name", "",
		"file sink: S3 bucket each closed segment is uploaded to, compressed; retention then deletes only shipped segments. Empty: no shipping",
		"an S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit",
		func(c *config, v string) error { return parseString(v, s3ship.ValidateBucket, &c.S3Bucket) }, nil},
	{"S3_PREFIX", "s3-prefix", "prefix", s3ship.DefaultPrefix,
		"with S3_BUCKET: what every object key starts with, before dt=YYYY-MM-DD/hour=HH/HOST/SEGMENT",
		"a key prefix of up to 512 bytes of UTF-8, without control characters, a leading / or an empty segment (//)",
		func(c *config, v string) error { return parseString(v, s3ship.ValidatePrefix, &c.S3Prefix) }, nil},
	{"S3_COMPRESSION", "s3-compression", "codec", s3ship.DefaultCompression,
		"with S3_BUCKET: how segments are compressed: gzip (.ndjson.gz), zstd (.ndjson.zst) or none (.ndjson)",
		"gzip, zstd or none",
		func(c *config, v string) error {
			if s3ship.ValidateCompression(v) != nil {
				return errInvalid // its message is the accepts text
			}
			c.S3Compression = v
			return nil
		}, nil},
	{"S3_UPLOAD_CONCURRENCY", "s3-upload-concurrency", "int", strconv.Itoa(s3ship.DefaultConcurrency),
		"with S3_BUCKET: segments uploaded at once", intRange(1, s3ship.MaxConcurrency),
		func(c *config, v string) error {
			return parseInt(v, s3ship.ValidateConcurrency, &c.S3UploadConcurrency)
		}, nil},
	{"NATS_URL", "nats-url", "urls", natssink.DefaultURL, "nats sink: server URLs, comma-separated",
		"nats://, tls://, ws:// or wss:// URLs with a host, comma-separated (no scheme: nats://)",
		func(c *config, v string) error { return parseString(v, natssink.ValidateURLs, &c.NATSURL) },
		natssink.RedactURLs},
	{"NATS_SUBJECT", "nats-subject", "subject", natssink.DefaultSubject, "nats sink: subject parcels are published to",
		"a literal subject: dot-separated tokens, none empty, without wildcards (*, >) or whitespace",
		func(c *config, v string) error { return parseString(v, natssink.ValidateSubject, &c.NATSSubject) }, nil},
	{"NATS_STREAM", "nats-stream", "name", natssink.DefaultStream,
		"nats sink: JetStream stream holding the subject; created if missing",
		"a stream name without whitespace, dots, slashes or wildcards",
		func(c *config, v string) error { return parseString(v, natssink.ValidateStream, &c.NATSStream) }, nil},
	{"NATS_REPLICAS", "nats-replicas", "int", strconv.Itoa(natssink.DefaultReplicas),
		"nats sink: replicas of a stream it creates", intRange(1, natssink.MaxReplicas),
		func(c *config, v string) error { return parseInt(v, natssink.ValidateReplicas, &c.NATSReplicas) }, nil},
	{"KAFKA_BROKERS", "kafka-brokers", "hosts", kafkasink.DefaultBrokers, "kafka sink: seed brokers, comma-separated",
		"host:port entries (a host alone: port 9092), comma-separated",
		func(c *config, v string) error { return parseString(v, kafkasink.ValidateBrokers, &c.KafkaBrokers) }, nil},
	{"KAFKA_TOPIC", "kafka-topic", "topic", kafkasink.DefaultTopic, "kafka sink: topic parcels are produced to",
		"1 to 249 ASCII letters, digits, '.', '_' or '-', but not . or ..",
		func(c *config, v string) error { return parseString(v, kafkasink.ValidateTopic, &c.KafkaTopic) }, nil},
	{"KAFKA_COMPRESSION", "kafka-compression", "codec", kafkasink.DefaultCompression,
		"kafka sink: compression of the record batches", "zstd, lz4, snappy, gzip or none",
		func(c *config, v string) error {
			if kafkasink.ValidateCompression(v) != nil {
				return errInvalid
			}
			c.KafkaCompression = strings.ToLower(v)
			return nil
		}, nil},
	{"KAFKA_LINGER", "kafka-linger", "duration", formatDuration(kafkasink.DefaultLinger),
		"kafka sink: how long a batch waits for more records before it is sent; 0 sends at once",
		"a duration from 0 to " + formatDuration(kafkasink.MaxLinger) + ", e.g. " + formatDuration(kafkasink.DefaultLinger),
		func(c *config, v string) error { return parseDuration(v, kafkasink.ValidateLinger, &c.KafkaLinger) }, nil},
	{"KAFKA_MAX_BUFFERED", "kafka-max-buffered", "size", formatSize(kafkasink.DefaultMaxBuffered),
		"kafka sink: most bytes of records (before compression) held until the brokers acknowledge them; more wait",
		sizeRange(kafkasink.MinMaxBuffered, kafkasink.MaxBufferedLimit),
		func(c *config, v string) error {
			return parseSize(v, kafkasink.ValidateMaxBuffered, &c.KafkaMaxBuffered)
		}, nil},
	{"KAFKA_TLS", "kafka-tls", "0|1", "0", "kafka sink: 1 connects to the brokers over TLS", "0 or 1",
		func(c *config, v string) error { return parseFlag(v, &c.KafkaTLS) }, nil},
	{"KAFKA_TLS_CA", "kafka-tls-ca", "path", "",
		"kafka sink: PEM file of the authorities that sign the brokers' certificates; empty: the system's; needs KAFKA_TLS=1",
		"a readable file path",
		func(c *config, v string) error { c.KafkaTLSCA = v; return nil }, nil},
	{"KAFKA_SASL_MECHANISM", "kafka-sasl-mechanism", "name", "",
		"kafka sink: SASL authentication (with KAFKA_SASL_USER and KAFKA_SASL_PASSWORD_FILE); empty: none",
		"PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, or empty",
		func(c *config, v string) error {
			if kafkasink.ValidateSASLMechanism(v) != nil {
				return errInvalid
			}
			c.KafkaSASLMechanism = strings.ToUpper(v)
			return nil
		}, nil},
	{"KAFKA_SASL_USER", "kafka-sasl-user", "name", "", "kafka sink: SASL user name",
		"up to 255 bytes without control characters",
		func(c *config, v string) error { return parseString(v, kafkasink.ValidateSASLUser, &c.KafkaSASLUser) }, nil},
	{"KAFKA_SASL_PASSWORD_FILE", "kafka-sasl-password-file", "path", "",
		"kafka sink: file holding the SASL password (a trailing newline is ignored); never logged",
		"a readable file path",
		func(c *config, v string) error { c.KafkaSASLPasswordFile = v; return nil }, nil},
	{"KAFKA_CREATE_TOPIC", "kafka-create-topic", "0|1", "0",
		"kafka sink: 1 creates a missing topic with KAFKA_PARTITIONS partitions and KAFKA_REPLICATION replicas", "0 or 1",
		func(c *config, v string) error { return parseFlag(v, &c.KafkaCreateTopic) }, nil},
	{"KAFKA_PARTITIONS", "kafka-partitions", "int", "0",
		"kafka sink: partitions of a topic it creates; 0: the cluster's default (num.partitions)",
		intRange(0, kafkasink.MaxPartitions),
		func(c *config, v string) error { return parseInt(v, kafkasink.ValidatePartitions, &c.KafkaPartitions) }, nil},
	{"KAFKA_REPLICATION", "kafka-replication", "int", "0",
		"kafka sink: replicas of a topic it creates; 0: the cluster's default (default.replication.factor)",
		intRange(0, kafkasink.MaxReplication),
		func(c *config, v string) error {
			return parseInt(v, kafkasink.ValidateReplication, &c.KafkaReplication)
		}, nil},
	{"ENQUEUE_TIMEOUT", "enqueue-timeout", "duration", formatDuration(ingest.DefaultEnqueueTimeout),
		"longest a request waits for queue room, body bytes and places together, before 503; 0 waits indefinitely",
		durationFromZero(ingest.DefaultEnqueueTimeout),
		func(c *config, v string) error {
			return parseDuration(v, ingest.ValidateEnqueueTimeout, &c.EnqueueTimeout)
		}, nil},
	{"READY_MAX_QUEUE_WAIT", "ready-max-queue-wait", "duration", formatDuration(server.DefaultReadyMaxQueueWait),
		"/readyz answers 503 while requests recently waited longer than this for queue room; 0 disables",
		durationFromZero(server.DefaultReadyMaxQueueWait),
		func(c *config, v string) error {
			return parseDuration(v, server.ValidateReadyMaxQueueWait, &c.ReadyMaxQueueWait)
		}, nil},
	{"MAX_CONNS", "max-conns", "int", strconv.Itoa(server.DefaultMaxConns),
		"most connections served at once; more get 503. Lowered at startup to fit the open-file limit",
		intRange(1, server.MaxConnsLimit),
		func(c *config, v string) error { return parseInt(v, server.ValidateMaxConns, &c.MaxConns) }, nil},
	{"READ_TIMEOUT", "read-timeout", "duration", formatDuration(server.DefaultReadTimeout),
		"longest time to read one whole request, body included", positiveDuration(server.DefaultReadTimeout),
		func(c *config, v string) error { return parseDuration(v, server.ValidateTimeout, &c.ReadTimeout) }, nil},
	{"WRITE_TIMEOUT", "write-timeout", "duration", formatDuration(server.DefaultWriteTimeout),
		"longest time to write one response", positiveDuration(server.DefaultWriteTimeout),
		func(c *config, v string) error { return parseDuration(v, server.ValidateTimeout, &c.WriteTimeout) }, nil},
	{"IDLE_TIMEOUT", "idle-timeout", "duration", formatDuration(server.DefaultIdleTimeout),
		"longest a keep-alive connection may wait for its next request", positiveDuration(server.DefaultIdleTimeout),
		func(c *config, v string) error { return parseDuration(v, server.ValidateTimeout, &c.IdleTimeout) }, nil},
	{"MAX_HEADER_BYTES", "max-header-bytes", "size", formatSize(server.DefaultMaxHeaderBytes),
		"largest request line and headers; larger get 431",
		sizeRange(server.MinMaxHeaderBytes, server.MaxHeaderBytesLimit),
		func(c *config, v string) error {
			return parseSize(v, func(n int64) error { return server.ValidateMaxHeaderBytes(int(n)) }, &c.MaxHeaderBytes)
		}, nil},
	{"AUTH_TOKEN", "auth-token", "token", "",
		"bearer token POST / (and /metrics, unless METRICS_PUBLIC=1) requires (Authorization: Bearer TOKEN); empty: no authentication",
		"a token of visible ASCII characters, without spaces",
		func(c *config, v string) error {
			if server.ValidateAuthToken(v) != nil {
				return errInvalid // the validator's message is the accepts text
			}
			c.AuthToken = v
			return nil
		},
		func(string) string { return "<redacted>" }}, // a secret stays out of logs, even a bad one
	{"AUTH_TOKEN_FILE", "auth-token-file", "path", "",
		"file holding the bearer token (instead of AUTH_TOKEN, which it may not be combined with)",
		"a readable file path",
		func(c *config, v string) error { c.AuthTokenFile = v; return nil }, nil},
	{"METRICS_PUBLIC", "metrics-public", "0|1", "0", "1: /metrics needs no token even when AUTH_TOKEN is set",
		"0 or 1",
		func(c *config, v string) error {
			if v != "0" && v != "1" {
				return errInvalid
			}
			c.MetricsPublic = v == "1"
			return nil
		}, nil},
	{"TLS_CERT", "tls-cert", "path", "", "PEM certificate (chain) file: serve HTTPS; needs TLS_KEY",
		"a readable file path",
		func(c *config, v string) error { c.TLSCert = v; return nil }, nil},
	{"TLS_KEY", "tls-key", "path", "", "PEM private key file for TLS_CERT", "a readable file path",
		func(c *config, v string) error { c.TLSKey = v; return nil }, nil},
	{"SIM_LATENCY", "sim-latency", "range", defaultSimLatency, "latency range of the sim sink, uniform",
		"a duration or a range min-max with min <= max, e.g. 5ms-55ms or 10ms",
		func(c *config, v string) error {
			lo, hi, isRange := strings.Cut(v, "-")
			if !isRange {
				hi = lo
			}
			from, err1 := time.ParseDuration(strings.TrimSpace(lo))
			to, err2 := time.ParseDuration(strings.TrimSpace(hi))
			if err1 != nil || err2 != nil {
				return errInvalid
			}
			if _, err := sink.NewSim(from, to); err != nil { // the sink's own check
				return errInvalid
			}
			c.SimMin, c.SimMax = from, to
			return nil
		}, nil},
	{"MAX_BODY_BYTES", "max-body-bytes", "size", formatSize(server.DefaultMaxBodyBytes),
		"largest request body accepted, also once decompressed; larger ones get 413",
		sizeRange(1, server.MaxBodyBytesLimit),
		func(c *config, v string) error {
			var n int64
			if err := parseSize(v, func(n int64) error { return server.ValidateMaxBodyBytes(int(n)) }, &n); err != nil {
				return err
			}
			c.MaxBodyBytes = int(n)
			return nil
		}, nil},
	{"LOG_LEVEL", "log-level", "level", defaultLogLevel, "log level; debug logs every parcel",
		"debug, info, warn or error",
		func(c *config, v string) error {
			switch strings.ToLower(v) {
			case "debug", "info", "warn", "error":
				if c.LogLevel.UnmarshalText([]byte(v)) == nil {
					return nil
				}
			}
			return errInvalid
		}, nil},
	{"SHUTDOWN_TIMEOUT", "shutdown-timeout", "duration", formatDuration(defaultShutdownTimeout),
		"longest wait, after SIGINT or SIGTERM (and DRAIN_DELAY), for requests to finish and the queue to drain",
		positiveDuration(defaultShutdownTimeout),
		func(c *config, v string) error { return parseDuration(v, validatePositive, &c.ShutdownTimeout) }, nil},
	{"DRAIN_DELAY", "drain-delay", "duration", formatDuration(defaultDrainDelay),
		"after SIGINT or SIGTERM, how long to keep serving with /readyz answering 503, so that load balancers stop sending traffic before the listener closes",
		durationFromZero(20 * time.Second),
		func(c *config, v string) error { return parseDuration(v, validateNotNegative, &c.DrainDelay) }, nil},
}

// configError is a setting with a value fastingest cannot use.
type configError struct {
	name, value, accepts string
	// reason, when not empty, says what is wrong beyond what accepts says.
	reason string
}

func (e *configError) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("invalid %s %q: %s; want %s", e.name, e.value, e.reason, e.accepts)
	}
	return fmt.Sprintf("invalid %s %q: want %s", e.name, e.value, e.accepts)
}

// errVersion is loadConfig's answer to -version, once it has printed it.
var errVersion = errors.New("version printed")

// loadConfig reads every option from its flag, else its environment
// variable, else its default. -h prints the options to out and returns
// flag.ErrHelp; -version prints the version to out and returns errVersion.
func loadConfig(args []string, lookupEnv func(string) (string, bool), out io.Writer) (config, error) {
	fs := flag.NewFlagSet("fastingest", flag.ContinueOnError)
	// The flag package would print a parse error and the whole usage;
	// run prints the error once, and -h prints the usage.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	flagValues := make([]*string, len(options))
	for i, o := range options {
		flagValues[i] = fs.String(o.flag, o.def, o.usage)
	}
	showVersion := fs.Bool("version", false, "print the version and exit")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printHelp(out, fs, flagValues, lookupEnv)
		return config{}, err
	}
	if err != nil {
		return config{}, fmt.Errorf("%w (fastingest -h lists the flags)", err)
	}
	if *showVersion {
		fmt.Fprintln(out, readBuildInfo())
		return config{}, errVersion
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected argument %q: fastingest takes flags only (see -h)", fs.Arg(0))
	}
	return parseOptions(fs, flagValues, lookupEnv)
}

// parseOptions parses every option from the flags set in fs (their values in
// flagValues, in the order of options), else the environment, else its
// default, and checks the settings against each other.
func parseOptions(fs *flag.FlagSet, flagValues []*string, lookupEnv func(string) (string, bool)) (config, error) {
	fromFlag := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { fromFlag[f.Name] = true })

	var c config
	given := map[string]bool{} // by variable: set in the environment or by its flag
	for i, o := range options {
		name, value := o.env+" (default)", o.def
		if v, ok := lookupEnv(o.env); ok && v != "" {
			name, value = o.env, v
			given[o.env] = true
		}
		if fromFlag[o.flag] {
			name, value = "-"+o.flag, *flagValues[i]
			given[o.env] = true
		}
		if err := o.parse(&c, value); err != nil {
			ce := &configError{name: name, value: value, accepts: o.accepts}
			if err != errInvalid {
				ce.reason = err.Error()
			}
			if o.redact != nil {
				ce.value = o.redact(value)
			}
			return config{}, ce
		}
	}
	if c.MaxQueueBytes < int64(c.MaxBodyBytes) {
		// The largest body could never be admitted.
		return config{}, &configError{name: "MAX_QUEUE_BYTES", value: strconv.FormatInt(c.MaxQueueBytes, 10),
			accepts: "at least MAX_BODY_BYTES (" + strconv.Itoa(c.MaxBodyBytes) + "): raise it, or lower MAX_BODY_BYTES"}
	}
	if err := ingest.ShardsFit(c.Shards, c.MaxQueue, c.MaxWorkers); err != nil { // 0 always fits
		return config{}, &configError{name: "SHARDS", value: strconv.Itoa(c.Shards), reason: err.Error(),
			accepts: "0, or at most MAX_QUEUE (" + strconv.Itoa(c.MaxQueue) + ") and MAX_WORKERS (" + strconv.Itoa(c.MaxWorkers) + ")"}
	}
	if err := c.checkKafka(); err != nil {
		return config{}, err
	}
	if err := c.checkS3(given); err != nil {
		return config{}, err
	}
	return c, nil
}

// printHelp writes -h's text to out: every option with its type, variable,
// default and what it accepts, then the memory bound of the settings given
// so far (or of the defaults, when those are invalid).
func printHelp(out io.Writer, fs *flag.FlagSet, flagValues []*string, lookupEnv func(string) (string, bool)) {
	var b strings.Builder
	b.WriteString("Usage: fastingest [flags]\n\n" +
		"fastingest accepts batches of parcels on POST / and stores them in a sink.\n" +
		"Every flag has an environment variable; the flag wins when both are set, and an empty variable counts as\n" +
		"unset. Sizes are bytes or a number with a KiB, MiB, GiB, TiB or PiB suffix; durations are Go durations\n" +
		"(500ms, 10s, 1h). An invalid value exits 2.\n\n")
	for _, o := range options {
		fmt.Fprintf(&b, "  -%s %s (env %s", o.flag, o.typ, o.env)
		if o.def != "" {
			fmt.Fprintf(&b, ", default %s", o.def)
		}
		b.WriteString(")\n")
		writeWrapped(&b, o.usage)
		writeWrapped(&b, "accepts "+o.accepts)
	}
	b.WriteString("  -version\n")
	writeWrapped(&b, "print the version and exit")
	b.WriteString("  -h, -help\n")
	writeWrapped(&b, "print this help and exit")

	c, err := parseOptions(fs, flagValues, lookupEnv)
	which := "the settings given"
	if err != nil {
		c, _ = parseOptions(flag.NewFlagSet("", flag.ContinueOnError), flagValues, func(string) (string, bool) { return "", false })
		which = "the defaults (the settings given are invalid: " + err.Error() + ")"
	}
	b.WriteString("\nMemory bound (docs/security.md#memory), before MAX_CONNS is fitted to the open-file limit:\n")
	writeWrapped(&b, memoryFormula())
	writeWrapped(&b, "= "+formatMiB(c.memoryBound().Total())+" for "+which+".")
	_, _ = io.WriteString(out, b.String())
}

// writeWrapped writes text indented under a flag, wrapped at 100 columns.
func writeWrapped(b *strings.Builder, text string) {
	const indent, width = "      ", 100
	line := indent
	for _, w := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	b.WriteString(line + "\n")
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
	attrs = append(attrs, "ack", c.Ack.String())
	if c.Ack == server.AckPersisted {
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
	case "kafka":
		attrs = append(attrs, c.kafkaLogAttrs()...)
	}
	return attrs
}

// parseInt reads an integer and checks it with validate, whose message the
// option's accepts text already says (both come from the same limits).
func parseInt(v string, validate func(int) error, dst *int) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || validate(n) != nil {
		return errInvalid
	}
	*dst = n
	return nil
}

// parseDuration reads a Go duration and checks it with validate.
func parseDuration(v string, validate func(time.Duration) error, dst *time.Duration) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || validate(d) != nil {
		return errInvalid
	}
	*dst = d
	return nil
}

// parseString checks a value with validate, whose error says what is wrong
// with it.
func parseString(v string, validate func(string) error, dst *string) error {
	if err := validate(v); err != nil {
		return err
	}
	*dst = v
	return nil
}

// sizeUnits are the suffixes parseSize reads, smallest first.
var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"PiB", 1 << 50}}

// parseSize reads a byte count such as 1048576, 512KiB or 1MiB, and checks
// it with validate.
func parseSize(v string, validate func(int64) error, dst *int64) error {
	v = strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range sizeUnits {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = strings.TrimSpace(s), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 || n > (1<<62)/mult || validate(n*mult) != nil {
		return errInvalid
	}
	*dst = n * mult
	return nil
}

// formatSize writes a byte count in the largest unit that divides it, as
// the settings are written: 256MiB, 8KiB, 1000.
func formatSize(n int64) string {
	for i := len(sizeUnits) - 1; i >= 0; i-- {
		if u := sizeUnits[i]; n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// formatDuration writes a duration in the largest unit that divides it, as
// the settings are written: 1h and 90s rather than time.Duration's 1h0m0s
// and 1m30s.
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}, {"ms", time.Millisecond}, {"µs", time.Microsecond}} {
		if d%u.unit == 0 {
			return strconv.FormatInt(int64(d/u.unit), 10) + u.suffix
		}
	}
	return d.String()
}

func intRange(min, max int) string {
	return "an integer from " + strconv.Itoa(min) + " to " + strconv.Itoa(max)
}

// sizeRange describes the sizes from min to max bytes, naming the suffixes
// up to max's.
func sizeRange(min, max int64) string {
	lo := formatSize(min)
	if min == 1 {
		lo = "1 byte"
	}
	var suffixes []string
	for _, u := range sizeUnits {
		if u.mult <= max {
			suffixes = append(suffixes, u.suffix)
		}
	}
	list := suffixes[0]
	if n := len(suffixes); n > 1 {
		list = strings.Join(suffixes[:n-1], ", ") + " or " + suffixes[n-1]
	}
	return "a size from " + lo + " to " + formatSize(max) + ": bytes, or with a " + list + " suffix"
}

func positiveDuration(example time.Duration) string {
	return "a positive duration, e.g. " + formatDuration(example)
}

func durationFromZero(example time.Duration) string {
	return "a duration of 0 or more, e.g. " + formatDuration(example)
}

func validatePositive(d time.Duration) error {
	if d <= 0 {
		return errInvalid
	}
	return nil
}

func validateNotNegative(d time.Duration) error {
	if d < 0 {
		return errInvalid
	}
	return nil
}

// loadSecrets reads the files the configuration names: the bearer token of
// AUTH_TOKEN_FILE and the TLS certificate and key. It returns the TLS
// configuration, nil without TLS_CERT. Errors are configuration errors:
// fastingest exits 2.
func (c *config) loadSecrets() (*tls.Config, error) {
	if err := c.loadKafkaSecrets(); err != nil {
		return nil, err
	}
	if c.AuthTokenFile != "" {
		if c.AuthToken != "" {
			return nil, errors.New("AUTH_TOKEN and AUTH_TOKEN_FILE are both set: set one")
		}
		b, err := os.ReadFile(c.AuthTokenFile)
		if err != nil {
			return nil, fmt.Errorf("invalid AUTH_TOKEN_FILE %q: %w; want a readable file holding one token",
				c.AuthTokenFile, pathErr(err))
		}
		c.AuthToken = strings.TrimRight(string(b), "\r\n")
		if c.AuthToken == "" || server.ValidateAuthToken(c.AuthToken) != nil {
			return nil, fmt.Errorf("invalid AUTH_TOKEN_FILE %q: want one token of visible ASCII characters, without spaces", c.AuthTokenFile)
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
		return nil, fmt.Errorf("invalid TLS_CERT %q or TLS_KEY %q: %w; want readable PEM files of a certificate (chain) and its private key",
			c.TLSCert, c.TLSKey, pathErr(err))
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// pathErr returns what went wrong with a file without its path, which the
// message that wraps it already gives.
func pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// parseFlag reads a 0 or 1 setting.
func parseFlag(v string, dst *bool) error {
	if v != "0" && v != "1" {
		return errInvalid
	}
	*dst = v == "1"
	return nil
}

// checkKafka checks the KAFKA_* settings that go together: SASL needs its
// mechanism, user and password file, and KAFKA_TLS_CA needs KAFKA_TLS=1.
func (c *config) checkKafka() error {
	sasl := c.KafkaSASLMechanism != "" || c.KafkaSASLUser != "" || c.KafkaSASLPasswordFile != ""
	if sasl && (c.KafkaSASLMechanism == "" || c.KafkaSASLUser == "" || c.KafkaSASLPasswordFile == "") {
		return &configError{name: "KAFKA_SASL_MECHANISM", value: c.KafkaSASLMechanism,
			reason:  "KAFKA_SASL_MECHANISM, KAFKA_SASL_USER and KAFKA_SASL_PASSWORD_FILE go together",
			accepts: "all three set, or none"}
	}
	if c.KafkaTLSCA != "" && !c.KafkaTLS {
		return &configError{name: "KAFKA_TLS_CA", value: c.KafkaTLSCA, accepts: "a file path together with KAFKA_TLS=1"}
	}
	return nil
}

// loadKafkaSecrets reads, for the kafka sink, the files KAFKA_TLS_CA and
// KAFKA_SASL_PASSWORD_FILE name. The password is never quoted.
func (c *config) loadKafkaSecrets() error {
	if c.Sink != "kafka" {
		return nil
	}
	if c.KafkaTLSCA != "" {
		b, err := os.ReadFile(c.KafkaTLSCA)
		if err == nil {
			err = kafkasink.ValidateCAPEM(b)
		}
		if err != nil {
			return fmt.Errorf("invalid KAFKA_TLS_CA %q: %w; want a readable file of PEM certificates", c.KafkaTLSCA, pathErr(err))
		}
		c.KafkaTLSCAPEM = string(b)
	}
	if c.KafkaSASLPasswordFile != "" {
		b, err := os.ReadFile(c.KafkaSASLPasswordFile)
		if err != nil {
			return fmt.Errorf("invalid KAFKA_SASL_PASSWORD_FILE %q: %w; want a readable file holding the password",
				c.KafkaSASLPasswordFile, pathErr(err))
		}
		c.KafkaSASLPassword = strings.TrimRight(string(b), "\r\n")
		if err := kafkasink.ValidateSASLPassword(c.KafkaSASLPassword); err != nil {
			return fmt.Errorf("invalid KAFKA_SASL_PASSWORD_FILE %q: the password: %w; want one line without control characters",
				c.KafkaSASLPasswordFile, err)
		}
	}
	return nil
}

// kafkaLogAttrs describes the kafka sink's settings for the startup line:
// the password file's path, never the password.
func (c config) kafkaLogAttrs() []any {
	attrs := []any{"kafka_brokers", c.KafkaBrokers, "kafka_topic", c.KafkaTopic,
		"kafka_compression", c.KafkaCompression, "kafka_linger", c.KafkaLinger.String(),
		"kafka_max_buffered", c.KafkaMaxBuffered, "kafka_tls", c.KafkaTLS}
	if c.KafkaTLSCA != "" {
		attrs = append(attrs, "kafka_tls_ca", c.KafkaTLSCA)
	}
	if c.KafkaSASLMechanism != "" {
		attrs = append(attrs, "kafka_sasl_mechanism", c.KafkaSASLMechanism, "kafka_sasl_user", c.KafkaSASLUser)
	}
	attrs = append(attrs, "kafka_create_topic", c.KafkaCreateTopic)
	if c.KafkaCreateTopic {
		attrs = append(attrs, "kafka_partitions", c.KafkaPartitions, "kafka_replication", c.KafkaReplication)
	}
	return attrs
}
