package kafkasink

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // substring of the error; empty: valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"several brokers, empty entries skipped", func(c *Config) { c.Brokers = "a:9092, b:9093,,c" }, ""},
		{"IPv6 broker", func(c *Config) { c.Brokers = "[::1]:9092" }, ""},
		{"no broker", func(c *Config) { c.Brokers = " , " }, "no broker"},
		{"broker without host", func(c *Config) { c.Brokers = ":9092" }, "has no host"},
		{"broker port out of range", func(c *Config) { c.Brokers = "a:70000" }, `port "70000" is not from 1 to 65535`},
		{"broker port not numeric", func(c *Config) { c.Brokers = "a:kafka" }, `port "kafka"`},
		{"broker URL", func(c *Config) { c.Brokers = "kafka://a:9092" }, "not host:port"},
		{"empty topic", func(c *Config) { c.Topic = "" }, `Topic "": empty`},
		{"topic dot", func(c *Config) { c.Topic = "." }, "not topic names"},
		{"topic with a slash", func(c *Config) { c.Topic = "a/b" }, `'/' is not allowed`},
		{"topic too long", func(c *Config) { c.Topic = strings.Repeat("a", 250) }, "more than 249"},
		{"topic of every allowed kind", func(c *Config) { c.Topic = "Az09._-" }, ""},
		{"unknown codec", func(c *Config) { c.Compression = "brotli" }, "not zstd, lz4, snappy, gzip or none"},
		{"codec in capitals", func(c *Config) { c.Compression = "LZ4" }, ""},
		{"negative linger", func(c *Config) { c.Linger = -time.Millisecond }, "from 0 to 1m0s"},
		{"linger too long", func(c *Config) { c.Linger = 2 * time.Minute }, "from 0 to 1m0s"},
		{"max buffered too small", func(c *Config) { c.MaxBuffered = 1000 }, "a size from 1048576"},
		{"unknown mechanism", func(c *Config) { c.SASLMechanism = "GSSAPI" }, "not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{"mechanism without password", func(c *Config) { c.SASLMechanism, c.SASLUser = "PLAIN", "u" }, "needs SASLUser and SASLPassword"},
		{"user without mechanism", func(c *Config) { c.SASLUser = "u" }, "need SASLMechanism"},
		{"complete SASL", func(c *Config) { c.SASLMechanism, c.SASLUser, c.SASLPassword = "scram-sha-256", "u", "p" }, ""},
		{"user with a NUL", func(c *Config) { c.SASLMechanism, c.SASLUser, c.SASLPassword = "PLAIN", "a\x00b", "p" }, "SASLUser: a control character"},
		{"password with a newline", func(c *Config) { c.SASLMechanism, c.SASLUser, c.SASLPassword = "PLAIN", "u", "p\nq" }, "SASLPassword: a control character"},
		{"CA without TLS", func(c *Config) { c.CAPEM = []byte("x") }, "CAPEM needs TLS"},
		{"CA that is no certificate", func(c *Config) { c.TLS, c.CAPEM = true, []byte("x") }, "no PEM certificate"},
		{"negative partitions", func(c *Config) { c.Partitions = -1 }, "from 0 to 10000"},
		{"replication too high", func(c *Config) { c.Replication = 33 }, "from 0 to 32"},
		{"negative check interval", func(c *Config) { c.CheckInterval = -1 }, "CheckInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.modify(&cfg)
			_, err := cfg.validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("validate() error = %v; want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("validate() error = %v; want one containing %q", err, tt.want)
			}
		})
	}
}

// New fails on an invalid Config at once, without trying to connect; an
// unreachable cluster is no error for New, only for Healthy.
func TestNew(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Topic = "a/b"
	if _, err := New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "Topic") {
		t.Errorf("New(invalid topic) error = %v; want one naming Topic", err)
	}
	cfg = DefaultConfig()
	cfg.Brokers = "127.0.0.1:1" // nothing listens there
	s := newSink(t, cfg)
	if err := s.Healthy(); err == nil || !strings.Contains(err.Error(), "no Kafka broker of 127.0.0.1:1 answers") {
		t.Errorf("Healthy() with no broker = %v; want one saying no broker answers", err)
	}
}
