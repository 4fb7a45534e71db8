package natssink

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/sink"
)

// entry is a parcel the sink holds: its task and the message that carries
// it. The message is built once, in Store, and published as it is on every
// attempt, so a retry carries the same Nats-Msg-Id and the same bytes.
//
// An entry is always in exactly one place: in Store, in inflight, held by
// the collector, in retries, or held by the retrier. Whoever holds it
// finishes it.
type entry struct {
	task   ingest.Task
	msg    nats.Msg
	header nats.Header // msg.Header; its Nats-Msg-Id value is id[:]
	id     [1]string
	data   []byte // msg.Data: the record, a copy that outlives the parcel

	// The latest publish: its number in pendingAcks, its reply subject
	// (reply, built in replyBuf), when it was sent, and its result, which
	// exactly one of the acknowledgement, the collector's timeout or a
	// disconnect sends.
	ack      uint64
	replyBuf []byte
	sentAt   time.Time
	result   chan error // cap 1

	attempts int       // publishes that failed
	retryAt  time.Time // not published again before
	lastErr  error     // of the latest failed publish
}

// entryPool recycles entries with their header map, record buffer and
// result channel. Reusing the record buffer is safe: the core client has
// written the message to its buffer by the time PublishMsg returns, and an
// entry is reused only once its publish has a result.
var entryPool = sync.Pool{New: func() any {
	e := &entry{header: make(nats.Header, 1), result: make(chan error, 1)}
	e.header[jetstream.MsgIDHeader] = e.id[:]
	return e
}}

// maxPooledRecord is the largest record buffer kept for reuse, so that one
// huge parcel does not pin its memory in the pool.
const maxPooledRecord = 64 << 10

func getEntry() *entry { return entryPool.Get().(*entry) }

func putEntry(e *entry) {
	if cap(e.data) > maxPooledRecord {
		return
	}
	e.reset()
	entryPool.Put(e)
}

func (e *entry) reset() {
	e.task = ingest.Task{}
	e.msg = nats.Msg{}
	e.id[0] = ""
	e.data = e.data[:0]
	e.ack = 0
	e.sentAt = time.Time{}
	e.attempts = 0
	e.retryAt = time.Time{}
	e.lastErr = nil
}

// failed records a failed publish and when to try again.
func (e *entry) failed(err error) {
	e.attempts++
	e.lastErr = err
	e.retryAt = time.Now().Add(backoff(e.attempts))
}

// MaxRun is the most tasks the dispatcher hands the sink at once
// (ingest.RunSink): a worker that finds many parcels queued publishes them
// all in one hand-off, rather than waking once per parcel.
func (s *Sink) MaxRun() int { return maxRun }

// maxRun is MaxRun's value: as many parcels as a worker is likely to find
// queued under load, few enough that one run does not hold many of
// MaxPending's slots waiting for room.
const maxRun = 64

var _ ingest.RunSink = (*Sink)(nil)

// StoreRun takes each task of run as Store does, in order, setting errs[i]
// for a task it did not take.
func (s *Sink) StoreRun(ctx context.Context, run []ingest.Task, errs []error) {
	for i := range run {
		errs[i] = s.Store(ctx, run[i])
	}
}

// Store takes t: it encodes the parcel, publishes it asynchronously and
// returns nil; t is finished once JetStream has acknowledged the message,
// or by Close. While NATS is unreachable the parcel is held and published
// when it is back. Store blocks while the sink holds MaxPending parcels,
// until ctx ends (it then returns ctx's error, wrapped) or Close begins
// (ErrClosed); t is not taken then, and not finished.
//
// The parcel is copied before Store returns, but the task is kept until it
// is finished, as ingest.DeferredSink allows.
func (s *Sink) Store(ctx context.Context, t ingest.Task) error {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closed.Load() {
		return ErrClosed
	}
	// The message is built before the sink takes anything: should
	// encoding ever panic, no slot or held count is left behind for
	// Close to wait on.
	e := s.newEntry(t)
	select {
	case s.slots <- struct{}{}:
	default:
		select {
		case s.slots <- struct{}{}:
		case <-ctx.Done():
			putEntry(e)
			return fmt.Errorf("natssink: no room for the parcel, %d are awaiting JetStream: %w", cap(s.slots), ctx.Err())
		case <-s.closing:
			putEntry(e)
			return ErrClosed
		}
	}
	s.held.Add(1)
	if s.ready() {
		err := s.publish(e)
		if err == nil {
			s.inflight <- e // never blocks: cap is MaxPending
			return nil
		}
		s.publishFailed(e, err)
		return nil
	}
	s.retries <- e // never blocks: cap is MaxPending
	return nil
}

// newEntry builds t's message.
func (s *Sink) newEntry(t ingest.Task) *entry {
	e := getEntry()
	e.task = t
	e.data = sink.AppendRecord(e.data[:0], t)
	e.id[0] = msgID(s.prefix, t.Seq)
	e.msg = nats.Msg{Subject: s.cfg.Subject, Header: e.header, Data: e.data}
	return e
}

// publish sends e's message with a reply subject under the sink's inbox,
// where its acknowledgement will come (onAck). The collector then awaits
// e.result.
func (s *Sink) publish(e *entry) error {
	e.ack = s.acks.add(e)
	e.replyBuf = strconv.AppendUint(append(e.replyBuf[:0], s.inbox...), e.ack, 10)
	e.msg.Reply = string(e.replyBuf)
	e.sentAt = time.Now()
	if err := s.nc.PublishMsg(&e.msg); err != nil {
		if s.acks.take(e.ack) == nil {
			<-e.result // a disconnect failed it meanwhile: this error says it
		}
		return err
	}
	s.published.Add(1)
	if e.attempts > 0 {
		s.retried.Add(1)
	}
	return nil
}

// collect completes published entries in publish order. Waiting in order
// costs at most AckWait for the entries behind one whose acknowledgement
// was lost, and needs one goroutine and one timer however many are
// pending.
func (s *Sink) collect() {
	defer s.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case e := <-s.inflight:
			s.await(e, timer)
		case <-s.stop:
			return
		}
	}
}

// await waits until e's publish completes: acknowledged (a duplicate's
// acknowledgement too: the message is stored), refused, failed by a
// disconnect, not acknowledged within AckWait of its sending, or given up
// by Close.
func (s *Sink) await(e *entry, timer *time.Timer) {
	timer.Reset(time.Until(e.sentAt.Add(s.cfg.AckWait)))
	defer timer.Stop()
	var err error
	select {
	case err = <-e.result:
	case <-timer.C:
		err = errAckTimeout
		if s.acks.take(e.ack) == nil {
			err = <-e.result // completed at the same moment
		}
	case <-s.abort:
		select {
		case err = <-e.result:
		default:
			if s.acks.take(e.ack) == nil {
				err = <-e.result
				break
			}
			s.giveUp(e)
			return
		}
	}
	if err != nil {
		s.publishFailed(e, err)
		return
	}
	s.ackLatency.Observe(time.Since(e.sentAt))
	s.acknowledged.Add(1)
	s.finish(e, nil)
}

// publishFailed sends e to be published again, unless Close gave up.
func (s *Sink) publishFailed(e *entry, err error) {
	e.failed(err)
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		// Nothing captures the subject: the stream was deleted, or the
		// server restarted without it. The maintainer recreates it.
		s.streamLost(err)
	}
	if ok, suppressed := s.pubErrLog.Allow(); ok {
		s.log.Warn("publishing a parcel to JetStream failed; publishing it again",
			"subject", s.cfg.Subject, "err", err, "attempts", e.attempts, "suppressed_since_last", suppressed)
	}
	select {
	case <-s.abort:
		s.giveUp(e)
	default:
		s.retries <- e // never blocks: cap is MaxPending
	}
}

// retry publishes again, in turn, the entries that failed or could not be
// published when they were stored, each once its backoff has passed and
// NATS is usable.
func (s *Sink) retry() {
	defer s.workers.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case e := <-s.retries:
			s.republish(e, timer)
		case <-s.stop:
			return
		}
	}
}

func (s *Sink) republish(e *entry, timer *time.Timer) {
	for {
		select {
		case <-s.abort:
			s.giveUp(e)
			return
		default:
		}
		changed := s.changed.wait() // before looking, not to miss a change
		ready := s.ready()
		wait := time.Until(e.retryAt)
		if ready && wait <= 0 {
			err := s.publish(e)
			if err == nil {
				s.inflight <- e // never blocks: cap is MaxPending
				return
			}
			e.failed(err)
			if ok, suppressed := s.pubErrLog.Allow(); ok {
				s.log.Warn("publishing a parcel to JetStream failed; publishing it again",
					"subject", s.cfg.Subject, "err", err, "attempts", e.attempts, "suppressed_since_last", suppressed)
			}
			continue
		}
		if ready {
			changed = nil // only the backoff is left to wait for
		} else if wait <= 0 {
			wait = maxBackoff // look again even if no change is announced
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-changed:
		case <-s.abort:
		}
		timer.Stop()
	}
}

// finish finishes e's task with err and lets a new parcel in. e's publish
// has completed, so the client is done with its message and e is reused.
func (s *Sink) finish(e *entry, err error) {
	t := e.task
	putEntry(e)
	s.release(t, err)
}

// giveUp finishes e's task with ErrNotAcknowledged: Close's ctx ended. e is
// no longer pending, but it is left to the garbage collector rather than
// reused, as the simplest way to be sure nothing refers to it.
func (s *Sink) giveUp(e *entry) {
	err := ErrNotAcknowledged
	if e.lastErr != nil {
		err = fmt.Errorf("%w (last error: %v)", ErrNotAcknowledged, e.lastErr)
	}
	s.abandoned.Add(1)
	s.release(e.task, err)
}

func (s *Sink) release(t ingest.Task, err error) {
	t.Finish(err)
	<-s.slots
	s.held.Done()
}
