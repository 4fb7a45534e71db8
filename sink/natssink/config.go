package natssink

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Config configures a Sink. Start from DefaultConfig and change what the
// environment sets: New refuses a Config with an empty or invalid field
// rather than guessing, so that a typo in NATS_SUBJECT stops the process
// at startup instead of sending parcels where nobody looks.
type Config struct {
	// URL is the NATS server to connect to (NATS_URL), or several,
	// separated by commas: the client reconnects to any of them.
	// A URL without a scheme is taken as nats://.
	URL string
	// Subject is the subject every parcel is published on (NATS_SUBJECT).
	// It must be a literal subject, without wildcards.
	Subject string
	// Stream is the JetStream stream that captures Subject
	// (NATS_STREAM). New creates it, capturing only Subject, if it does
	// not exist; an existing stream is used as it is, provided it
	// captures Subject.
	Stream string
	// Replicas is the number of copies of each message the stream keeps
	// when New creates it (NATS_REPLICAS): 1 for a single server, 3 for a
	// cluster that survives losing a node. At most 5, JetStream's limit.
	Replicas int
	// MaxPending bounds the parcels the sink holds: published and not yet
	// acknowledged, or waiting to be published again. Store blocks while
	// the sink holds this many, which is how a slow or absent JetStream
	// slows the HTTP clients down instead of filling memory.
	MaxPending int
	// AckWait is how long a publish waits for JetStream's acknowledgement
	// before it is published again (with the same Nats-Msg-Id, so that a
	// message that was stored but whose acknowledgement was lost is not
	// stored twice).
	AckWait time.Duration
	// Duplicates is the duplicate window of a stream New creates: how long
	// JetStream remembers a Nats-Msg-Id to drop a retried publish of a
	// message it already stored. It must exceed the longest time a
	// parcel can spend being retried after a first publish reached the
	// server, which is about the longest NATS outage to ride out.
	Duplicates time.Duration
	// ReconnectWait is how long the client waits between attempts to
	// reconnect to a server that went away. Short, since parcels wait
	// meanwhile.
	ReconnectWait time.Duration
	// Logger receives connection changes and errors, each kind at most
	// once per interval. Nil discards everything.
	Logger *slog.Logger
}

// Defaults used by DefaultConfig. fastingest's options table reads those
// of its NATS_* settings from here, and checks each setting with the
// Validate function of its field, the check New makes.
const (
	DefaultURL        = "nats://127.0.0.1:4222"
	DefaultSubject    = "fastingest.parcels"
	DefaultStream     = "FASTINGEST"
	DefaultReplicas   = 1
	DefaultMaxPending = 4096
	DefaultAckWait    = 5 * time.Second
	// DefaultDuplicates is JetStream's own default duplicate window.
	DefaultDuplicates    = 2 * time.Minute
	DefaultReconnectWait = 250 * time.Millisecond
)

// MaxReplicas is JetStream's limit on a stream's replicas.
const MaxReplicas = 5

// DefaultConfig returns the configuration used when the environment sets
// nothing: a single local server, one replica.
func DefaultConfig() Config {
	return Config{
		URL:           DefaultURL,
		Subject:       DefaultSubject,
		Stream:        DefaultStream,
		Replicas:      DefaultReplicas,
		MaxPending:    DefaultMaxPending,
		AckWait:       DefaultAckWait,
		Duplicates:    DefaultDuplicates,
		ReconnectWait: DefaultReconnectWait,
	}
}

// validate checks cfg and returns the server URLs with their passwords
// masked, for messages.
func (cfg *Config) validate() (redacted string, err error) {
	redacted, err = checkURLs(cfg.URL)
	if err != nil {
		return "", fmt.Errorf("natssink: URL: %w", err)
	}
	if err := ValidateSubject(cfg.Subject); err != nil {
		return "", fmt.Errorf("natssink: Subject %q: %w", cfg.Subject, err)
	}
	if err := ValidateStream(cfg.Stream); err != nil {
		return "", fmt.Errorf("natssink: Stream %q: %w", cfg.Stream, err)
	}
	if err := ValidateReplicas(cfg.Replicas); err != nil {
		return "", fmt.Errorf("natssink: Replicas %d: %w", cfg.Replicas, err)
	}
	switch {
	case cfg.MaxPending < 1:
		return "", fmt.Errorf("natssink: MaxPending must be at least 1, got %d", cfg.MaxPending)
	case cfg.AckWait <= 0:
		return "", fmt.Errorf("natssink: AckWait must be positive, got %v", cfg.AckWait)
	case cfg.Duplicates <= 0:
		return "", fmt.Errorf("natssink: Duplicates must be positive, got %v", cfg.Duplicates)
	case cfg.ReconnectWait <= 0:
		return "", fmt.Errorf("natssink: ReconnectWait must be positive, got %v", cfg.ReconnectWait)
	}
	return redacted, nil
}

// ValidateURLs checks a comma-separated list of server URLs (NATS_URL) the
// way the NATS client parses them, so that New fails on what the client
// would refuse at every reconnect attempt rather than retrying forever.
// Its error never shows credentials: a URL in it is redacted.
func ValidateURLs(list string) error {
	_, err := checkURLs(list)
	return err
}

// checkURLs is ValidateURLs, also returning the list with its credentials
// redacted, for messages.
func checkURLs(list string) (string, error) {
	var redacted []string
	for raw := range strings.SplitSeq(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s // as the client does
		}
		u, err := url.Parse(s)
		if err != nil {
			// url.Error quotes the whole URL, password and all: keep
			// only what went wrong.
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return "", fmt.Errorf("invalid NATS URL: %w", err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return "", fmt.Errorf("NATS URL %s: scheme %q is not nats, tls, ws or wss", redactURL(u), u.Scheme)
		}
		if u.Hostname() == "" {
			return "", fmt.Errorf("NATS URL %s has no host", redactURL(u))
		}
		redacted = append(redacted, redactURL(u))
	}
	if len(redacted) == 0 {
		return "", errors.New("URL is empty: name at least one NATS server")
	}
	return strings.Join(redacted, ","), nil
}

// redactURL returns u without its credentials. url.Redacted hides only a
// password, but NATS also takes a bare token as the user part
// (nats://TOKEN@host), so the whole user information goes.
func redactURL(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = url.User("redacted")
	return c.String()
}

// RedactURLs returns a NATS_URL list with the credentials of every URL
// replaced, for logs; entries it cannot parse are replaced whole.
func RedactURLs(list string) string {
	var out []string
	for raw := range strings.SplitSeq(list, ",") {
		raw = strings.TrimSpace(raw)
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil {
			out = append(out, "(unparsable URL)")
			continue
		}
		out = append(out, redactURL(u))
	}
	return strings.Join(out, ",")
}

// ValidateSubject accepts a literal subject (NATS_SUBJECT): dot-separated
// tokens, none empty, without wildcards or whitespace. Its error says what
// is wrong, not what the subject is.
func ValidateSubject(subject string) error {
	if subject == "" {
		return errors.New("empty")
	}
	for tok := range strings.SplitSeq(subject, ".") {
		switch {
		case tok == "":
			return errors.New("not a literal subject: an empty token")
		case strings.ContainsAny(tok, "*>"):
			return errors.New("not a literal subject: a wildcard")
		case strings.ContainsAny(tok, " \t\r\n"):
			return errors.New("not a literal subject: whitespace")
		}
	}
	return nil
}

// ValidateStream accepts what JetStream accepts as a stream name
// (NATS_STREAM): no whitespace, dots, wildcards or path separators (the
// name becomes a subject token and a directory).
func ValidateStream(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	if i := strings.IndexAny(name, " \t\r\n.*>/\\"); i >= 0 {
		return fmt.Errorf("a stream name may not contain %q (nor whitespace, '.', '*', '>', '/' or '\\')", name[i])
	}
	return nil
}

// ValidateReplicas checks a stream's number of replicas (NATS_REPLICAS).
func ValidateReplicas(n int) error {
	if n < 1 || n > MaxReplicas {
		return fmt.Errorf("want an integer from 1 to %d", MaxReplicas)
	}
	return nil
}
