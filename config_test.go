package main

import (
	"errors"
	"flag"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/fastingest/fastingest/server"
)

// envMap is a lookupEnv backed by a map, so that tests never touch the
// process environment.
func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// defaultConfig is the configuration with nothing set, written out by hand
// rather than derived from options, so that a changed default fails a test.
func defaultConfig() config {
	return config{
		Addr:            ":8080",
		MaxWorkers:      1000,
		MaxQueue:        10000,
		MaxQueueBytes:   256 << 20,
		Sink:            "file",
		SimMin:          5 * time.Millisecond,
		SimMax:          55 * time.Millisecond,
		MaxBodyBytes:    1 << 20,
		LogLevel:        slog.LevelInfo,
		ShutdownTimeout: 30 * time.Second,
		Ack:             server.AckEnqueued,
		AckTimeout:      10 * time.Second,
		DataDir:         "./data",
		SegmentBytes:    128 << 20,
		SegmentAge:      time.Hour,
		RetainBytes:     1 << 30,
		FsyncInterval:   time.Second,
		NATSURL:         "nats://127.0.0.1:4222",
		NATSSubject:     "fastingest.parcels",
		NATSStream:      "FASTINGEST",
		NATSReplicas:    1,

		S3Prefix:            "fastingest/",
		S3Compression:       "gzip",
		S3UploadConcurrency: 2,

		KafkaBrokers:     "127.0.0.1:9092",
		KafkaTopic:       "fastingest.parcels",
		KafkaCompression: "zstd",
		KafkaLinger:      5 * time.Millisecond,
		KafkaMaxBuffered: 64 << 20,

		EnqueueTimeout:    5 * time.Second,
		ReadyMaxQueueWait: time.Second,
		MaxConns:          16384,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
}

// mustLoad calls loadConfig and fails the test on an error.
func mustLoad(t *testing.T, args []string, env map[string]string) config {
	t.Helper()
	c, err := loadConfig(args, envMap(env), io.Discard)
	if err != nil {
		t.Fatalf("loadConfig(%q, %v) error = %v; want nil", args, env, err)
	}
	return c
}

func TestLoadConfigDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"no environment", nil},
		// An empty variable is taken as unset, as shells make it easy to
		// export one by accident (ADDR= ./fastingest).
		{"empty variables", map[string]string{
			"ADDR": "", "MAX_WORKERS": "", "MAX_QUEUE": "", "SINK": "", "SIM_LATENCY": "",
			"MAX_BODY_BYTES": "", "LOG_LEVEL": "", "SHUTDOWN_TIMEOUT": "",
		}},
		{"unrelated variables", map[string]string{"PORT": "9999", "WORKERS": "3"}},
		{"empty limit and security variables", map[string]string{
			"ENQUEUE_TIMEOUT": "", "READY_MAX_QUEUE_WAIT": "", "MAX_CONNS": "", "READ_TIMEOUT": "",
			"WRITE_TIMEOUT": "", "IDLE_TIMEOUT": "", "MAX_HEADER_BYTES": "", "AUTH_TOKEN": "",
			"AUTH_TOKEN_FILE": "", "METRICS_PUBLIC": "", "TLS_CERT": "", "TLS_KEY": "",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := mustLoad(t, nil, tc.env), defaultConfig(); got != want {
				t.Errorf("loadConfig() = %+v; want %+v", got, want)
			}
		})
	}
}

func TestLoadConfigFromEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want func(c *config) // applied to defaultConfig()
	}{
		{map[string]string{"ADDR": "127.0.0.1:9090"}, func(c *config) { c.Addr = "127.0.0.1:9090" }},
		{map[string]string{"ADDR": "[::1]:0"}, func(c *config) { c.Addr = "[::1]:0" }},
		{map[string]string{"MAX_WORKERS": "7"}, func(c *config) { c.MaxWorkers = 7 }},
		{map[string]string{"MAX_WORKERS": " 8 "}, func(c *config) { c.MaxWorkers = 8 }},
		{map[string]string{"MAX_QUEUE": "1"}, func(c *config) { c.MaxQueue = 1 }},
		{map[string]string{"SINK": "null"}, func(c *config) { c.Sink = "null" }},
		{map[string]string{"SINK": "NULL"}, func(c *config) { c.Sink = "null" }},
		{map[string]string{"SIM_LATENCY": "1ms-2s"}, func(c *config) { c.SimMin, c.SimMax = time.Millisecond, 2*time.Second }},
		{map[string]string{"SIM_LATENCY": "10ms"}, func(c *config) { c.SimMin, c.SimMax = 10*time.Millisecond, 10*time.Millisecond }},
		{map[string]string{"SIM_LATENCY": "0s-0s"}, func(c *config) { c.SimMin, c.SimMax = 0, 0 }},
		{map[string]string{"MAX_BODY_BYTES": "512KiB"}, func(c *config) { c.MaxBodyBytes = 512 << 10 }},
		{map[string]string{"MAX_BODY_BYTES": "2MiB"}, func(c *config) { c.MaxBodyBytes = 2 << 20 }},
		{map[string]string{"MAX_BODY_BYTES": "1GiB", "MAX_QUEUE_BYTES": "1GiB"}, func(c *config) { c.MaxBodyBytes, c.MaxQueueBytes = 1<<30, 1<<30 }},
		{map[string]string{"MAX_QUEUE_BYTES": "64MiB"}, func(c *config) { c.MaxQueueBytes = 64 << 20 }},
		{map[string]string{"SHARDS": "2"}, func(c *config) { c.Shards = 2 }},
		{map[string]string{"SHARDS": "0"}, func(c *config) {}},
		{map[string]string{"MAX_QUEUE_BYTES": "1MiB"}, func(c *config) { c.MaxQueueBytes = 1 << 20 }}, // = MAX_BODY_BYTES
		{map[string]string{"MAX_BODY_BYTES": "4096"}, func(c *config) { c.MaxBodyBytes = 4096 }},
		{map[string]string{"LOG_LEVEL": "debug"}, func(c *config) { c.LogLevel = slog.LevelDebug }},
		{map[string]string{"LOG_LEVEL": "WARN"}, func(c *config) { c.LogLevel = slog.LevelWarn }},
		{map[string]string{"LOG_LEVEL": "error"}, func(c *config) { c.LogLevel = slog.LevelError }},
		{map[string]string{"SHUTDOWN_TIMEOUT": "1m30s"}, func(c *config) { c.ShutdownTimeout = 90 * time.Second }},
		{map[string]string{"DRAIN_DELAY": "20s"}, func(c *config) { c.DrainDelay = 20 * time.Second }},
		{map[string]string{"ADDR": ":1", "MAX_WORKERS": "2", "MAX_QUEUE": "3", "SINK": "null", "SIM_LATENCY": "4ms-5ms",
			"MAX_BODY_BYTES": "6KiB", "LOG_LEVEL": "error", "SHUTDOWN_TIMEOUT": "7s"},
			func(c *config) {
				c.Addr, c.MaxWorkers, c.MaxQueue, c.Sink = ":1", 2, 3, "null"
				c.SimMin, c.SimMax = 4*time.Millisecond, 5*time.Millisecond
				c.MaxBodyBytes, c.LogLevel, c.ShutdownTimeout = 6<<10, slog.LevelError, 7*time.Second
			}},
		{map[string]string{"SINK": "file"}, func(c *config) { c.Sink = "file" }},
		{map[string]string{"SINK": "nats"}, func(c *config) { c.Sink = "nats" }},
		{map[string]string{"ACK": "persisted"}, func(c *config) { c.Ack = server.AckPersisted }},
		{map[string]string{"ACK": "Enqueued"}, func(c *config) { c.Ack = server.AckEnqueued }},
		{map[string]string{"ACK_TIMEOUT": "2s"}, func(c *config) { c.AckTimeout = 2 * time.Second }},
		{map[string]string{"DATA_DIR": "/var/lib/fastingest"}, func(c *config) { c.DataDir = "/var/lib/fastingest" }},
		{map[string]string{"SEGMENT_BYTES": "1KiB"}, func(c *config) { c.SegmentBytes = 1 << 10 }},
		{map[string]string{"SEGMENT_BYTES": "1TiB"}, func(c *config) { c.SegmentBytes = 1 << 40 }},
		{map[string]string{"SEGMENT_AGE": "0"}, func(c *config) { c.SegmentAge = 0 }},
		{map[string]string{"SEGMENT_AGE": "15m"}, func(c *config) { c.SegmentAge = 15 * time.Minute }},
		{map[string]string{"RETAIN_BYTES": "20GiB"}, func(c *config) { c.RetainBytes = 20 << 30 }},
		{map[string]string{"FSYNC_INTERVAL": "0"}, func(c *config) { c.FsyncInterval = 0 }},
		{map[string]string{"FSYNC_INTERVAL": "100ms"}, func(c *config) { c.FsyncInterval = 100 * time.Millisecond }},
		{map[string]string{"NATS_URL": "nats://a:4222,nats://b:4222"}, func(c *config) { c.NATSURL = "nats://a:4222,nats://b:4222" }},
		// The NATS sink's rules: no scheme is nats://, an empty entry is skipped.
		{map[string]string{"NATS_URL": "a:4222, tls://b:4223,"}, func(c *config) { c.NATSURL = "a:4222, tls://b:4223," }},
		{map[string]string{"NATS_SUBJECT": "ingest.x"}, func(c *config) { c.NATSSubject = "ingest.x" }},
		{map[string]string{"NATS_STREAM": "PARCELS"}, func(c *config) { c.NATSStream = "PARCELS" }},
		{map[string]string{"NATS_REPLICAS": "3"}, func(c *config) { c.NATSReplicas = 3 }},
		{map[string]string{"SINK": "kafka"}, func(c *config) { c.Sink = "kafka" }},
		{map[string]string{"KAFKA_BROKERS": "b-1.msk:9094, b-2.msk:9094,"}, func(c *config) { c.KafkaBrokers = "b-1.msk:9094, b-2.msk:9094," }},
		{map[string]string{"KAFKA_TOPIC": "ingest.parcels-v1"}, func(c *config) { c.KafkaTopic = "ingest.parcels-v1" }},
		{map[string]string{"KAFKA_COMPRESSION": "LZ4"}, func(c *config) { c.KafkaCompression = "lz4" }},
		{map[string]string{"KAFKA_LINGER": "0"}, func(c *config) { c.KafkaLinger = 0 }},
		{map[string]string{"KAFKA_MAX_BUFFERED": "1GiB"}, func(c *config) { c.KafkaMaxBuffered = 1 << 30 }},
		{map[string]string{"KAFKA_TLS": "1", "KAFKA_TLS_CA": "/etc/kafka/ca.pem"},
			func(c *config) { c.KafkaTLS, c.KafkaTLSCA = true, "/etc/kafka/ca.pem" }},
		// The password file is read by loadSecrets, not by loadConfig.
		{map[string]string{"KAFKA_SASL_MECHANISM": "scram-sha-512", "KAFKA_SASL_USER": "fastingest",
			"KAFKA_SASL_PASSWORD_FILE": "/run/secrets/kafka"},
			func(c *config) {
				c.KafkaSASLMechanism, c.KafkaSASLUser, c.KafkaSASLPasswordFile = "SCRAM-SHA-512", "fastingest", "/run/secrets/kafka"
			}},
		{map[string]string{"KAFKA_CREATE_TOPIC": "1", "KAFKA_PARTITIONS": "12", "KAFKA_REPLICATION": "3"},
			func(c *config) { c.KafkaCreateTopic, c.KafkaPartitions, c.KafkaReplication = true, 12, 3 }},
		{map[string]string{"ENQUEUE_TIMEOUT": "0"}, func(c *config) { c.EnqueueTimeout = 0 }},
		{map[string]string{"ENQUEUE_TIMEOUT": "250ms"}, func(c *config) { c.EnqueueTimeout = 250 * time.Millisecond }},
		{map[string]string{"READY_MAX_QUEUE_WAIT": "0"}, func(c *config) { c.ReadyMaxQueueWait = 0 }},
		{map[string]string{"READY_MAX_QUEUE_WAIT": "100ms"}, func(c *config) { c.ReadyMaxQueueWait = 100 * time.Millisecond }},
		{map[string]string{"MAX_CONNS": "1"}, func(c *config) { c.MaxConns = 1 }},
		{map[string]string{"MAX_CONNS": "1000000"}, func(c *config) { c.MaxConns = 1_000_000 }},
		{map[string]string{"READ_TIMEOUT": "5s"}, func(c *config) { c.ReadTimeout = 5 * time.Second }},
		{map[string]string{"WRITE_TIMEOUT": "1m"}, func(c *config) { c.WriteTimeout = time.Minute }},
		{map[string]string{"IDLE_TIMEOUT": "1ms"}, func(c *config) { c.IdleTimeout = time.Millisecond }},
		{map[string]string{"MAX_HEADER_BYTES": "1KiB"}, func(c *config) { c.MaxHeaderBytes = 1 << 10 }},
		{map[string]string{"MAX_HEADER_BYTES": "64KiB"}, func(c *config) { c.MaxHeaderBytes = 64 << 10 }},
		{map[string]string{"MAX_HEADER_BYTES": "1MiB"}, func(c *config) { c.MaxHeaderBytes = 1 << 20 }},
		{map[string]string{"MAX_HEADER_BYTES": "4096"}, func(c *config) { c.MaxHeaderBytes = 4096 }},
		// Every visible ASCII character may be in a token.
		{map[string]string{"AUTH_TOKEN": "aZ09-._~+/=!\"#$%&'()*,:;<>?@[\\]^`{|}"},
			func(c *config) { c.AuthToken = "aZ09-._~+/=!\"#$%&'()*,:;<>?@[\\]^`{|}" }},
		// The file is read by loadSecrets, not by loadConfig.
		{map[string]string{"AUTH_TOKEN_FILE": "/run/secrets/token"}, func(c *config) { c.AuthTokenFile = "/run/secrets/token" }},
		{map[string]string{"METRICS_PUBLIC": "1"}, func(c *config) { c.MetricsPublic = true }},
		{map[string]string{"METRICS_PUBLIC": "0"}, func(c *config) { c.MetricsPublic = false }},
		{map[string]string{"TLS_CERT": "/etc/tls/cert.pem", "TLS_KEY": "/etc/tls/key.pem"},
			func(c *config) { c.TLSCert, c.TLSKey = "/etc/tls/cert.pem", "/etc/tls/key.pem" }},
	} {
		want := defaultConfig()
		tc.want(&want)
		if got := mustLoad(t, nil, tc.env); got != want {
			t.Errorf("loadConfig() with env %v = %+v; want %+v", tc.env, got, want)
		}
	}
}

func TestLoadConfigFlagWinsOverEnv(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string // a valid value for the same setting
		args []string
		want func(c *config) // applied to defaultConfig()
	}{
		{map[string]string{"ADDR": ":9090"}, []string{"-addr", "127.0.0.1:0"}, func(c *config) { c.Addr = "127.0.0.1:0" }},
		{map[string]string{"MAX_WORKERS": "7"}, []string{"-max-workers", "3"}, func(c *config) { c.MaxWorkers = 3 }},
		{map[string]string{"MAX_QUEUE": "7"}, []string{"-max-queue=5"}, func(c *config) { c.MaxQueue = 5 }},
		{map[string]string{"SINK": "sim"}, []string{"-sink", "null"}, func(c *config) { c.Sink = "null" }},
		{map[string]string{"SIM_LATENCY": "1ms-2ms"}, []string{"-sim-latency", "3ms-4ms"},
			func(c *config) { c.SimMin, c.SimMax = 3*time.Millisecond, 4*time.Millisecond }},
		{map[string]string{"MAX_BODY_BYTES": "2MiB"}, []string{"-max-body-bytes", "512KiB"}, func(c *config) { c.MaxBodyBytes = 512 << 10 }},
		{map[string]string{"LOG_LEVEL": "error"}, []string{"--log-level", "debug"}, func(c *config) { c.LogLevel = slog.LevelDebug }},
		{map[string]string{"SHUTDOWN_TIMEOUT": "1s"}, []string{"-shutdown-timeout", "2s"}, func(c *config) { c.ShutdownTimeout = 2 * time.Second }},
		// The flag wins without the variable being parsed, so a bad
		// variable the flag overrides is not an error.
		{map[string]string{"MAX_QUEUE": "lots"}, []string{"-max-queue", "9"}, func(c *config) { c.MaxQueue = 9 }},
		// A flag given its default value still wins over the variable.
		{map[string]string{"SINK": "null"}, []string{"-sink", "sim"}, func(c *config) { c.Sink = "sim" }},
		{map[string]string{"S3_BUCKET": "my-logs", "S3_PREFIX": "", "S3_COMPRESSION": "zstd"},
			[]string{"-s3-upload-concurrency", "8"}, func(c *config) {
				c.S3Bucket, c.S3Compression, c.S3UploadConcurrency = "my-logs", "zstd", 8
			}},
		{nil, []string{"-s3-bucket", "my-logs", "-s3-prefix", ""}, func(c *config) { c.S3Bucket, c.S3Prefix = "my-logs", "" }},
	} {
		want := defaultConfig()
		tc.want(&want)
		if got := mustLoad(t, tc.args, tc.env); got != want {
			t.Errorf("loadConfig(%q) with env %v = %+v; want %+v", tc.args, tc.env, got, want)
		}
	}
}

func TestLoadConfigInvalid(t *testing.T) {
	// invalid notes the settings the cases below set, by variable or flag:
	// every option that can be invalid must have a case. The file paths
	// are checked once read (loadSecrets, tls_test.go).
	invalid := map[string]bool{"AUTH_TOKEN_FILE": true, "TLS_CERT": true, "TLS_KEY": true,
		"KAFKA_SASL_PASSWORD_FILE": true} // read by loadSecrets too (kafka_config_test.go)
	defer func() {
		for _, o := range options {
			if !invalid[o.env] && !invalid[o.flag] {
				t.Errorf("no invalid value of %s is tested", o.env)
			}
		}
	}()
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		// want are substrings of the error: the setting, its value
		// and what is accepted.
		want []string
		// notWant must not appear, e.g. the variable's name when the
		// bad value came from the flag.
		notWant []string
	}{
		{name: "non-numeric MAX_QUEUE", env: map[string]string{"MAX_QUEUE": "lots"},
			want: []string{"MAX_QUEUE", `"lots"`, "an integer from 1 to 10000000"}},
		{name: "MAX_QUEUE too large", env: map[string]string{"MAX_QUEUE": "10000001"},
			want: []string{"MAX_QUEUE", `"10000001"`, "an integer from 1 to 10000000"}},
		{name: "non-numeric -max-queue", env: map[string]string{"MAX_QUEUE": "5"}, args: []string{"-max-queue", "lots"},
			want: []string{"-max-queue", `"lots"`, "an integer from 1 to 10000000"}, notWant: []string{"MAX_QUEUE"}},
		{name: "MAX_WORKERS=0", env: map[string]string{"MAX_WORKERS": "0"},
			want: []string{"MAX_WORKERS", `"0"`, "an integer from 1 to 1000000"}},
		{name: "MAX_WORKERS=-3", env: map[string]string{"MAX_WORKERS": "-3"},
			want: []string{"MAX_WORKERS", `"-3"`, "an integer from 1 to 1000000"}},
		{name: "-max-workers 0", args: []string{"-max-workers", "0"},
			want: []string{"-max-workers", `"0"`, "an integer from 1 to 1000000"}, notWant: []string{"MAX_WORKERS"}},
		{name: "inverted SIM_LATENCY", env: map[string]string{"SIM_LATENCY": "55ms-5ms"},
			want: []string{"SIM_LATENCY", `"55ms-5ms"`, "min <= max", "5ms-55ms"}},
		{name: "inverted -sim-latency", args: []string{"-sim-latency", "55ms-5ms"},
			want: []string{"-sim-latency", `"55ms-5ms"`, "min <= max"}, notWant: []string{"SIM_LATENCY"}},
		{name: "SIM_LATENCY without unit", env: map[string]string{"SIM_LATENCY": "5-55"},
			want: []string{"SIM_LATENCY", `"5-55"`, "a duration or a range min-max"}},
		{name: "unknown SINK", env: map[string]string{"SINK": "postgres"},
			want: []string{"SINK", `"postgres"`, "file, nats, kafka, sim or null"}},
		{name: "unknown ACK", env: map[string]string{"ACK": "fsync"},
			want: []string{"ACK", `"fsync"`, "enqueued or persisted"}},
		{name: "ACK_TIMEOUT=0", env: map[string]string{"ACK_TIMEOUT": "0"},
			want: []string{"ACK_TIMEOUT", `"0"`, "a positive duration"}},
		{name: "SEGMENT_BYTES too small", env: map[string]string{"SEGMENT_BYTES": "100"},
			want: []string{"SEGMENT_BYTES", `"100"`, "from 1KiB"}},
		{name: "SEGMENT_AGE negative", env: map[string]string{"SEGMENT_AGE": "-1h"},
			want: []string{"SEGMENT_AGE", `"-1h"`, "0 or more"}},
		{name: "RETAIN_BYTES not a size", env: map[string]string{"RETAIN_BYTES": "lots"},
			want: []string{"RETAIN_BYTES", `"lots"`, "a size"}},
		{name: "FSYNC_INTERVAL without unit", env: map[string]string{"FSYNC_INTERVAL": "5"},
			want: []string{"FSYNC_INTERVAL", `"5"`, "a duration"}},
		// The S3 settings are checked by the shipper's validators
		// (sink/s3ship), and against each other and the sink.
		{name: "S3_BUCKET with capitals", env: map[string]string{"S3_BUCKET": "My_Bucket"},
			want: []string{"S3_BUCKET", `"My_Bucket"`, "lowercase letters", "3-63"}},
		{name: "S3_PREFIX with a leading slash", env: map[string]string{"S3_BUCKET": "logs", "S3_PREFIX": "/x/"},
			want: []string{"S3_PREFIX", `"/x/"`, "does not start with /", "a key prefix"}},
		{name: "S3_COMPRESSION=lz4", env: map[string]string{"S3_BUCKET": "logs", "S3_COMPRESSION": "lz4"},
			want: []string{"S3_COMPRESSION", `"lz4"`, "gzip, zstd or none"}},
		{name: "S3_UPLOAD_CONCURRENCY=0", env: map[string]string{"S3_BUCKET": "logs", "S3_UPLOAD_CONCURRENCY": "0"},
			want: []string{"S3_UPLOAD_CONCURRENCY", `"0"`, "an integer from 1 to 64"}},
		{name: "S3_PREFIX without S3_BUCKET", env: map[string]string{"S3_PREFIX": "mine/"},
			want: []string{"S3_BUCKET", `""`, "S3_PREFIX means nothing without S3_BUCKET"}},
		{name: "-s3-compression without S3_BUCKET", args: []string{"-s3-compression", "zstd"},
			want: []string{"S3_BUCKET", "S3_COMPRESSION means nothing without S3_BUCKET"}},
		{name: "S3_BUCKET with SINK=nats", env: map[string]string{"S3_BUCKET": "logs", "SINK": "nats"},
			want: []string{"S3_BUCKET", `"logs"`, "SINK=file"}},
		// The NATS settings are checked by the sink's own validators,
		// so that what it would refuse exits 2 here, not 1 later.
		{name: "NATS_URL of another scheme", env: map[string]string{"NATS_URL": "http://x"},
			want: []string{"NATS_URL", `"http://x"`, `scheme "http" is not nats, tls, ws or wss`, "comma-separated"}},
		{name: "NATS_URL of commas only", env: map[string]string{"NATS_URL": " , "},
			want: []string{"NATS_URL", "URL is empty", "comma-separated"}},
		{name: "NATS_URL without a host", env: map[string]string{"NATS_URL": "nats://:4222"},
			want: []string{"NATS_URL", "has no host"}},
		// Credentials in a NATS URL are secrets: redacted in the value
		// and in the reason.
		{name: "NATS_URL with a password", env: map[string]string{"NATS_URL": "http://u:sesame@x"},
			want: []string{"NATS_URL", `"http://redacted@x"`, `scheme "http"`}, notWant: []string{"sesame"}},
		{name: "unparsable NATS_URL with a password", env: map[string]string{"NATS_URL": "nats://u:sesame@x:port"},
			want: []string{"NATS_URL", "invalid NATS URL", "invalid port"}, notWant: []string{"sesame"}},
		{name: "NATS_SUBJECT wildcard", env: map[string]string{"NATS_SUBJECT": "parcels.>"},
			want: []string{"NATS_SUBJECT", `"parcels.>"`, "a wildcard", "without wildcards"}},
		{name: "NATS_SUBJECT with an empty token", env: map[string]string{"NATS_SUBJECT": "a..b"},
			want: []string{"NATS_SUBJECT", `"a..b"`, "an empty token", "dot-separated tokens, none empty"}},
		{name: "-nats-subject empty", args: []string{"-nats-subject", ""},
			want: []string{"-nats-subject", `""`, "empty"}},
		{name: "NATS_STREAM with a dot", env: map[string]string{"NATS_STREAM": "a.b"},
			want: []string{"NATS_STREAM", `"a.b"`, `'.'`, "dots"}},
		{name: "NATS_REPLICAS=7", env: map[string]string{"NATS_REPLICAS": "7"},
			want: []string{"NATS_REPLICAS", `"7"`, "an integer from 1 to 5"}},
		// The Kafka settings are checked by the sink's own validators.
		{name: "KAFKA_BROKERS of commas only", env: map[string]string{"KAFKA_BROKERS": " , "},
			want: []string{"KAFKA_BROKERS", "no broker", "host:port entries"}},
		{name: "KAFKA_BROKERS as a URL", env: map[string]string{"KAFKA_BROKERS": "kafka://b:9092"},
			want: []string{"KAFKA_BROKERS", `"kafka://b:9092"`, "not host:port"}},
		{name: "KAFKA_TOPIC with a slash", env: map[string]string{"KAFKA_TOPIC": "a/b"},
			want: []string{"KAFKA_TOPIC", `"a/b"`, `'/' is not allowed`, "1 to 249 ASCII letters"}},
		{name: "KAFKA_COMPRESSION brotli", env: map[string]string{"KAFKA_COMPRESSION": "brotli"},
			want: []string{"KAFKA_COMPRESSION", `"brotli"`, "zstd, lz4, snappy, gzip or none"}},
		{name: "KAFKA_LINGER too long", env: map[string]string{"KAFKA_LINGER": "2m"},
			want: []string{"KAFKA_LINGER", `"2m"`, "a duration from 0 to 1m"}},
		{name: "KAFKA_MAX_BUFFERED too small", env: map[string]string{"KAFKA_MAX_BUFFERED": "64KiB"},
			want: []string{"KAFKA_MAX_BUFFERED", `"64KiB"`, "a size from 1MiB to 1TiB"}},
		{name: "KAFKA_TLS=yes", env: map[string]string{"KAFKA_TLS": "yes"},
			want: []string{"KAFKA_TLS", `"yes"`, "0 or 1"}},
		{name: "KAFKA_TLS_CA without KAFKA_TLS", env: map[string]string{"KAFKA_TLS_CA": "/etc/kafka/ca.pem"},
			want: []string{"KAFKA_TLS_CA", `"/etc/kafka/ca.pem"`, "together with KAFKA_TLS=1"}},
		{name: "KAFKA_SASL_MECHANISM GSSAPI", env: map[string]string{"KAFKA_SASL_MECHANISM": "GSSAPI"},
			want: []string{"KAFKA_SASL_MECHANISM", `"GSSAPI"`, "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"}},
		{name: "KAFKA_SASL_MECHANISM without a user", env: map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN",
			"KAFKA_SASL_PASSWORD_FILE": "/run/secrets/kafka"},
			want: []string{"KAFKA_SASL_MECHANISM", `"PLAIN"`, "go together", "all three set, or none"}},
		{name: "KAFKA_SASL_USER with a tab", env: map[string]string{"KAFKA_SASL_USER": "a\tb"},
			want: []string{"KAFKA_SASL_USER", "a control character", "without control characters"}},
		{name: "KAFKA_CREATE_TOPIC=true", env: map[string]string{"KAFKA_CREATE_TOPIC": "true"},
			want: []string{"KAFKA_CREATE_TOPIC", `"true"`, "0 or 1"}},
		{name: "KAFKA_PARTITIONS negative", env: map[string]string{"KAFKA_PARTITIONS": "-1"},
			want: []string{"KAFKA_PARTITIONS", `"-1"`, "an integer from 0 to 10000"}},
		{name: "KAFKA_REPLICATION=33", env: map[string]string{"KAFKA_REPLICATION": "33"},
			want: []string{"KAFKA_REPLICATION", `"33"`, "an integer from 0 to 32"}},
		{name: "DATA_DIR empty", args: []string{"-data-dir", ""},
			want: []string{"-data-dir", `""`, "a directory path"}},
		{name: "FSYNC_INTERVAL negative", env: map[string]string{"FSYNC_INTERVAL": "-1s"},
			want: []string{"FSYNC_INTERVAL", `"-1s"`, "a duration of 0 or more"}},
		{name: "RETAIN_BYTES too large", env: map[string]string{"RETAIN_BYTES": "2PiB"},
			want: []string{"RETAIN_BYTES", `"2PiB"`, "a size from 1KiB to 1PiB", "KiB, MiB, GiB, TiB or PiB"}},
		{name: "bad LOG_LEVEL", env: map[string]string{"LOG_LEVEL": "verbose"},
			want: []string{"LOG_LEVEL", `"verbose"`, "debug, info, warn or error"}},
		{name: "LOG_LEVEL with offset", env: map[string]string{"LOG_LEVEL": "info+2"},
			want: []string{"LOG_LEVEL", `"info+2"`, "debug, info, warn or error"}},
		{name: "SHUTDOWN_TIMEOUT=0", env: map[string]string{"SHUTDOWN_TIMEOUT": "0"},
			want: []string{"SHUTDOWN_TIMEOUT", `"0"`, "a positive duration"}},
		{name: "DRAIN_DELAY negative", env: map[string]string{"DRAIN_DELAY": "-5s"},
			want: []string{"DRAIN_DELAY", `"-5s"`, "a duration of 0 or more"}},
		{name: "SHUTDOWN_TIMEOUT without unit", env: map[string]string{"SHUTDOWN_TIMEOUT": "30"},
			want: []string{"SHUTDOWN_TIMEOUT", `"30"`, "a positive duration"}},
		{name: "MAX_BODY_BYTES=0", env: map[string]string{"MAX_BODY_BYTES": "0"},
			want: []string{"MAX_BODY_BYTES", `"0"`, "a size from 1 byte to 1GiB"}},
		{name: "MAX_BODY_BYTES=2GiB", env: map[string]string{"MAX_BODY_BYTES": "2GiB"},
			want: []string{"MAX_BODY_BYTES", `"2GiB"`, "a size from 1 byte to 1GiB", "KiB, MiB or GiB suffix"}},
		{name: "MAX_QUEUE_BYTES below MAX_BODY_BYTES", env: map[string]string{"MAX_QUEUE_BYTES": "512KiB"},
			want: []string{"MAX_QUEUE_BYTES", `"524288"`, "at least MAX_BODY_BYTES (1048576)"}},
		{name: "MAX_BODY_BYTES above the default MAX_QUEUE_BYTES", env: map[string]string{"MAX_BODY_BYTES": "1GiB"},
			want: []string{"MAX_QUEUE_BYTES", `"268435456"`, "at least MAX_BODY_BYTES (1073741824)", "raise it"}},
		{name: "SHARDS=-1", env: map[string]string{"SHARDS": "-1"},
			want: []string{"SHARDS", `"-1"`, "0, or an integer from 1 to 256"}},
		{name: "SHARDS=257", env: map[string]string{"SHARDS": "257"},
			want: []string{"SHARDS", `"257"`, "0, or an integer from 1 to 256"}},
		{name: "SHARDS above MAX_WORKERS", env: map[string]string{"SHARDS": "4", "MAX_WORKERS": "3"},
			want: []string{"SHARDS", `"4"`, "more shards than MAX_WORKERS workers (3)", "MAX_WORKERS (3)"}},
		{name: "SHARDS above MAX_QUEUE", env: map[string]string{"SHARDS": "4", "MAX_QUEUE": "2"},
			want: []string{"SHARDS", `"4"`, "more shards than MAX_QUEUE places (2)"}},
		{name: "MAX_QUEUE_BYTES=0", env: map[string]string{"MAX_QUEUE_BYTES": "0"},
			want: []string{"MAX_QUEUE_BYTES", `"0"`, "a size from 1KiB to 1TiB"}},
		{name: "MAX_BODY_BYTES with unknown suffix", env: map[string]string{"MAX_BODY_BYTES": "1MB"},
			want: []string{"MAX_BODY_BYTES", `"1MB"`, "KiB, MiB or GiB"}},
		{name: "ADDR without port", env: map[string]string{"ADDR": "localhost"},
			want: []string{"ADDR", `"localhost"`, "host:port"}},
		{name: "ADDR port out of range", env: map[string]string{"ADDR": ":99999"},
			want: []string{"ADDR", `":99999"`, "numeric port 0-65535"}},
		{name: "ADDR port not numeric", env: map[string]string{"ADDR": "127.0.0.1:http"},
			want: []string{"ADDR", `"127.0.0.1:http"`, "numeric port"}},
		{name: "-addr without port", args: []string{"-addr", "127.0.0.1"},
			want: []string{"-addr", `"127.0.0.1"`, "host:port"}},
		{name: "ENQUEUE_TIMEOUT negative", env: map[string]string{"ENQUEUE_TIMEOUT": "-1s"},
			want: []string{"ENQUEUE_TIMEOUT", `"-1s"`, "a duration of 0 or more"}},
		{name: "ENQUEUE_TIMEOUT without unit", env: map[string]string{"ENQUEUE_TIMEOUT": "5"},
			want: []string{"ENQUEUE_TIMEOUT", `"5"`, "a duration of 0 or more"}},
		{name: "READY_MAX_QUEUE_WAIT negative", env: map[string]string{"READY_MAX_QUEUE_WAIT": "-1ms"},
			want: []string{"READY_MAX_QUEUE_WAIT", `"-1ms"`, "a duration of 0 or more"}},
		{name: "MAX_CONNS=0", env: map[string]string{"MAX_CONNS": "0"},
			want: []string{"MAX_CONNS", `"0"`, "an integer from 1 to 1000000"}},
		{name: "MAX_CONNS too large", env: map[string]string{"MAX_CONNS": "1000001"},
			want: []string{"MAX_CONNS", `"1000001"`, "an integer from 1 to 1000000"}},
		{name: "READ_TIMEOUT=0", env: map[string]string{"READ_TIMEOUT": "0"},
			want: []string{"READ_TIMEOUT", `"0"`, "a positive duration"}},
		{name: "WRITE_TIMEOUT negative", env: map[string]string{"WRITE_TIMEOUT": "-1s"},
			want: []string{"WRITE_TIMEOUT", `"-1s"`, "a positive duration"}},
		{name: "IDLE_TIMEOUT=0", env: map[string]string{"IDLE_TIMEOUT": "0"},
			want: []string{"IDLE_TIMEOUT", `"0"`, "a positive duration"}},
		{name: "MAX_HEADER_BYTES=512", env: map[string]string{"MAX_HEADER_BYTES": "512"},
			want: []string{"MAX_HEADER_BYTES", `"512"`, "a size from 1KiB to 1MiB"}},
		{name: "MAX_HEADER_BYTES=2MiB", env: map[string]string{"MAX_HEADER_BYTES": "2MiB"},
			want: []string{"MAX_HEADER_BYTES", `"2MiB"`, "a size from 1KiB to 1MiB"}},
		{name: "METRICS_PUBLIC=yes", env: map[string]string{"METRICS_PUBLIC": "yes"},
			want: []string{"METRICS_PUBLIC", `"yes"`, "0 or 1"}},
		{name: "METRICS_PUBLIC=true", env: map[string]string{"METRICS_PUBLIC": "true"},
			want: []string{"METRICS_PUBLIC", `"true"`, "0 or 1"}},
		// A token is a secret even when it is invalid: the error names
		// the setting and what it accepts, never the value.
		{name: "AUTH_TOKEN with a space", env: map[string]string{"AUTH_TOKEN": "open sesame"},
			want: []string{"AUTH_TOKEN", "<redacted>", "visible ASCII"}, notWant: []string{"open", "sesame"}},
		{name: "AUTH_TOKEN with a tab", env: map[string]string{"AUTH_TOKEN": "open\tsesame"},
			want: []string{"AUTH_TOKEN", "<redacted>"}, notWant: []string{"open", "sesame"}},
		{name: "AUTH_TOKEN not ASCII", env: map[string]string{"AUTH_TOKEN": "sésame"},
			want: []string{"AUTH_TOKEN", "<redacted>"}, notWant: []string{"sésame", "s\\u00e9same", "s\\xc3"}},
		{name: "-auth-token with a space", args: []string{"-auth-token", "open sesame"},
			want: []string{"-auth-token", "<redacted>"}, notWant: []string{"open", "sesame", "AUTH_TOKEN"}},
	} {
		for k := range tc.env {
			invalid[k] = true
		}
		for _, a := range tc.args {
			invalid[strings.TrimLeft(a, "-")] = true
		}
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadConfig(tc.args, envMap(tc.env), io.Discard)
			if err == nil {
				t.Fatalf("loadConfig(%q) with env %v = %+v, nil; want an error", tc.args, tc.env, c)
			}
			if got, want := c, (config{}); got != want {
				t.Errorf("loadConfig() returned config %+v with its error; want the zero config", got)
			}
			var ce *configError
			if !errors.As(err, &ce) {
				t.Errorf("loadConfig() error = %T %v; want a *configError", err, err)
			}
			msg := err.Error()
			for _, s := range tc.want {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(msg, s) {
					t.Errorf("error %q contains %q; the bad value came from elsewhere", msg, s)
				}
			}
		})
	}
}

func TestLoadConfigRejectsArguments(t *testing.T) {
	for _, args := range [][]string{
		{"serve"},
		{"-sink", "null", "extra"},
	} {
		_, err := loadConfig(args, envMap(nil), io.Discard)
		if err == nil || !strings.Contains(err.Error(), "unexpected argument") {
			t.Errorf("loadConfig(%q) error = %v; want an unexpected argument error", args, err)
		}
	}
	// The error names the flag; nothing else is printed, so run reports it
	// once instead of after a screenful of usage.
	var out strings.Builder
	_, err := loadConfig([]string{"-no-such-flag"}, envMap(nil), &out)
	if err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("loadConfig(-no-such-flag) error = %v; want one naming the flag", err)
	}
	if out.Len() != 0 {
		t.Errorf("output for an unknown flag = %q; want none (the error says it)", out.String())
	}
}

func TestLoadConfigHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var out strings.Builder
		// A bad variable does not stop -h: its footer falls back to the
		// defaults' memory bound.
		_, err := loadConfig([]string{arg}, envMap(map[string]string{"MAX_QUEUE": "bad"}), &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("loadConfig(%q) error = %v; want flag.ErrHelp", arg, err)
		}
		help := out.String()
		for _, o := range []struct{ flag, entry string }{
			{"addr", "-addr host:port (env ADDR, default :8080)\n"},
			{"max-workers", "-max-workers int (env MAX_WORKERS, default 1000)\n"},
			{"max-queue-bytes", "-max-queue-bytes size (env MAX_QUEUE_BYTES, default 256MiB)\n"},
			{"sim-latency", "-sim-latency range (env SIM_LATENCY, default 5ms-55ms)\n"},
			{"segment-age", "-segment-age duration (env SEGMENT_AGE, default 1h)\n"},
			{"auth-token", "-auth-token token (env AUTH_TOKEN)\n"},
		} {
			if !strings.Contains(help, "  "+o.entry) {
				t.Errorf("%s output has no line %q:\n%s", arg, o.entry, help)
			}
		}
		wantContains(t, arg+" output", help,
			"accepts an integer from 1 to 10000000", // the range, not just a type
			"accepts a size from 1KiB to 1MiB: bytes, or with a KiB or MiB suffix",
			"accepts a positive duration, e.g. 30s",
			"  -version\n", "MAX_CONNS × (MAX_HEADER_BYTES + 12KiB)", "for the defaults (the settings given are invalid")
	}
}

// The footer of -h gives the memory bound of the settings given.
func TestHelpMemoryBound(t *testing.T) {
	var out strings.Builder
	env := map[string]string{"MAX_CONNS": "100", "MAX_QUEUE_BYTES": "8MiB"}
	if _, err := loadConfig([]string{"-max-workers", "10", "-h"}, envMap(env), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("loadConfig(-h) error = %v; want flag.ErrHelp", err)
	}
	c := mustLoad(t, []string{"-max-workers", "10"}, env)
	wantContains(t, "-h output", out.String(), "= "+formatMiB(c.memoryBound().Total())+" for the settings given.")
}

func TestLoadConfigVersion(t *testing.T) {
	for _, arg := range []string{"-version", "--version"} {
		var out strings.Builder
		_, err := loadConfig([]string{arg}, envMap(map[string]string{"MAX_QUEUE": "bad"}), &out)
		if !errors.Is(err, errVersion) {
			t.Errorf("loadConfig(%q) error = %v; want errVersion", arg, err)
		}
		if got, want := out.String(), readBuildInfo().String()+"\n"; got != want {
			t.Errorf("loadConfig(%q) printed %q; want %q", arg, got, want)
		}
	}
}

func TestBuildInfo(t *testing.T) {
	b := buildInfo{Version: "v1.2.3", Revision: "abc123", Modified: true, GoVersion: "go1.26.8"}
	if got, want := b.String(), "fastingest v1.2.3 (revision abc123, modified, go1.26.8)"; got != want {
		t.Errorf("String() = %q; want %q", got, want)
	}
	b.Version = `v1"\` + "\n"
	want := "# HELP fastingest_build_info The running build: its version, VCS revision and Go version. Always 1.\n" +
		"# TYPE fastingest_build_info gauge\n" +
		`fastingest_build_info{version="v1\"\\\n",revision="abc123-modified",goversion="go1.26.8"} 1` + "\n"
	if got := b.metric(); got != want {
		t.Errorf("metric() = %q; want %q", got, want)
	}
	// Prometheus' own parser and promlint check it too, in
	// TestBuildInfoMetricParses (e2e: their packages make the test
	// binary of every go test ./... slower to link).
	// The -ldflags stamp wins over what the Go tool recorded.
	defer func(v string) { version = v }(version)
	version = "v9.9.9"
	if got := readBuildInfo().Version; got != "v9.9.9" {
		t.Errorf("readBuildInfo().Version = %q with main.version stamped; want v9.9.9", got)
	}
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{formatSize(256 << 20), "256MiB"},
		{formatSize(1 << 30), "1GiB"},
		{formatSize(1536), "1536"},
		{formatSize(3 << 10), "3KiB"},
		{formatDuration(time.Hour), "1h"},
		{formatDuration(90 * time.Minute), "90m"},
		{formatDuration(10 * time.Minute), "10m"},
		{formatDuration(90 * time.Second), "90s"},
		{formatDuration(1500 * time.Millisecond), "1500ms"},
		{formatDuration(time.Nanosecond), "1ns"},
		{formatDuration(0), "0s"},
		{formatDuration(5 * time.Millisecond), "5ms"},
		{sizeRange(1, 1<<30), "a size from 1 byte to 1GiB: bytes, or with a KiB, MiB or GiB suffix"},
		{sizeRange(1<<10, 1<<10), "a size from 1KiB to 1KiB: bytes, or with a KiB suffix"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q; want %q", tc.got, tc.want)
		}
	}
}

// Each option's default is valid, and each parses to the value the package
// that owns it defines (defaultConfig checks the values by hand).
func TestOptionDefaultsParse(t *testing.T) {
	for _, o := range options {
		var c config
		if err := o.parse(&c, o.def); err != nil && o.def != "" {
			t.Errorf("%s: default %q does not parse: %v", o.env, o.def, err)
		}
	}
}
