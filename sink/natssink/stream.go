package natssink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// errStreamMismatch is wrapped by ensureStream when the stream exists but
// does not capture the sink's subject: a configuration error that waiting
// does not fix, so New fails on it.
var errStreamMismatch = errors.New("natssink: the stream does not capture the subject")

// ensureStream makes sure the stream exists and captures the subject,
// creating it if it is missing. An existing stream is used as it is: its
// replicas and limits are the operator's.
func (s *Sink) ensureStream(ctx context.Context) error {
	name := s.cfg.Stream
	// Twice at most: another process may create the stream between our
	// lookup and our create, and then the lookup must be done again.
	for range 2 {
		st, err := s.js.Stream(ctx, name)
		if err == nil {
			subjects := st.CachedInfo().Config.Subjects
			if len(subjects) == 0 {
				subjects = []string{name} // JetStream's default
			}
			for _, pattern := range subjects {
				if subjectMatches(pattern, s.cfg.Subject) {
					return nil
				}
			}
			return fmt.Errorf("%w: stream %s captures %v, not %s", errStreamMismatch, name, subjects, s.cfg.Subject)
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("cannot look the stream up: %w", err)
		}
		_, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:       name,
			Subjects:   []string{s.cfg.Subject},
			Storage:    jetstream.FileStorage,
			Replicas:   s.cfg.Replicas,
			Duplicates: s.cfg.Duplicates,
		})
		if err == nil {
			s.log.Info("created the JetStream stream", "stream", name, "subject", s.cfg.Subject, "replicas", s.cfg.Replicas)
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return fmt.Errorf("cannot create the stream: %w", err)
		}
	}
	return errors.New("cannot create the stream: it appears and disappears")
}

// streamLost marks the stream as unknown after publishes found nothing
// capturing the subject, so that Healthy reports it, publishing waits and
// the maintainer looks it up or creates it again.
func (s *Sink) streamLost(cause error) {
	if s.streamErr.Load() == nil {
		s.setStreamErr(fmt.Errorf("publishes get no response, the stream may be gone: %w", cause))
	}
}

// maintainStream creates the stream when New could not (NATS unreachable,
// JetStream not ready) or after it was lost, retrying with backoff while
// connected and as soon as the connection comes back.
func (s *Sink) maintainStream() {
	defer s.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	failures := 0
	for {
		changed := s.changed.wait() // before looking, not to miss a change
		var wait time.Duration      // zero: wait for a change only
		if s.streamErr.Load() != nil {
			if s.nc.IsConnected() {
				ctx, cancel := context.WithTimeout(s.life, apiTimeout)
				err := s.ensureStream(ctx)
				cancel()
				if s.life.Err() != nil {
					return // closing: the error is ours
				}
				s.setStreamErr(err)
				if err == nil {
					failures = 0
					continue
				}
				failures++
				if ok, suppressed := s.streamErrLog.Allow(); ok {
					s.log.Warn("cannot make sure the JetStream stream exists; retrying, parcels wait meanwhile",
						"stream", s.cfg.Stream, "err", err, "suppressed_since_last", suppressed)
				}
				wait = backoff(failures)
			} else {
				wait = maxBackoff // a connection also announces itself
			}
		}
		var expired <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			expired = timer.C
		}
		select {
		case <-expired:
		case <-changed:
		case <-s.stop:
			timer.Stop()
			return
		}
		timer.Stop()
	}
}

// subjectMatches reports whether subject, a literal subject, matches
// pattern, which may hold the wildcards '*' (one token) and '>' (one or
// more trailing tokens).
func subjectMatches(pattern, subject string) bool {
	for {
		p, pRest, pMore := strings.Cut(pattern, ".")
		t, tRest, tMore := strings.Cut(subject, ".")
		if p == ">" {
			return true
		}
		if p != "*" && p != t {
			return false
		}
		if !pMore || !tMore {
			return pMore == tMore
		}
		pattern, subject = pRest, tRest
	}
}
