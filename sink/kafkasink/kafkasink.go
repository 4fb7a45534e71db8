// Package kafkasink stores parcels in a Kafka topic, with franz-go.
//
// A Sink is an ingest.DeferredSink and an ingest.RunSink: Store (or StoreRun,
// for a run of up to 64 queued tasks) encodes each parcel as a record and
// hands it to the producer, which batches, compresses and sends it; the task
// is finished once the brokers acknowledge the record, or once it fails for
// good. The record's key is the parcel's id, so that one id's records keep
// their order in one partition; its value is the JSON line every storing
// sink writes (sink.AppendRecord); its "received" header and its timestamp
// are when the server read the request.
//
// The producer is idempotent and waits for every in-sync replica (acks=all):
// a batch retried after a lost acknowledgement or a leader change is written
// once. Retriable errors are retried without limit, as franz-go does by
// default, so that a broker's failover or a short outage loses nothing;
// errors no retry can fix (a record too large, a denied write) fail the
// task, and the parcel counts as failed.
//
// The sink holds at most Config.MaxBuffered bytes of records; Store blocks
// while it holds that many, so a slow or absent cluster slows the HTTP
// clients down. A goroutine asks the cluster every CheckInterval whether
// the topic exists and every partition has a leader; while it does not (or
// no broker answers) Healthy reports the problem and the server answers
// 503, taking nothing. Close flushes what the sink holds within its
// context, then fails the rest.
package kafkasink

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/promtext"
	"github.com/fastingest/fastingest/internal/ratelog"
	"github.com/fastingest/fastingest/sink"
)

// ErrClosed is returned by Store once Close has begun, and by Healthy after.
var ErrClosed = errors.New("kafkasink: closed, not taking parcels")

// ErrNotAcknowledged is what a task is finished with when Close's context
// ends before the brokers acknowledged its record. The record may still
// have been written.
var ErrNotAcknowledged = errors.New("kafkasink: record not acknowledged by Kafka before the sink was closed")

// ReceivedHeader is the record header that holds when the server read the
// request, in RFC 3339 with nanoseconds, UTC: the record's "received".
const ReceivedHeader = "received"

// Sink produces parcels to a Kafka topic. Build it with New; it is safe
// for concurrent use.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	client  *kgo.Client
	promise func(*kgo.Record, error) // s.finish, bound once: no closure per record

	// gate lets Close wait for Stores in progress: Store holds it shared,
	// Close exclusively to set closed.
	gate   sync.RWMutex
	closed atomic.Bool
	held   sync.WaitGroup // records produced whose promise has not run
	// life is every record's context: cancelled when Close's context
	// ends, so that the producer fails what it may still fail.
	life       context.Context
	cancelLife context.CancelFunc
	aborted    atomic.Bool // Close gave up waiting: failures are abandonments

	health  atomic.Pointer[error] // nil while the topic is usable
	connErr atomic.Pointer[error] // the last failed connection's error; nil after a success
	wake    chan struct{}         // cap 1: check the cluster now
	stop    chan struct{}         // closed by Close: the checker exits
	checker sync.WaitGroup

	closeOnce sync.Once
	closeDone chan struct{}
	closeErr  error

	produced  atomic.Uint64
	failed    atomic.Uint64
	abandoned atomic.Uint64
	latency   *promtext.Histogram

	produceErrLog *ratelog.Limiter
	healthLog     *ratelog.Limiter
}

// errUnchecked is the topic's state until the first check answered.
var errUnchecked = errors.New("not checked yet")

// New validates cfg, builds the producer and asks the cluster once, within
// ctx, whether the topic is usable (creating it if cfg.CreateTopic says so).
//
// New fails only on an invalid cfg: an unreachable cluster or a missing
// topic is reported by Healthy meanwhile, and the sink keeps checking in
// the background, so that fastingest starts, answers 503, and becomes ready
// by itself once the cluster is.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	seeds, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.CheckTimeout == 0 {
		cfg.CheckTimeout = DefaultCheckTimeout
	}
	if cfg.MetadataMinAge == 0 {
		cfg.MetadataMinAge = DefaultMetadataMinAge
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Sink{
		cfg:           cfg,
		log:           log,
		wake:          make(chan struct{}, 1),
		stop:          make(chan struct{}),
		closeDone:     make(chan struct{}),
		latency:       promtext.NewHistogram("fastingest_kafka_produce_latency_seconds", "", latencyBuckets...),
		produceErrLog: ratelog.New(10 * time.Second),
		healthLog:     ratelog.New(10 * time.Second),
	}
	s.promise = s.finish
	s.life, s.cancelLife = context.WithCancel(context.Background())
	s.setHealth(errUnchecked)

	opts, err := clientOpts(s, seeds)
	if err != nil {
		s.cancelLife()
		return nil, err
	}
	if s.client, err = kgo.NewClient(opts...); err != nil {
		s.cancelLife()
		return nil, fmt.Errorf("kafkasink: %w", err)
	}
	s.check(ctx)
	if err := s.Healthy(); err != nil {
		log.Warn("Kafka cannot take parcels yet; the sink keeps checking, fastingest answers 503 meanwhile", "err", err)
	}
	s.checker.Add(1)
	go s.watch()
	return s, nil
}

// clientOpts turns s's configuration into the producer's options.
func clientOpts(s *Sink, seeds []string) ([]kgo.Opt, error) {
	cfg := &s.cfg
	compression, _ := codec(cfg.Compression) // validated
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("fastingest"),
		kgo.DefaultProduceTopic(cfg.Topic),
		// acks=all and idempotence are franz-go's defaults; they are
		// spelled out because the sink's promise rests on them.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(compression),
		kgo.ProducerLinger(cfg.Linger),
		kgo.MaxBufferedBytes(int(cfg.MaxBuffered)),
		// The record count never binds before the bytes do: a parcel's
		// record is at least some 60 bytes.
		kgo.MaxBufferedRecords(int(cfg.MaxBuffered/32) + 1),
		// A topic that goes missing is reported by Healthy and may be
		// created again: records wait for it rather than fail after
		// four metadata refreshes.
		kgo.UnknownTopicRetries(-1),
		// A partition's leader lost (a broker stopped) is learnt from
		// a metadata refresh, which franz-go makes at most once per
		// this (Config.MetadataMinAge).
		kgo.MetadataMinAge(cfg.MetadataMinAge),
		// No client telemetry pushed to the brokers (KIP-714): nothing
		// reads it, and Close would wait up to a second for its last
		// push.
		kgo.DisableClientMetrics(),
		kgo.WithHooks(connHook{s}),
	}
	if backoff := cfg.RetryBackoff; backoff > 0 {
		opts = append(opts, kgo.RetryBackoffFn(func(int) time.Duration { return backoff }))
	}
	if cfg.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if len(cfg.CAPEM) > 0 {
			pool, err := certPool(cfg.CAPEM)
			if err != nil {
				return nil, fmt.Errorf("kafkasink: CAPEM: %w", err)
			}
			tc.RootCAs = pool
		}
		// franz-go sets each connection's ServerName to its broker's host.
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := saslMechanism(cfg); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

// connHook records why connecting to a broker failed (refused, TLS,
// SASL), which Healthy adds to a check that timed out: the timeout alone
// would not say.
type connHook struct{ s *Sink }

// OnBrokerConnect is called after each dial, with the error of a dial,
// TLS handshake or authentication that failed.
func (h connHook) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, _ net.Conn, err error) {
	if err == nil {
		h.s.connErr.Store(nil)
		return
	}
	h.s.connErr.Store(&err)
}

func saslMechanism(cfg *Config) sasl.Mechanism {
	switch strings.ToUpper(cfg.SASLMechanism) {
	case SASLPlain:
		return plain.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: cfg.SASLUser, Pass: cfg.SASLPassword}.AsSha512Mechanism()
	}
	return nil
}

// entry is a parcel the sink holds: its task and the record that carries
// it. The record is the entry's first field, which is how the promise,
// called with the record, finds the task without a closure per record (see
// entryOf).
//
// The entry is not the record's context, though that would find it too:
// franz-go keeps the context of the first record produced to a topic whose
// partitions it does not know yet, and may still ask it for Done after the
// record's promise ran and the entry went back to the pool (the race
// detector caught it in TestKafkaSinkEndToEnd).
type entry struct {
	rec    kgo.Record // first: see entryOf
	task   ingest.Task
	header [1]kgo.RecordHeader
	buf    []byte // the key, then the value; the header's value is in it
	start  time.Time
}

// entryPool recycles entries with their buffers. An entry goes back once
// its promise has run: the producer no longer reads the record then.
var entryPool = sync.Pool{New: func() any { return new(entry) }}

// maxPooledBuf is the largest buffer kept for reuse, so that one huge
// parcel does not pin its memory in the pool.
const maxPooledBuf = 64 << 10

// entryOf returns the entry whose record r is: a record the sink produced
// is always the first field of an entry.
func entryOf(r *kgo.Record) *entry {
	return (*entry)(unsafe.Pointer(r))
}

func putEntry(e *entry) {
	if cap(e.buf) > maxPooledBuf {
		return
	}
	buf := e.buf[:0]
	*e = entry{buf: buf}
	entryPool.Put(e)
}

// newEntry builds t's record: key, value and header in one buffer.
func (s *Sink) newEntry(t ingest.Task, enc *sink.RecordEncoder) *entry {
	e := entryPool.Get().(*entry)
	e.task = t
	id := t.Parcel.ID
	buf := append(e.buf[:0], id...)
	buf = enc.Append(buf, t)
	e.buf = buf
	value := buf[len(id):]
	// The header's value is the record's own "received" field, which
	// ends the value as `"received":"TIME"}`: TIME holds no quote, so it
	// starts after the last quote before the closing `"}`.
	end := len(value) - 2
	stamp := value[bytes.LastIndexByte(value[:end], '"')+1 : end]
	e.header[0] = kgo.RecordHeader{Key: ReceivedHeader, Value: stamp}
	e.rec = kgo.Record{
		Key:       buf[:len(id):len(id)],
		Value:     value,
		Headers:   e.header[:],
		Timestamp: t.Received,
		Topic:     s.cfg.Topic,
		Context:   s.life,
	}
	return e
}

// Store takes t: it encodes the parcel as a record, hands it to the
// producer and returns nil; t is finished once the brokers acknowledge the
// record, once it fails for good, or by Close. Store blocks while the sink
// holds MaxBuffered bytes of records; if ctx ends meanwhile, the task is
// finished with ctx's error. It returns ErrClosed, not taking t, once
// Close has begun.
//
// The parcel is copied before Store returns, but the task is kept until it
// is finished, as ingest.DeferredSink allows.
func (s *Sink) Store(ctx context.Context, t ingest.Task) error {
	enc := encoders.Get().(*sink.RecordEncoder)
	err := s.produce(ctx, []ingest.Task{t}, enc)
	encoders.Put(enc)
	return err
}

// encoders recycles record encoders with their formatted time, which one
// per Store would allocate.
var encoders = sync.Pool{New: func() any { return new(sink.RecordEncoder) }}

// MaxRun is the most tasks the dispatcher hands the sink at once
// (ingest.RunSink): a worker that finds many parcels queued produces them
// all in one hand-off, rather than waking once per parcel.
func (s *Sink) MaxRun() int { return maxRun }

// maxRun is MaxRun's value, as for the NATS sink: as many parcels as a
// worker is likely to find queued under load.
const maxRun = 64

var _ ingest.RunSink = (*Sink)(nil)

// StoreRun takes the tasks of run as Store takes one, in order, with one
// encoder for the run (a request's parcels share their received time,
// formatted once). It takes all of them, or, once Close has begun, none:
// then every errs[i] is ErrClosed.
func (s *Sink) StoreRun(ctx context.Context, run []ingest.Task, errs []error) {
	enc := encoders.Get().(*sink.RecordEncoder)
	err := s.produce(ctx, run, enc)
	encoders.Put(enc)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
	}
}

// produce hands tasks to the producer, encoding them with enc: all of
// them, or none (ErrClosed). franz-go has no call for many records but
// the synchronous ProduceSync, so each record gets its own Produce.
func (s *Sink) produce(ctx context.Context, ts []ingest.Task, enc *sink.RecordEncoder) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	var built [maxRun]*entry
	for len(ts) > 0 {
		n := min(len(ts), maxRun)
		// Every record of the chunk is built before the sink takes any
		// task: should encoding ever panic, the worker fails tasks the
		// sink does not hold, and no held count is left for Close.
		for i, t := range ts[:n] {
			built[i] = s.newEntry(t, enc)
		}
		s.held.Add(n)
		for _, e := range built[:n] {
			e.start = time.Now()
			// Produce blocks while MaxBuffered bytes are held, until
			// ctx ends; the promise then finishes the task with
			// ctx's error.
			s.client.Produce(ctx, &e.rec, s.promise)
		}
		ts = ts[n:]
	}
	return nil
}

// finish is every record's promise: it finishes the record's task. The
// producer calls promises one at a time, in order per partition; this one
// never blocks.
func (s *Sink) finish(r *kgo.Record, err error) {
	e := entryOf(r)
	t := e.task
	s.latency.Observe(time.Since(e.start))
	if err == nil {
		s.produced.Add(1)
		putEntry(e)
		t.Finish(nil)
		s.held.Done()
		return
	}
	if s.aborted.Load() {
		s.abandoned.Add(1)
		err = fmt.Errorf("%w (%v)", ErrNotAcknowledged, err)
	} else {
		s.failed.Add(1)
		if ok, suppressed := s.produceErrLog.Allow(); ok {
			s.log.Warn("producing a parcel to Kafka failed for good; the parcel counts as failed",
				"topic", s.cfg.Topic, "err", err, "suppressed_since_last", suppressed)
		}
		err = fmt.Errorf("kafkasink: producing to topic %s: %w", s.cfg.Topic, err)
		s.checkNow() // the topic or the cluster may be the cause
	}
	putEntry(e)
	t.Finish(err)
	s.held.Done()
}

// Healthy returns nil when the sink can store parcels: a broker answered
// the last check, the topic exists and each of its partitions has a
// leader. Otherwise it returns an error saying what is wrong; parcels
// stored meanwhile wait in the producer. It is cheap enough to call on
// every request.
func (s *Sink) Healthy() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if p := s.health.Load(); p != nil {
		return *p
	}
	return nil
}

// Close stops taking parcels and waits until the brokers have acknowledged
// every record the sink holds, or until ctx ends: then the records still
// held are failed (their tasks finished with ErrNotAcknowledged), and the
// producer is closed. It returns an error when some records were not
// acknowledged. A second call waits for the first to finish and returns
// its result.
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
	s.gate.Lock() // wait for Stores in progress
	s.closed.Store(true)
	s.gate.Unlock()

	if err := s.client.Flush(ctx); err != nil {
		// Whatever fails from here on was given up on, not refused.
		s.aborted.Store(true)
		s.cancelLife()
	}
	close(s.stop)
	s.checker.Wait()
	// Closing the client fails every record it still holds, which
	// runs every remaining promise.
	s.client.Close()
	s.held.Wait()
	s.cancelLife()

	if n := s.abandoned.Load(); n > 0 {
		s.closeErr = fmt.Errorf("kafkasink: %d parcels not acknowledged by Kafka before closing: %w", n, ctx.Err())
	}
	close(s.closeDone)
	return s.closeErr
}

// Stats counts what a Sink did since New.
type Stats struct {
	Produced  uint64 // records the brokers acknowledged: tasks finished with nil
	Failed    uint64 // records that failed for good before Close gave up: tasks failed
	Abandoned uint64 // records Close gave up on: tasks finished with ErrNotAcknowledged
}

// Stats returns the sink's counters.
func (s *Sink) Stats() Stats {
	return Stats{Produced: s.produced.Load(), Failed: s.failed.Load(), Abandoned: s.abandoned.Load()}
}

// Buffered returns the records the producer holds, and their bytes (keys,
// values and headers): those not yet acknowledged.
func (s *Sink) Buffered() (records, bytes int64) {
	return s.client.BufferedProduceRecords(), s.client.BufferedProduceBytes()
}
