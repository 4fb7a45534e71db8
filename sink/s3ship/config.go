package s3ship

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// Config configures a Shipper. Zero values take their defaults.
type Config struct {
	// Dir is the file sink's data directory (DATA_DIR); the shipped state
	// lives in its subdirectory shipped/.
	Dir string
	// Bucket receives the segments (S3_BUCKET).
	Bucket string
	// Prefix starts every object key (S3_PREFIX); may be empty.
	Prefix string
	// Compression is gzip, zstd or none (S3_COMPRESSION).
	Compression string
	// Concurrency is how many segments upload at once
	// (S3_UPLOAD_CONCURRENCY).
	Concurrency int
	// Host names this server in the keys; empty: os.Hostname.
	Host string

	// Endpoint is an S3-compatible store's URL; empty: AWS_ENDPOINT_URL_S3,
	// else AWS_ENDPOINT_URL, from LookupEnv, else AWS itself. With an
	// endpoint, addressing is path-style and checksums are sent only when
	// an operation requires them.
	Endpoint string
	// Region; empty: the default chain (AWS_REGION, the profile, the EC2
	// instance's), or us-east-1 with an endpoint.
	Region string
	// Credentials; nil: the default chain (environment, profile, EC2
	// instance role).
	Credentials aws.CredentialsProvider
	// LookupEnv reads the environment; nil: os.LookupEnv.
	LookupEnv func(string) (string, bool)

	// PartBytes is the size of a multipart upload's parts; an object
	// smaller than one part is uploaded with one PutObject. At least 5 MiB
	// (S3's smallest part). 0: DefaultPartBytes.
	PartBytes int
	// RetryMin and RetryMax bound the backoff after a failed upload.
	RetryMin, RetryMax time.Duration
	// LogEvery bounds how often upload errors are logged. 0: DefaultLogEvery.
	LogEvery time.Duration

	// Logger receives the shipper's notices and errors. Nil discards them.
	Logger *slog.Logger
}

// Defaults and limits of the shipper's settings. fastingest's options
// table reads them and checks each setting with the Validate functions
// below.
const (
	DefaultPrefix      = "fastingest/"
	DefaultCompression = "gzip"
	DefaultConcurrency = 2
	MaxConcurrency     = 64

	DefaultPartBytes = 8 << 20
	MinPartBytes     = 5 << 20 // S3's smallest part, but the last
	DefaultRetryMin  = time.Second
	DefaultRetryMax  = time.Minute
	DefaultLogEvery  = 30 * time.Second

	maxPrefixBytes = 512
)

// ValidateBucket checks an S3_BUCKET setting: empty (no shipping), or a
// bucket name as S3 accepts it: 3 to 63 lowercase letters, digits, dots and
// hyphens, starting and ending with a letter or digit, not an IP address.
func ValidateBucket(b string) error {
	if b == "" {
		return nil
	}
	if len(b) < 3 || len(b) > 63 {
		return errors.New("a bucket name has 3 to 63 characters")
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return fmt.Errorf("a bucket name has lowercase letters, digits, dots and hyphens only, not %q", c)
		}
	}
	if !alnum(b[0]) || !alnum(b[len(b)-1]) {
		return errors.New("a bucket name starts and ends with a letter or digit")
	}
	if strings.Contains(b, "..") {
		return errors.New("a bucket name has no two dots in a row")
	}
	if net.ParseIP(b) != nil {
		return errors.New("a bucket name is not an IP address")
	}
	return nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// ValidatePrefix checks an S3_PREFIX setting: empty, or up to 512 bytes of
// UTF-8 without control characters, a leading slash or an empty path
// segment (//).
func ValidatePrefix(p string) error {
	switch {
	case len(p) > maxPrefixBytes:
		return fmt.Errorf("a prefix has at most %d bytes", maxPrefixBytes)
	case !utf8.ValidString(p):
		return errors.New("a prefix is UTF-8")
	case strings.HasPrefix(p, "/"):
		return errors.New("a prefix does not start with /")
	case strings.Contains(p, "//"):
		return errors.New("a prefix has no empty path segment (//)")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return errors.New("a prefix has no control characters")
		}
	}
	return nil
}

// ValidateCompression checks an S3_COMPRESSION setting.
func ValidateCompression(c string) error {
	switch c {
	case "gzip", "zstd", "none":
		return nil
	}
	return errors.New("want gzip, zstd or none")
}

// ValidateConcurrency checks an S3_UPLOAD_CONCURRENCY setting.
func ValidateConcurrency(n int) error {
	if n < 1 || n > MaxConcurrency {
		return fmt.Errorf("want an integer from 1 to %d", MaxConcurrency)
	}
	return nil
}

// setDefaults fills cfg's zero fields and checks the rest.
func (cfg *Config) setDefaults() error {
	if cfg.Dir == "" {
		return errors.New("s3ship: Dir: want the data directory")
	}
	if cfg.Bucket == "" {
		return errors.New("s3ship: Bucket: want a bucket")
	}
	if err := ValidateBucket(cfg.Bucket); err != nil {
		return fmt.Errorf("s3ship: Bucket %q: %w", cfg.Bucket, err)
	}
	if err := ValidatePrefix(cfg.Prefix); err != nil {
		return fmt.Errorf("s3ship: Prefix %q: %w", cfg.Prefix, err)
	}
	if cfg.Compression == "" {
		cfg.Compression = DefaultCompression
	}
	if err := ValidateCompression(cfg.Compression); err != nil {
		return fmt.Errorf("s3ship: Compression %q: %w", cfg.Compression, err)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if err := ValidateConcurrency(cfg.Concurrency); err != nil {
		return fmt.Errorf("s3ship: Concurrency %d: %w", cfg.Concurrency, err)
	}
	if cfg.PartBytes == 0 {
		cfg.PartBytes = DefaultPartBytes
	}
	if cfg.PartBytes < MinPartBytes {
		return fmt.Errorf("s3ship: PartBytes %d: want at least %d", cfg.PartBytes, MinPartBytes)
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(DefaultRetryMax, cfg.RetryMin)
	}
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	return nil
}
