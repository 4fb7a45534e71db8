package kafkasink

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Config configures a Sink. Start from DefaultConfig and change what the
// environment sets: New refuses a Config with an invalid field rather than
// guessing, so that a typo in KAFKA_TOPIC stops the process at startup
// instead of sending parcels where nobody looks.
type Config struct {
	// Brokers are the seed brokers (KAFKA_BROKERS): host:port, or host
	// alone for port 9092, comma-separated. The client learns the rest
	// of the cluster from them.
	Brokers string
	// Topic is the topic every parcel is produced to (KAFKA_TOPIC).
	Topic string
	// Compression is the codec of the record batches (KAFKA_COMPRESSION):
	// zstd, lz4, snappy, gzip or none.
	Compression string
	// Linger is how long a partition's batch waits for more records
	// before it is sent (KAFKA_LINGER); 0 sends at once.
	Linger time.Duration
	// MaxBuffered bounds the bytes of the records the sink holds, from
	// Store until the brokers acknowledge them (KAFKA_MAX_BUFFERED): keys,
	// values and headers, before compression. Store blocks while it is
	// reached, which is how a slow or absent cluster slows the HTTP
	// clients down instead of filling memory.
	MaxBuffered int64

	// TLS connects to the brokers over TLS (KAFKA_TLS=1), checking their
	// certificates against CAPEM, or the system's roots when it is empty.
	TLS bool
	// CAPEM holds the PEM certificates of the authorities that sign the
	// brokers' certificates (read from KAFKA_TLS_CA).
	CAPEM []byte

	// SASLMechanism authenticates the client (KAFKA_SASL_MECHANISM):
	// PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty for none. PLAIN sends
	// the password as it is: use it over TLS only.
	SASLMechanism string
	// SASLUser and SASLPassword are the credentials (KAFKA_SASL_USER, and
	// the contents of KAFKA_SASL_PASSWORD_FILE). The password never
	// appears in a message or a log line.
	SASLUser     string
	SASLPassword string

	// CreateTopic creates Topic when it is missing (KAFKA_CREATE_TOPIC),
	// with Partitions partitions and Replication replicas; 0 for either
	// takes the cluster's default (num.partitions,
	// default.replication.factor). An existing topic is used as it is.
	CreateTopic bool
	Partitions  int
	Replication int

	// CheckInterval is how often the sink asks the cluster whether the
	// topic exists and every partition has a leader, which is what
	// Healthy reports; 0 means DefaultCheckInterval.
	CheckInterval time.Duration
	// CheckTimeout bounds one check: a metadata request, and the creation
	// of the topic when it is missing and may be created. franz-go
	// retries a request on another broker meanwhile, so one broker down
	// does not fail a check; the whole cluster unreachable does, within
	// this time. 0 means DefaultCheckTimeout.
	CheckTimeout time.Duration
	// MetadataMinAge is how soon after one metadata refresh the producer
	// may make another: it learns a partition's new leader, after a
	// broker stops, from one. 0 means DefaultMetadataMinAge.
	MetadataMinAge time.Duration
	// RetryBackoff is how long the producer waits before each retry of
	// a failed request (an acknowledgement lost, a leader moving).
	// 0 means franz-go's jittered exponential backoff, 250 ms growing
	// to 5 s, which is what a cluster in trouble wants.
	RetryBackoff time.Duration
	// Logger receives connection, topic and produce problems, each kind
	// at most once per interval. Nil discards everything.
	Logger *slog.Logger
}

// Defaults used by DefaultConfig. fastingest's options table reads those of
// its KAFKA_* settings from here, and checks each setting with the Validate
// function of its field, the check New makes.
const (
	DefaultBrokers     = "127.0.0.1:9092"
	DefaultTopic       = "fastingest.parcels"
	DefaultCompression = "zstd"
	// DefaultLinger is Kafka's own linger.ms default since 4.0 (KIP-1030):
	// a few milliseconds let concurrent requests share a batch, at a
	// cost ACK=persisted clients hardly notice.
	DefaultLinger = 5 * time.Millisecond
	// DefaultMaxBuffered holds some 500,000 records of the reference
	// payload: seconds of a broker's failover at full speed.
	DefaultMaxBuffered   = 64 << 20
	DefaultCheckInterval = time.Second
	DefaultCheckTimeout  = 3 * time.Second
	// DefaultMetadataMinAge is a second rather than franz-go's 5 s,
	// which held every parcel of a partition whose leader stopped for
	// 5 s (TestBrokerStoppedUnderLoadLosesNothing).
	DefaultMetadataMinAge = time.Second

	// MaxLinger bounds Linger: a longer wait only adds latency.
	MaxLinger = time.Minute
	// MinMaxBuffered and MaxBufferedLimit bound MaxBuffered. Below 1 MiB
	// a parcel of the largest body (MAX_BODY_BYTES, 1 MiB by default)
	// could never be buffered.
	MinMaxBuffered   = 1 << 20
	MaxBufferedLimit = 1 << 40
	// MaxPartitions and MaxReplication bound a topic the sink creates.
	MaxPartitions  = 10_000
	MaxReplication = 32
)

// DefaultConfig returns the configuration used when the environment sets
// nothing: a local broker, zstd batches, no TLS or SASL, and a topic that
// must exist.
func DefaultConfig() Config {
	return Config{
		Brokers:     DefaultBrokers,
		Topic:       DefaultTopic,
		Compression: DefaultCompression,
		Linger:      DefaultLinger,
		MaxBuffered: DefaultMaxBuffered,
	}
}

// validate checks cfg and returns the seed brokers.
func (cfg *Config) validate() ([]string, error) {
	if err := ValidateBrokers(cfg.Brokers); err != nil {
		return nil, fmt.Errorf("kafkasink: Brokers %q: %w", cfg.Brokers, err)
	}
	if err := ValidateTopic(cfg.Topic); err != nil {
		return nil, fmt.Errorf("kafkasink: Topic %q: %w", cfg.Topic, err)
	}
	if err := ValidateCompression(cfg.Compression); err != nil {
		return nil, fmt.Errorf("kafkasink: Compression %q: %w", cfg.Compression, err)
	}
	if err := ValidateLinger(cfg.Linger); err != nil {
		return nil, fmt.Errorf("kafkasink: Linger %v: %w", cfg.Linger, err)
	}
	if err := ValidateMaxBuffered(cfg.MaxBuffered); err != nil {
		return nil, fmt.Errorf("kafkasink: MaxBuffered %d: %w", cfg.MaxBuffered, err)
	}
	if err := ValidateSASLMechanism(cfg.SASLMechanism); err != nil {
		return nil, fmt.Errorf("kafkasink: SASLMechanism %q: %w", cfg.SASLMechanism, err)
	}
	if err := ValidateSASLUser(cfg.SASLUser); err != nil {
		return nil, fmt.Errorf("kafkasink: SASLUser: %w", err)
	}
	if cfg.SASLPassword != "" {
		if err := ValidateSASLPassword(cfg.SASLPassword); err != nil {
			return nil, fmt.Errorf("kafkasink: SASLPassword: %w", err)
		}
	}
	if err := ValidatePartitions(cfg.Partitions); err != nil {
		return nil, fmt.Errorf("kafkasink: Partitions %d: %w", cfg.Partitions, err)
	}
	if err := ValidateReplication(cfg.Replication); err != nil {
		return nil, fmt.Errorf("kafkasink: Replication %d: %w", cfg.Replication, err)
	}
	if cfg.SASLMechanism != "" && (cfg.SASLUser == "" || cfg.SASLPassword == "") {
		return nil, errors.New("kafkasink: SASLMechanism needs SASLUser and SASLPassword")
	}
	if cfg.SASLMechanism == "" && (cfg.SASLUser != "" || cfg.SASLPassword != "") {
		return nil, errors.New("kafkasink: SASLUser and SASLPassword need SASLMechanism")
	}
	if len(cfg.CAPEM) > 0 {
		if !cfg.TLS {
			return nil, errors.New("kafkasink: CAPEM needs TLS")
		}
		if err := ValidateCAPEM(cfg.CAPEM); err != nil {
			return nil, fmt.Errorf("kafkasink: CAPEM: %w", err)
		}
	}
	if cfg.CheckInterval < 0 {
		return nil, fmt.Errorf("kafkasink: CheckInterval must not be negative, got %v", cfg.CheckInterval)
	}
	if cfg.CheckTimeout < 0 {
		return nil, fmt.Errorf("kafkasink: CheckTimeout must not be negative, got %v", cfg.CheckTimeout)
	}
	if cfg.MetadataMinAge < 0 {
		return nil, fmt.Errorf("kafkasink: MetadataMinAge must not be negative, got %v", cfg.MetadataMinAge)
	}
	if cfg.RetryBackoff < 0 {
		return nil, fmt.Errorf("kafkasink: RetryBackoff must not be negative, got %v", cfg.RetryBackoff)
	}
	return splitBrokers(cfg.Brokers), nil
}

// splitBrokers returns the non-empty entries of a comma-separated list.
func splitBrokers(list string) []string {
	var seeds []string
	for b := range strings.SplitSeq(list, ",") {
		if b = strings.TrimSpace(b); b != "" {
			seeds = append(seeds, b)
		}
	}
	return seeds
}

// ValidateBrokers checks a comma-separated list of seed brokers
// (KAFKA_BROKERS): each host:port with a port from 1 to 65535, or a host
// alone (port 9092, as the client takes it); empty entries are skipped, at
// least one must remain.
func ValidateBrokers(list string) error {
	seeds := splitBrokers(list)
	if len(seeds) == 0 {
		return errors.New("no broker: name at least one host:port")
	}
	for _, b := range seeds {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			if strings.Contains(b, ":") && !strings.HasPrefix(b, "[") {
				return fmt.Errorf("broker %q: not host:port", b)
			}
			host, port = strings.Trim(b, "[]"), "9092"
		}
		if host == "" {
			return fmt.Errorf("broker %q has no host", b)
		}
		if strings.ContainsAny(host, " \t/@") {
			return fmt.Errorf("broker %q: not a host name or address", b)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("broker %q: port %q is not from 1 to 65535", b, port)
		}
	}
	return nil
}

// ValidateTopic accepts what Kafka accepts as a topic name (KAFKA_TOPIC):
// 1 to 249 ASCII letters, digits, '.', '_' and '-', but not "." or "..".
func ValidateTopic(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case name == "." || name == "..":
		return errors.New(`"." and ".." are not topic names`)
	case len(name) > 249:
		return fmt.Errorf("%d characters, more than 249", len(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q is not allowed: only ASCII letters, digits, '.', '_' and '-'", c)
		}
	}
	return nil
}

// ValidateCompression checks a codec name (KAFKA_COMPRESSION).
func ValidateCompression(name string) error {
	_, err := codec(name)
	return err
}

// codec returns the codec a name stands for.
func codec(name string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(name) {
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.CompressionCodec{}, errors.New("not zstd, lz4, snappy, gzip or none")
}

// ValidateLinger checks a linger (KAFKA_LINGER): 0 to MaxLinger.
func ValidateLinger(d time.Duration) error {
	if d < 0 || d > MaxLinger {
		return fmt.Errorf("want a duration from 0 to %v", MaxLinger)
	}
	return nil
}

// ValidateMaxBuffered checks a bound on buffered bytes (KAFKA_MAX_BUFFERED).
func ValidateMaxBuffered(n int64) error {
	if n < MinMaxBuffered || n > MaxBufferedLimit {
		return fmt.Errorf("want a size from %d to %d bytes", MinMaxBuffered, int64(MaxBufferedLimit))
	}
	return nil
}

// SASL mechanisms, as KAFKA_SASL_MECHANISM names them.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// ValidateSASLMechanism checks a SASL mechanism (KAFKA_SASL_MECHANISM):
// empty for none, or PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 in any case.
func ValidateSASLMechanism(m string) error {
	switch strings.ToUpper(m) {
	case "", SASLPlain, SASLScramSHA256, SASLScramSHA512:
		return nil
	}
	return errors.New("not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
}

// ValidateSASLUser checks a SASL user name (KAFKA_SASL_USER): empty for
// none, else up to 255 bytes without control characters (PLAIN separates
// its fields with NUL).
func ValidateSASLUser(user string) error {
	if len(user) > 255 {
		return fmt.Errorf("%d bytes, more than 255", len(user))
	}
	for _, r := range user {
		if r < 0x20 || r == 0x7f {
			return errors.New("a control character")
		}
	}
	return nil
}

// ValidateSASLPassword checks a SASL password (the contents of
// KAFKA_SASL_PASSWORD_FILE, its trailing newline cut): not empty, no
// control characters. Its error never quotes the password.
func ValidateSASLPassword(password string) error {
	if password == "" {
		return errors.New("empty")
	}
	for _, r := range password {
		if r < 0x20 || r == 0x7f {
			return errors.New("a control character")
		}
	}
	return nil
}

// ValidatePartitions checks the partitions of a topic the sink creates
// (KAFKA_PARTITIONS): 0 for the cluster's default, or 1 to MaxPartitions.
func ValidatePartitions(n int) error {
	if n < 0 || n > MaxPartitions {
		return fmt.Errorf("want an integer from 0 to %d", MaxPartitions)
	}
	return nil
}

// ValidateReplication checks the replicas of a topic the sink creates
// (KAFKA_REPLICATION): 0 for the cluster's default, or 1 to MaxReplication.
func ValidateReplication(n int) error {
	if n < 0 || n > MaxReplication {
		return fmt.Errorf("want an integer from 0 to %d", MaxReplication)
	}
	return nil
}

// ValidateCAPEM checks the contents of a KAFKA_TLS_CA file: at least one
// PEM certificate, and nothing that fails to parse as one.
func ValidateCAPEM(pem []byte) error {
	_, err := certPool(pem)
	return err
}

func certPool(pem []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in it")
	}
	return pool, nil
}
