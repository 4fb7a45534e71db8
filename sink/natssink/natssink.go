// Package natssink stores parcels in a NATS JetStream stream.
//
// A Sink is an ingest.DeferredSink: Store encodes the parcel as the record
// every storing sink writes (sink.AppendRecord), publishes it asynchronously
// and returns; the task is finished once JetStream acknowledges the message.
// A publish that fails or is not acknowledged within AckWait is published
// again, with backoff, until it is acknowledged or Close gives up. Every
// parcel is published with a Nats-Msg-Id made of a random per-Sink prefix and
// the task's sequence number, and every retry reuses it, so JetStream's
// duplicate window drops the copies of a message whose acknowledgement was
// lost: each accepted parcel is stored once.
//
// The sink holds at most Config.MaxPending parcels; Store blocks while it
// holds that many, so a slow or absent JetStream slows the HTTP clients down.
// While NATS is unreachable, parcels wait in the sink and Healthy reports the
// problem (the server then answers 503); the client reconnects forever and
// the sink publishes what it holds as soon as NATS is back.
//
// A fixed set of goroutines does the work, whatever the load: one collects
// acknowledgements in publish order, one publishes again what failed, one
// creates the stream when it could not be created at startup.
package natssink

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fastingest/fastingest/internal/promtext"
	"github.com/fastingest/fastingest/internal/ratelog"
)

// ErrClosed is returned by Store once Close has begun, and by Healthy after.
var ErrClosed = errors.New("natssink: closed, not taking parcels")

// ErrNotAcknowledged is what a task is finished with when Close's context
// ends before JetStream acknowledged its parcel. The parcel may still have
// been stored.
var ErrNotAcknowledged = errors.New("natssink: parcel not acknowledged by JetStream before the sink was closed")

// Connection tuning. Reconnecting quickly (Config.ReconnectWait) matters
// more than sparing a server that is down: parcels wait meanwhile. Pings
// every 5s detect a server that vanished without closing the connection
// within about 15s, instead of the client's default of several minutes.
const (
	pingInterval = 5 * time.Second
	maxPingsOut  = 2
	// maxBackoff caps the wait before a failed publish, or a failed
	// attempt to create the stream, is tried again.
	maxBackoff = time.Second
	minBackoff = 50 * time.Millisecond
	// apiTimeout bounds one JetStream API request (stream lookup or
	// creation) made in the background.
	apiTimeout = 5 * time.Second
)

// Sink publishes parcels to a JetStream stream. Build it with New; it is
// safe for concurrent use.
type Sink struct {
	cfg    Config
	urls   string // cfg.URL without credentials, for messages
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string // first part of every Nats-Msg-Id: random, one per Sink

	// inbox is the prefix of every publish's reply subject, ending in a
	// dot; acks holds the publishes awaiting their acknowledgement there.
	inbox string
	acks  pendingAcks

	// slots holds a token per parcel the sink holds (cap MaxPending):
	// Store blocks on it. inflight and retries have the same capacity,
	// so sending an entry to either never blocks.
	slots    chan struct{}
	inflight chan *entry // published, in publish order, for the collector
	retries  chan *entry // to publish (again), for the retrier

	// gate lets Close wait for Stores in progress: Store holds it
	// shared, Close exclusively to set closed.
	gate    sync.RWMutex
	closed  atomic.Bool   // set by Close under gate; read by Store under gate, and by Healthy
	closing chan struct{} // closed when Close begins: blocked Stores give up
	held    sync.WaitGroup
	abort   chan struct{} // closed when Close's ctx ends: give up on what is held
	stop    chan struct{} // closed when nothing is held: goroutines exit
	workers sync.WaitGroup
	// life is cancelled by Close, ending a stream request in progress. It
	// is the background goroutines' context, not a caller's.
	life       context.Context
	cancelLife context.CancelFunc

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	streamErr atomic.Pointer[error] // nil once the stream is known to exist
	changed   broadcast             // connection or stream became usable

	published    atomic.Uint64 // see Stats
	retried      atomic.Uint64
	acknowledged atomic.Uint64
	abandoned    atomic.Uint64

	ackLatency *promtext.Histogram // publish to acknowledgement

	pubErrLog    *ratelog.Limiter
	streamErrLog *ratelog.Limiter
}

// errStreamUnchecked is the stream's state until the sink could ask.
var errStreamUnchecked = errors.New("not checked yet: no connection to NATS")

// New validates cfg, connects to NATS and makes sure the stream exists.
//
// New fails on an invalid cfg, or when the stream exists but does not
// capture cfg.Subject. It does not fail when NATS is unreachable or the
// stream cannot be created yet (a cluster still electing its leader, a
// server still starting): the sink then keeps trying in the background,
// Healthy reports the problem meanwhile, and parcels wait. ctx bounds the
// first attempt to look up or create the stream.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	urls, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		cfg:          cfg,
		urls:         urls,
		log:          log,
		prefix:       rand.Text(),
		inbox:        nats.NewInbox() + ".",
		acks:         pendingAcks{entries: make(map[uint64]*entry, cfg.MaxPending)},
		slots:        make(chan struct{}, cfg.MaxPending),
		inflight:     make(chan *entry, cfg.MaxPending),
		retries:      make(chan *entry, cfg.MaxPending),
		closing:      make(chan struct{}),
		abort:        make(chan struct{}),
		stop:         make(chan struct{}),
		closeDone:    make(chan struct{}),
		changed:      broadcast{ch: make(chan struct{})},
		ackLatency:   promtext.NewHistogram("fastingest_nats_ack_latency_seconds", "", ackLatencyBuckets...),
		pubErrLog:    ratelog.New(10 * time.Second),
		streamErrLog: ratelog.New(10 * time.Second),
	}
	s.life, s.cancelLife = context.WithCancel(context.Background())
	s.setStreamErr(errStreamUnchecked)

	s.nc, err = nats.Connect(cfg.URL,
		nats.Name("fastingest"),
		// Start even when no server answers yet, and never give up:
		// the sink holds parcels meanwhile, bounded by MaxPending.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cfg.ReconnectWait),
		nats.PingInterval(pingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		nats.ConnectHandler(s.onConnect),
		nats.ReconnectHandler(s.onConnect),
		nats.DisconnectErrHandler(s.onDisconnect),
		nats.ClosedHandler(func(*nats.Conn) { s.changed.notify() }),
	)
	if err != nil {
		s.cancelLife()
		return nil, fmt.Errorf("natssink: cannot connect to %s: %w", urls, err)
	}
	// Every acknowledgement comes to one subscription, which the client
	// makes again after a reconnect. Its pending limit holds every
	// acknowledgement the sink can be awaiting, twice over: late
	// acknowledgements of publishes already timed out and retried come
	// too.
	sub, err := s.nc.Subscribe(s.inbox+"*", s.onAck)
	if err == nil {
		err = sub.SetPendingLimits(cfg.MaxPending*2, -1)
	}
	if err != nil {
		s.nc.Close()
		s.cancelLife()
		return nil, fmt.Errorf("natssink: cannot subscribe to acknowledgements: %w", err)
	}
	s.js, err = jetstream.New(s.nc) // for the stream's lookup and creation
	if err != nil {
		s.nc.Close()
		s.cancelLife()
		return nil, fmt.Errorf("natssink: cannot use JetStream: %w", err)
	}

	if s.nc.IsConnected() {
		err := s.ensureStream(ctx)
		if errors.Is(err, errStreamMismatch) {
			s.nc.Close()
			s.cancelLife()
			return nil, err
		}
		s.setStreamErr(err)
		if err != nil {
			log.Warn("cannot make sure the JetStream stream exists; retrying in the background, parcels wait meanwhile",
				"stream", cfg.Stream, "err", err)
		}
	} else {
		log.Warn("NATS is unreachable; the sink keeps trying, parcels wait meanwhile", "url", urls)
	}

	s.workers.Add(3)
	go s.collect()
	go s.retry()
	go s.maintainStream()
	return s, nil
}

// onConnect runs when the client connects, first or again: whatever waits
// for a connection can go on.
func (s *Sink) onConnect(nc *nats.Conn) {
	if !s.closed.Load() {
		// Not ConnectedUrlRedacted: it hides a password but not a token.
		s.log.Info("connected to NATS", "url", RedactURLs(nc.ConnectedUrl()))
	}
	s.changed.notify()
}

// onDisconnect runs when the client loses its connection. The sink fails
// every publish awaiting an acknowledgement with nats.ErrDisconnected, and
// the retrier publishes them again after reconnecting.
func (s *Sink) onDisconnect(_ *nats.Conn, err error) {
	s.failPending(nats.ErrDisconnected)
	if s.closed.Load() {
		return
	}
	s.log.Warn("lost the connection to NATS; parcels wait until it is back", "url", s.urls, "err", err)
}

// Healthy returns nil when the sink can store parcels: it is connected to
// NATS and the stream is known to exist. Otherwise it returns an error
// saying what is wrong; parcels Stored meanwhile wait in the sink. It is
// cheap enough to call on every request.
func (s *Sink) Healthy() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if status := s.nc.Status(); status != nats.CONNECTED {
		reason := "no server answers"
		if err := s.nc.LastError(); err != nil {
			reason = err.Error()
		}
		return fmt.Errorf("natssink: not connected to NATS at %s (%s: %s)",
			s.urls, strings.ToLower(status.String()), reason)
	}
	if p := s.streamErr.Load(); p != nil {
		return fmt.Errorf("natssink: JetStream stream %s unavailable: %w", s.cfg.Stream, *p)
	}
	return nil
}

// ready reports whether publishing makes sense now. A publish made while it
// is false would only wait in the client's buffer or fail.
func (s *Sink) ready() bool {
	return s.streamErr.Load() == nil && s.nc.IsConnected()
}

// setStreamErr records whether the stream is usable (err == nil). A change
// between usable and not wakes whoever waits: the retrier for the stream to
// become usable, the maintainer for it to become unusable.
func (s *Sink) setStreamErr(err error) {
	var old *error
	if err == nil {
		old = s.streamErr.Swap(nil)
	} else {
		old = s.streamErr.Swap(&err)
	}
	if (old == nil) != (err == nil) {
		s.changed.notify()
	}
}

// Close stops taking parcels, waits until JetStream has acknowledged every
// parcel the sink holds (publishing again what fails) or until ctx ends,
// finishes the remaining tasks with ErrNotAcknowledged, and closes the
// connection. It returns an error when some tasks were not acknowledged.
// A second call waits for the first to finish and returns its result.
func (s *Sink) Close(ctx context.Context) error {
	first := false
	s.closeOnce.Do(func() { first = true })
	if !first {
		select {
		case <-s.closeDone:
			return s.closeErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	close(s.closing) // Stores waiting for room give up
	s.gate.Lock()    // wait for Stores in progress
	s.closed.Store(true)
	s.gate.Unlock()

	idle := make(chan struct{})
	go func() {
		s.held.Wait() // no Store adds to held any more
		close(idle)
	}()
	select {
	case <-idle:
	default:
		select {
		case <-idle:
		case <-ctx.Done():
			// The collector and the retrier finish with an error
			// every task they hold or receive from now on.
			close(s.abort)
			<-idle
		}
	}
	close(s.stop)
	s.cancelLife()
	s.workers.Wait()
	// Nothing is left to flush: every message was acknowledged or given
	// up on, so Close rather than Drain.
	s.nc.Close()

	if n := s.abandoned.Load(); n > 0 {
		s.closeErr = fmt.Errorf("natssink: %d parcels not acknowledged by JetStream before closing: %w", n, ctx.Err())
	}
	close(s.closeDone)
	return s.closeErr
}

// Stats counts what a Sink did since New.
type Stats struct {
	Published    uint64 // publishes made, retries included
	Retried      uint64 // publishes of a parcel after a failed one
	Acknowledged uint64 // parcels JetStream acknowledged: tasks finished with nil
	Abandoned    uint64 // parcels Close gave up on: tasks finished with ErrNotAcknowledged
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{
		Published:    s.published.Load(),
		Retried:      s.retried.Load(),
		Acknowledged: s.acknowledged.Load(),
		Abandoned:    s.abandoned.Load(),
	}
}

// msgID returns the Nats-Msg-Id of the parcel with sequence number seq.
// prefix tells apart the sinks (process runs) that number parcels from 1.
func msgID(prefix string, seq uint64) string {
	var buf [64]byte
	b := append(buf[:0], prefix...)
	b = append(b, '-')
	b = strconv.AppendUint(b, seq, 10)
	return string(b)
}

// broadcast wakes every goroutine waiting for a change: wait returns a
// channel that notify closes, then replaces.
type broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// wait returns a channel closed by the next notify. Take it before checking
// the condition, so that a change in between is not missed.
func (b *broadcast) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcast) notify() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

// backoff returns the wait before attempt n+1 after n failed attempts:
// doubling from minBackoff, capped at maxBackoff.
func backoff(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}
