package filesink

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Sink. A zero SegmentBytes, RetainBytes or GroupBytes
// takes its default; a zero SegmentAge or FsyncInterval means what 0 means
// for its setting: no age limit, an fsync after every write.
type Config struct {
	// Dir holds the segment files (DATA_DIR); created if missing.
	Dir string
	// SegmentBytes rotates a segment once it holds this many bytes
	// (SEGMENT_BYTES).
	SegmentBytes int64
	// SegmentAge rotates a segment this long after it was opened
	// (SEGMENT_AGE), so that closed segments can be shipped or removed on
	// a schedule. Zero: no age limit.
	SegmentAge time.Duration
	// RetainBytes bounds the total size of the segments; the oldest closed
	// segments are deleted beyond it (RETAIN_BYTES).
	RetainBytes int64
	// FsyncInterval bounds how long written data may sit unsynced
	// (FSYNC_INTERVAL). Zero fsyncs after every write.
	FsyncInterval time.Duration
	// Durable finishes a task only once its line is fsynced, instead of
	// once it is written to the file (ACK=persisted needs it).
	Durable bool
	// GroupBytes is the size a write group may reach before Store waits
	// for the writer; two groups exist.
	GroupBytes int
	// RetryBackoff is how long the writer waits before it first retries
	// a write, fsync or segment it could not make (a full disk, an I/O
	// error); each further wait doubles, up to RetryBackoffMax. Zero:
	// DefaultRetryBackoff.
	RetryBackoff time.Duration
	// Shipper, when set, ships closed segments elsewhere (S3_BUCKET), and
	// retention deletes only those it has shipped. The sink starts it and
	// closes it.
	Shipper Shipper
	// Logger receives the sink's notices and errors. Nil discards them.
	Logger *slog.Logger
}

// Defaults and limits of the file sink's settings. fastingest's options
// table reads them and checks each setting with the Validate function
// below; New fills a zero field with its default (or, for SegmentAge and
// FsyncInterval, takes zero as the setting does).
const (
	DefaultDir           = "./data"
	DefaultSegmentBytes  = 128 << 20
	DefaultSegmentAge    = time.Hour
	DefaultRetainBytes   = 1 << 30
	DefaultFsyncInterval = time.Second
	DefaultGroupBytes    = 1 << 20
	DefaultRetryBackoff  = 50 * time.Millisecond
	// RetryBackoffMax bounds the writer's wait between retries.
	RetryBackoffMax = 5 * time.Second

	// MinSegmentBytes and SegmentBytesLimit bound SEGMENT_BYTES: below
	// a KiB a segment would hold a parcel or two. New takes any positive
	// SegmentBytes, so that tests rotate after a few lines.
	MinSegmentBytes   = 1 << 10
	SegmentBytesLimit = 1 << 40
	// MinRetainBytes and RetainBytesLimit bound RETAIN_BYTES; New, as
	// for SegmentBytes, takes any positive RetainBytes.
	MinRetainBytes   = 1 << 10
	RetainBytesLimit = 1 << 50
)

// ValidateDir checks a data directory's path: not empty. Whether it can
// be created and written is New's to find out.
func ValidateDir(dir string) error {
	if dir == "" {
		return errors.New("want a directory path")
	}
	return nil
}

// ValidateSegmentBytes checks a SEGMENT_BYTES setting.
func ValidateSegmentBytes(n int64) error {
	if n < MinSegmentBytes || n > SegmentBytesLimit {
		return fmt.Errorf("want a size from %d to %d bytes", MinSegmentBytes, int64(SegmentBytesLimit))
	}
	return nil
}

// ValidateSegmentAge checks a segment age: 0 (no age limit) or more.
func ValidateSegmentAge(d time.Duration) error {
	if d < 0 {
		return errors.New("want a duration of 0 or more")
	}
	return nil
}

// ValidateRetainBytes checks a RETAIN_BYTES setting.
func ValidateRetainBytes(n int64) error {
	if n < MinRetainBytes || n > RetainBytesLimit {
		return fmt.Errorf("want a size from %d to %d bytes", MinRetainBytes, int64(RetainBytesLimit))
	}
	return nil
}

// ValidateFsyncInterval checks an fsync interval: 0 (after every write) or
// more.
func ValidateFsyncInterval(d time.Duration) error {
	if d < 0 {
		return errors.New("want a duration of 0 or more")
	}
	return nil
}

// setDefaults fills cfg's zero sizes with their defaults and checks the
// rest.
func (cfg *Config) setDefaults() error {
	if err := ValidateDir(cfg.Dir); err != nil {
		return fmt.Errorf("filesink: Dir: %w", err)
	}
	for _, f := range []struct {
		name string
		n    *int64
		def  int64
	}{
		{"SegmentBytes", &cfg.SegmentBytes, DefaultSegmentBytes},
		{"RetainBytes", &cfg.RetainBytes, DefaultRetainBytes},
	} {
		switch {
		case *f.n == 0:
			*f.n = f.def
		case *f.n < 0:
			return fmt.Errorf("filesink: %s %d: want a positive size", f.name, *f.n)
		}
	}
	if cfg.GroupBytes == 0 {
		cfg.GroupBytes = DefaultGroupBytes
	} else if cfg.GroupBytes < 0 {
		return fmt.Errorf("filesink: GroupBytes %d: want a positive size", cfg.GroupBytes)
	}
	if cfg.RetryBackoff == 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	} else if cfg.RetryBackoff < 0 || cfg.RetryBackoff > RetryBackoffMax {
		return fmt.Errorf("filesink: RetryBackoff %v: want a duration from 0 to %v", cfg.RetryBackoff, RetryBackoffMax)
	}
	if err := ValidateSegmentAge(cfg.SegmentAge); err != nil {
		return fmt.Errorf("filesink: SegmentAge %v: %w", cfg.SegmentAge, err)
	}
	if err := ValidateFsyncInterval(cfg.FsyncInterval); err != nil {
		return fmt.Errorf("filesink: FsyncInterval %v: %w", cfg.FsyncInterval, err)
	}
	return nil
}
