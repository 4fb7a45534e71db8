package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// errHeld is the error heldSink finishes tasks with when told to fail them.
var errHeld = errors.New("held sink: cannot store")

// errRefused is what heldSink's Store returns for a parcel it does not take.
var errRefused = errors.New("held sink: refused")

// heldSink is a DeferredSink that takes every task and holds it, like a sink
// waiting for a group commit, until the test finishes it with finish. It
// checks the dispatcher's side of the contract: Close once, after every
// Store has returned, and no Store after it.
type heldSink struct {
	// capacity is the most tasks held at once; Store waits for room (or
	// for its context to end) beyond it. 0 means no limit.
	capacity int
	// refuse makes Store refuse, without taking, every parcel whose ID
	// starts with it. "" refuses none.
	refuse string
	// closeWaits makes Close wait for its ctx to end and then fail what is
	// still held, as a sink whose storage is stuck does. Otherwise Close
	// stores everything held at once.
	closeWaits bool
	// closeLeaves makes Close return nil and leave what it holds
	// unfinished: a sink breaking its contract.
	closeLeaves bool
	// took, if not nil, is signalled (without blocking) whenever the
	// sink takes a task.
	took chan struct{}

	closeMu  sync.Mutex // a second Close waits for the first, as real sinks' do
	mu       sync.Mutex
	held     []Task
	closed   bool
	storeCtx context.Context // the context the first Store was given
	room     chan struct{}   // cap 1: a held task was finished

	running        atomic.Int64 // Stores in progress
	stores         atomic.Int64 // Stores called
	lateStores     atomic.Int64 // Stores called after Close
	closes         atomic.Int64 // Close calls
	runningAtClose atomic.Int64 // Stores in progress when Close was first called
	storeCtxDone   atomic.Bool  // the Store context was cancelled when Close was called
}

func (s *heldSink) Store(ctx context.Context, t Task) error {
	s.running.Add(1)
	defer s.running.Add(-1)
	s.stores.Add(1)
	s.mu.Lock()
	if s.closed {
		s.lateStores.Add(1)
	}
	if s.storeCtx == nil {
		s.storeCtx = ctx
	}
	if s.room == nil {
		s.room = make(chan struct{}, 1)
	}
	room := s.room
	if s.refuse != "" && strings.HasPrefix(t.Parcel.ID, s.refuse) {
		s.mu.Unlock()
		return errRefused
	}
	for s.capacity > 0 && len(s.held) >= s.capacity {
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
	}
	s.held = append(s.held, t)
	s.mu.Unlock()
	if s.took != nil {
		select {
		case s.took <- struct{}{}:
		default:
		}
	}
	return nil
}

// heldCount returns the number of tasks the sink holds.
func (s *heldSink) heldCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

// heldIDs returns copies of the IDs of the parcels held.
func (s *heldSink) heldIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, len(s.held))
	for i, t := range s.held {
		ids[i] = strings.Clone(t.Parcel.ID)
	}
	return ids
}

// finish finishes the n oldest held tasks (all of them if n < 0) with err
// and returns how many it finished. done, if not nil, is called with a copy
// of each parcel's ID just before its task is finished, while the parcel is
// still valid.
func (s *heldSink) finish(n int, err error, done func(id string)) int {
	s.mu.Lock()
	if n < 0 || n > len(s.held) {
		n = len(s.held)
	}
	tasks := slices.Clone(s.held[:n])
	s.held = slices.Delete(s.held, 0, n)
	room := s.room
	s.mu.Unlock()
	for _, t := range tasks {
		if done != nil {
			done(strings.Clone(t.Parcel.ID))
		}
		t.Finish(err)
	}
	if n > 0 && room != nil {
		select {
		case room <- struct{}{}:
		default:
		}
	}
	return n
}

func (s *heldSink) Close(ctx context.Context) error {
	if s.closes.Add(1) == 1 {
		s.runningAtClose.Store(s.running.Load())
	}
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	s.mu.Lock()
	s.closed = true
	if s.storeCtx != nil {
		s.storeCtxDone.Store(s.storeCtx.Err() != nil)
	}
	s.mu.Unlock()
	if s.closeLeaves {
		return nil
	}
	if !s.closeWaits {
		s.finish(-1, nil, nil)
		return nil
	}
	<-ctx.Done()
	if n := s.finish(-1, ctx.Err(), nil); n > 0 {
		return fmt.Errorf("held sink: %d tasks failed: %w", n, ctx.Err())
	}
	return nil
}

// counts are the dispatcher's parcel counters.
type counts struct{ accepted, completed, failed uint64 }

// checkCounts checks the dispatcher's parcel counters and that InFlight is
// what they leave.
func checkCounts(t *testing.T, d *Dispatcher, want counts) {
	t.Helper()
	st := d.Stats()
	if got := (counts{st.Accepted, st.Completed, st.Failed}); got != want {
		t.Errorf("Stats() accepted, completed, failed: got %+v, want %+v", got, want)
	}
	if got, want := st.InFlight(), want.accepted-want.completed-want.failed; got != want {
		t.Errorf("Stats().InFlight(): got %d, want %d", got, want)
	}
}

// submitAndWaitAsync runs SubmitAndWait in a goroutine of its own; the
// channel receives its result.
func submitAndWaitAsync(d *Dispatcher, b *Batch, timeout time.Duration) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- d.SubmitAndWait(time.Now(), b, timeout) }()
	return ch
}

// resultOf waits for a SubmitAndWait started by submitAndWaitAsync, failing
// the test after a generous deadline.
func resultOf(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("SubmitAndWait did not return")
		return nil
	}
}

// checkStillWaiting fails the test if SubmitAndWait has returned.
func checkStillWaiting(t *testing.T, ch <-chan error) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("SubmitAndWait returned %v before its tasks were finished", err)
	default:
	}
}

// bodyOf encodes parcels as a request body that Decode takes on its fast
// path.
func bodyOf(parcels []Parcel) []byte {
	var b strings.Builder
	b.WriteString(`{"Data":[`)
	for i, p := range parcels {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%q,"time":%q,"data":%q}`, p.ID, p.Time, p.Data)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// TestDeferredSinkTasksCountOnlyWhenFinished: a task a deferred sink took is
// neither completed nor failed until the sink finishes it, and is then
// counted by the outcome it is finished with; a task Store refuses counts as
// failed at once, and the sink is never asked to finish it (Close neither).
func TestDeferredSinkTasksCountOnlyWhenFinished(t *testing.T) {
	t.Parallel()
	sink := &heldSink{refuse: "refuse"}
	// One worker takes the tasks in order, so once the refused parcels,
	// the last ones, are counted, every earlier Store has returned.
	d := newDispatcher(t, 16, 1, sink)
	parcels := append(makeParcels("keep", 4), makeParcels("refuse", 2)...)
	if err := d.Submit(time.Now(), NewBatch(parcels)); err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	waitFor(t, "the refused parcels counted as failed", func() bool { return d.Stats().Failed == 2 })
	if got, want := sink.heldIDs(), []string{"keep0", "keep1", "keep2", "keep3"}; !slices.Equal(got, want) {
		t.Fatalf("sink holds %q; want %q", got, want)
	}

	steps := []struct {
		name string
		n    int   // tasks to finish
		err  error // with this outcome
		want counts
	}{
		{name: "taken, none finished", want: counts{6, 0, 2}},
		{name: "one stored", n: 1, want: counts{6, 1, 2}},
		{name: "two failed", n: 2, err: errHeld, want: counts{6, 1, 4}},
		{name: "the last stored", n: 1, want: counts{6, 2, 4}},
	}
	for _, step := range steps {
		if got := sink.finish(step.n, step.err, nil); got != step.n {
			t.Fatalf("%s: finished %d tasks; want %d", step.name, got, step.n)
		}
		t.Run(step.name, func(t *testing.T) {
			checkCounts(t, d, step.want)
			// The worker returned from every Store: the held tasks
			// occupy no worker.
			if st := d.Stats(); st.BusyWorkers > st.Workers {
				t.Errorf("Stats().BusyWorkers = %d with %d workers, all idle; want 0", st.BusyWorkers, st.Workers)
			}
		})
	}

	shutdown(t, d)
	if got := sink.closes.Load(); got != 1 {
		t.Errorf("Close called %d times; want 1", got)
	}
	// Nothing was left for Close to finish: the refused parcels were not
	// handed back to the sink, and no task was counted twice.
	checkCounts(t, d, counts{6, 2, 4})
	if got := sink.stores.Load(); got != 6 {
		t.Errorf("Store called %d times; want 6 (once per parcel, refused ones not retried)", got)
	}
}

// seqSink records the Seq of every task it stores, by parcel ID.
type seqSink struct {
	mu   sync.Mutex
	seqs map[string]uint64
	dups []string // IDs stored twice
}

func (s *seqSink) Store(_ context.Context, t Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seqs == nil {
		s.seqs = map[string]uint64{}
	}
	id := strings.Clone(t.Parcel.ID)
	if _, ok := s.seqs[id]; ok {
		s.dups = append(s.dups, id)
	}
	s.seqs[id] = t.Seq
	return nil
}

// TestSeqNumbersAcceptedParcels: every accepted parcel gets its own Seq,
// together exactly 1..N, whether its batch came through Submit or
// SubmitAndWait, from however many goroutines; sequential submits are
// numbered in order.
func TestSeqNumbersAcceptedParcels(t *testing.T) {
	t.Parallel()
	t.Run("sequential submits in order", func(t *testing.T) {
		sink := &seqSink{}
		d := newDispatcher(t, 8, 3, sink)
		var ids []string
		for r := range 5 {
			ps := makeParcels(fmt.Sprintf("r%d-", r), r+1)
			for _, p := range ps {
				ids = append(ids, p.ID)
			}
			if err := d.Submit(time.Now(), NewBatch(ps)); err != nil {
				t.Fatalf("Submit() = %v", err)
			}
		}
		shutdown(t, d)
		for i, id := range ids {
			if got, want := sink.seqs[id], uint64(i+1); got != want {
				t.Errorf("parcel %s: Seq got %d, want %d", id, got, want)
			}
		}
	})

	t.Run("concurrent submits distinct", func(t *testing.T) {
		sink := &seqSink{}
		d := newDispatcher(t, 8, 4, sink)
		const submitters, requests = 8, 40
		var wg sync.WaitGroup
		for s := range submitters {
			wg.Go(func() {
				for r := range requests {
					b := NewBatch(makeParcels(fmt.Sprintf("s%d-r%d-", s, r), 1+(s+r)%5))
					var err error
					if r%2 == 0 {
						err = d.Submit(time.Now(), b)
					} else {
						err = d.SubmitAndWait(time.Now(), b, 10*time.Second)
					}
					if err != nil {
						t.Errorf("submit: %v", err)
						return
					}
				}
			})
		}
		wg.Wait()
		shutdown(t, d)

		if len(sink.dups) > 0 {
			t.Fatalf("parcels stored twice: %q", sink.dups)
		}
		seqs := make([]uint64, 0, len(sink.seqs))
		for _, seq := range sink.seqs {
			seqs = append(seqs, seq)
		}
		slices.Sort(seqs)
		if got, want := uint64(len(seqs)), d.Stats().Accepted; got != want {
			t.Fatalf("sink saw %d parcels; want Accepted = %d", got, want)
		}
		for i, seq := range seqs {
			if want := uint64(i + 1); seq != want {
				t.Fatalf("sorted Seq values: [%d] got %d, want %d (values must be exactly 1..%d)", i, seq, want, len(seqs))
			}
		}
	})
}

// TestSubmitAndWaitOutcome: SubmitAndWait returns once every task of the
// batch is finished, nil when all were stored and a *NotStoredError counting
// the failed ones otherwise, whether the sink failed them later or Store
// refused them.
func TestSubmitAndWaitOutcome(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		keep    int // parcels the sink takes
		refuse  int // parcels Store refuses
		fail    int // taken parcels later finished with an error
		wantErr *NotStoredError
	}{
		{name: "all stored", keep: 5},
		{name: "some fail", keep: 5, fail: 2, wantErr: &NotStoredError{Parcels: 5, Failed: 2}},
		{name: "all fail", keep: 3, fail: 3, wantErr: &NotStoredError{Parcels: 3, Failed: 3}},
		{name: "refused by Store", keep: 4, refuse: 1, wantErr: &NotStoredError{Parcels: 5, Failed: 1}},
		{name: "refused and failed", keep: 4, refuse: 2, fail: 1, wantErr: &NotStoredError{Parcels: 6, Failed: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &heldSink{refuse: "refuse"}
			d := newDispatcher(t, 16, 2, sink)
			defer shutdown(t, d)
			parcels := append(makeParcels("refuse", tt.refuse), makeParcels("keep", tt.keep)...)
			res := submitAndWaitAsync(d, NewBatch(parcels), time.Hour)

			waitFor(t, "the sink to take its parcels and refuse the rest", func() bool {
				return sink.heldCount() == tt.keep && d.Stats().Failed == uint64(tt.refuse)
			})
			checkStillWaiting(t, res)
			sink.finish(tt.fail, errHeld, nil)
			if tt.keep > tt.fail {
				checkStillWaiting(t, res)
			}
			sink.finish(-1, nil, nil)

			err := resultOf(t, res)
			n := uint64(len(parcels))
			checkCounts(t, d, counts{n, uint64(tt.keep - tt.fail), uint64(tt.refuse + tt.fail)})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("SubmitAndWait() = %v; want nil", err)
				}
				return
			}
			var ns *NotStoredError
			if !errors.As(err, &ns) {
				t.Fatalf("SubmitAndWait() = %v; want a *NotStoredError", err)
			}
			if *ns != *tt.wantErr {
				t.Errorf("SubmitAndWait() = %+v; want %+v", *ns, *tt.wantErr)
			}
			if want := fmt.Sprintf("%d of %d parcels could not be stored", tt.wantErr.Failed, tt.wantErr.Parcels); err.Error() != want {
				t.Errorf("error text: got %q, want %q", err.Error(), want)
			}
		})
	}
}

// TestSubmitAndWaitTimeout: when the sink holds the tasks past the timeout,
// SubmitAndWait answers a *NotStoredError with Timeout; finishing the tasks
// later still counts them and lets the batch go.
func TestSubmitAndWaitTimeout(t *testing.T) {
	t.Parallel()
	sink := &heldSink{}
	d := newDispatcher(t, 16, 2, sink)
	const timeout = 20 * time.Millisecond
	b := AcquireBatch()
	if err := b.Decode(referencePayload()); err != nil {
		t.Fatal(err)
	}
	err := d.SubmitAndWait(time.Now(), b, timeout)
	var ns *NotStoredError
	if !errors.As(err, &ns) {
		t.Fatalf("SubmitAndWait() = %v; want a *NotStoredError", err)
	}
	if want := (NotStoredError{Parcels: 9, Timeout: timeout}); *ns != want {
		t.Errorf("SubmitAndWait() = %+v; want %+v", *ns, want)
	}
	if got, want := err.Error(), "parcels not confirmed stored within 20ms"; got != want {
		t.Errorf("error text: got %q, want %q", got, want)
	}
	// The tasks carry on: the parcels are intact for the sink.
	waitFor(t, "the sink to hold all 9 parcels", func() bool { return sink.heldCount() == 9 })
	ids := sink.heldIDs()
	slices.Sort(ids)
	if want := []string{"1", "2", "3", "4", "5", "6", "7", "8", "9"}; !slices.Equal(ids, want) {
		t.Errorf("held parcels %q; want %q", ids, want)
	}
	checkCounts(t, d, counts{9, 0, 0})
	sink.finish(3, errHeld, nil)
	sink.finish(-1, nil, nil)
	checkCounts(t, d, counts{9, 6, 3})
	shutdown(t, d)
}

// TestSubmitAndWaitTimeoutsThenFinished submits many pooled batches from
// several goroutines, all of which time out because the sink holds their
// tasks; the sink then finishes them, some failed. Every parcel ends up
// counted, and the batches, back in the pool, serve later requests whose
// SubmitAndWait waits for their own tasks: no "finished" signal is left
// behind in a pooled batch.
func TestSubmitAndWaitTimeoutsThenFinished(t *testing.T) {
	t.Parallel()
	sink := &heldSink{}
	d := newDispatcher(t, 64, 8, sink)

	const submitters, rounds, perBatch = 8, 50, 3
	const total = submitters * rounds * perBatch
	const timeout = time.Millisecond
	var wg sync.WaitGroup
	for s := range submitters {
		wg.Go(func() {
			for r := range rounds {
				b := AcquireBatch()
				if err := b.Decode(bodyOf(makeParcels(fmt.Sprintf("s%d-r%d-", s, r), perBatch))); err != nil {
					t.Errorf("Decode() = %v", err)
					return
				}
				err := d.SubmitAndWait(time.Now(), b, timeout)
				var ns *NotStoredError
				if !errors.As(err, &ns) || *ns != (NotStoredError{Parcels: perBatch, Timeout: timeout}) {
					t.Errorf("SubmitAndWait() = %v; want a timeout after %v", err, timeout)
				}
			}
		})
	}
	wg.Wait()
	waitFor(t, "the sink to hold every parcel", func() bool { return sink.heldCount() == total })
	checkCounts(t, d, counts{total, 0, 0})
	sink.finish(total/3, errHeld, nil)
	sink.finish(-1, nil, nil)
	checkCounts(t, d, counts{total, total - total/3, total / 3})

	// The pooled batches again: each SubmitAndWait waits for its tasks.
	for r := range 2 * submitters {
		b := AcquireBatch()
		if err := b.Decode(bodyOf(makeParcels(fmt.Sprintf("again%d-", r), perBatch))); err != nil {
			t.Fatal(err)
		}
		res := submitAndWaitAsync(d, b, time.Hour)
		waitFor(t, "the sink to hold the batch", func() bool { return sink.heldCount() == perBatch })
		checkStillWaiting(t, res)
		sink.finish(-1, nil, nil)
		if err := resultOf(t, res); err != nil {
			t.Fatalf("SubmitAndWait() = %v; want nil", err)
		}
	}
	const again = 2 * submitters * perBatch
	checkCounts(t, d, counts{total + again, total - total/3 + again, total / 3})
	shutdown(t, d)
}

// TestSubmitAndWaitTimeoutsRacingFinishes submits many pooled batches whose
// tasks are finished concurrently by several goroutines while their waiters
// time out, some before and some after. No SubmitAndWait may answer nil
// before every parcel of its batch was finished, and the race detector
// watches the batch's reference counting.
func TestSubmitAndWaitTimeoutsRacingFinishes(t *testing.T) {
	t.Parallel()
	sink := &heldSink{took: make(chan struct{}, 1)}
	d := newDispatcher(t, 64, 8, sink)

	var finishedMu sync.Mutex
	finished := map[string]bool{} // parcel IDs finished so far
	markFinished := func(id string) {
		finishedMu.Lock()
		finished[id] = true
		finishedMu.Unlock()
	}
	stop := make(chan struct{})
	var finishers sync.WaitGroup
	for range 4 {
		finishers.Go(func() {
			for {
				for sink.finish(1, nil, markFinished) > 0 {
				}
				select {
				case <-sink.took:
				case <-stop:
					return
				}
			}
		})
	}

	const submitters, rounds, perBatch = 8, 150, 3
	var wg sync.WaitGroup
	for s := range submitters {
		wg.Go(func() {
			for r := range rounds {
				ps := makeParcels(fmt.Sprintf("s%d-r%d-", s, r), perBatch)
				b := AcquireBatch()
				if err := b.Decode(bodyOf(ps)); err != nil {
					t.Errorf("Decode() = %v", err)
					return
				}
				// Timeouts around the time the finishers take, so that
				// some batches are finished before and some after.
				timeout := time.Duration(r%7) * 50 * time.Microsecond
				err := d.SubmitAndWait(time.Now(), b, timeout)
				var ns *NotStoredError
				switch {
				case err == nil:
					finishedMu.Lock()
					for _, p := range ps {
						if !finished[p.ID] {
							t.Errorf("SubmitAndWait() = nil before parcel %s was finished", p.ID)
						}
					}
					finishedMu.Unlock()
				case errors.As(err, &ns) && ns.Timeout == timeout && ns.Failed == 0:
				default:
					t.Errorf("SubmitAndWait() = %v; want nil or a timeout", err)
				}
			}
		})
	}
	wg.Wait()
	const total = submitters * rounds * perBatch
	waitFor(t, "every parcel finished", func() bool { return d.Stats().InFlight() == 0 })
	close(stop)
	finishers.Wait()
	checkCounts(t, d, counts{total, total, 0})
	shutdown(t, d)
}

// copySink keeps a copy of every parcel it stores, so that a pooled batch's
// memory may be reused afterwards.
type copySink struct {
	mu      sync.Mutex
	parcels []Parcel
}

func (s *copySink) Store(_ context.Context, t Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.parcels = append(s.parcels, Parcel{
		ID: strings.Clone(t.Parcel.ID), Time: strings.Clone(t.Parcel.Time), Data: strings.Clone(t.Parcel.Data),
	})
	return nil
}

// take returns the parcels stored since the last take, sorted by ID.
func (s *copySink) take() []Parcel {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.parcels
	s.parcels = nil
	slices.SortFunc(ps, func(a, b Parcel) int { return strings.Compare(a.ID, b.ID) })
	return ps
}

// TestSubmitAndWaitReusesPooledBatch acquires, decodes and submits pooled
// batches over and over, as the handler does: when SubmitAndWait returns nil
// every parcel of the request is in the sink, intact, although the batch
// memory is reused by the next request.
func TestSubmitAndWaitReusesPooledBatch(t *testing.T) {
	t.Parallel()
	sink := &copySink{}
	d := newDispatcher(t, 16, 4, sink)
	for r := range 200 {
		want := makeParcels(fmt.Sprintf("r%03d-", r), 1+r%9)
		slices.SortFunc(want, func(a, b Parcel) int { return strings.Compare(a.ID, b.ID) })
		b := AcquireBatch()
		if err := b.Decode(bodyOf(want)); err != nil {
			t.Fatalf("round %d: Decode() = %v", r, err)
		}
		if err := d.SubmitAndWait(time.Now(), b, 10*time.Second); err != nil {
			t.Fatalf("round %d: SubmitAndWait() = %v", r, err)
		}
		if got := sink.take(); !slices.Equal(got, want) {
			t.Fatalf("round %d: sink has %+v when SubmitAndWait returned; want %+v", r, got, want)
		}
	}
	shutdown(t, d)
}

// TestSubmitAndWaitEmptyBatch: a batch without parcels is answered nil at
// once, accepting nothing.
func TestSubmitAndWaitEmptyBatch(t *testing.T) {
	t.Parallel()
	sink := &heldSink{}
	d := newDispatcher(t, 4, 1, sink)
	pooled := AcquireBatch()
	if err := pooled.Decode([]byte(`{"Data":[]}`)); err != nil {
		t.Fatal(err)
	}
	for _, b := range []*Batch{NewBatch(nil), pooled} {
		// An hour: if SubmitAndWait waited for anything, resultOf's
		// deadline would fail the test.
		if err := resultOf(t, submitAndWaitAsync(d, b, time.Hour)); err != nil {
			t.Errorf("SubmitAndWait(empty batch) = %v; want nil", err)
		}
	}
	checkCounts(t, d, counts{0, 0, 0})
	shutdown(t, d)
	if got := sink.stores.Load(); got != 0 {
		t.Errorf("Store called %d times for empty batches; want 0", got)
	}
}

// TestSubmitAndWaitAfterShutdown: once Shutdown has begun SubmitAndWait
// answers ErrClosed and queues nothing; the batch is the dispatcher's
// anyway, and a pooled one is back in the pool (issue 12: one way to hand
// a batch over, none to leak it).
func TestSubmitAndWaitAfterShutdown(t *testing.T) {
	// Not parallel: it looks at a batch once the pool has it back, when
	// another test may have taken it.
	closed := newDispatcher(t, 4, 1, &copySink{})
	shutdown(t, closed)
	b := AcquireBatch()
	if err := b.Decode(bodyOf(makeParcels("p", 3))); err != nil {
		t.Fatal(err)
	}
	if err := closed.SubmitAndWait(time.Now(), b, time.Hour); !errors.Is(err, ErrClosed) {
		t.Fatalf("SubmitAndWait() after Shutdown = %v; want ErrClosed", err)
	}
	checkCounts(t, closed, counts{0, 0, 0})
	if !b.released {
		t.Errorf("the refused batch was not released")
	}
}

// TestShutdownClosesDeferredSinkOnce: Close is called once, after the last
// Store returned, and with everything finished by Close Shutdown returns
// nil.
func TestShutdownClosesDeferredSinkOnce(t *testing.T) {
	t.Parallel()
	sink := &heldSink{capacity: 8} // Stores wait for room: some run until the end
	d := newDispatcher(t, 64, 4, sink)
	submitted := make(chan error, 1)
	go func() { submitted <- d.Submit(time.Now(), NewBatch(makeParcels("p", 50))) }()
	waitFor(t, "the sink full", func() bool { return sink.heldCount() == 8 })

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- d.Shutdown(ctx)
	}()
	// Finish tasks until the Stores have all run; Close finishes the rest.
	waitFor(t, "every Store to have returned", func() bool {
		sink.finish(3, nil, nil)
		return sink.stores.Load() == 50 && sink.running.Load() == 0
	})
	if err := <-submitted; err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	select {
	case err := <-shut:
		if err != nil {
			t.Fatalf("Shutdown() = %v; want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return")
	}

	if got := sink.closes.Load(); got != 1 {
		t.Errorf("Close called %d times; want 1", got)
	}
	if got := sink.runningAtClose.Load(); got != 0 {
		t.Errorf("%d Stores running when Close was called; want 0", got)
	}
	if got := sink.lateStores.Load(); got != 0 {
		t.Errorf("%d Stores called after Close; want 0", got)
	}
	if sink.storeCtxDone.Load() {
		t.Errorf("store context cancelled before Close on a shutdown in time; want it live")
	}
	checkCounts(t, d, counts{50, 50, 0})
}

// TestShutdownDeadlineWithDeferredSink: when the shutdown deadline passes
// while the sink holds tasks, Close is still called once, the held tasks
// end up failed, every accepted parcel is counted, and the error says how
// many were not completed.
func TestShutdownDeadlineWithDeferredSink(t *testing.T) {
	t.Parallel()
	t.Run("stores blocked", func(t *testing.T) {
		// The sink is full and never drains: Stores wait for room until
		// the store context is cancelled, the rest stays queued.
		sink := &heldSink{capacity: 3, closeWaits: true}
		d := newDispatcher(t, 16, 2, sink)
		if err := d.Submit(time.Now(), NewBatch(makeParcels("p", 10))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sink full and both workers waiting in Store", func() bool {
			return sink.heldCount() == 3 && sink.running.Load() == 2
		})
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the deadline has already passed
		err := d.Shutdown(ctx)
		if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "10 accepted parcels not completed") {
			t.Fatalf("Shutdown() = %v; want a context error saying 10 parcels were not completed", err)
		}
		if got := sink.closes.Load(); got != 1 {
			t.Errorf("Close called %d times; want 1", got)
		}
		if got := sink.runningAtClose.Load(); got != 0 {
			t.Errorf("%d Stores running when Close was called; want 0", got)
		}
		if !sink.storeCtxDone.Load() {
			t.Errorf("store context live when Close was called; want it cancelled first")
		}
		if got := sink.heldCount(); got != 0 {
			t.Errorf("sink still holds %d tasks after Shutdown; want 0", got)
		}
		checkCounts(t, d, counts{10, 0, 10})
	})

	t.Run("tasks held", func(t *testing.T) {
		// Every Store has returned; the sink holds 6 of 8 parcels, and
		// Close cannot store them before the deadline.
		sink := &heldSink{closeWaits: true}
		d := newDispatcher(t, 16, 2, sink)
		if err := d.Submit(time.Now(), NewBatch(makeParcels("p", 8))); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the sink to hold 8 parcels", func() bool { return sink.heldCount() == 8 })
		sink.finish(2, nil, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := d.Shutdown(ctx)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown() = %v; want an error wrapping context.DeadlineExceeded", err)
		}
		if got := sink.closes.Load(); got != 1 {
			t.Errorf("Close called %d times; want 1", got)
		}
		checkCounts(t, d, counts{8, 2, 6})
		if !strings.Contains(err.Error(), "6 accepted parcels not completed") {
			t.Errorf("Shutdown() = %q; want it to say 6 accepted parcels were not completed", err)
		}
	})
}

// TestSubmitAndWaitEmptyBatchesConcurrently submits empty and non-empty
// pooled batches from many goroutines, as concurrent requests with and
// without parcels do under ACK=persisted.
func TestSubmitAndWaitEmptyBatchesConcurrently(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, 64, 4, discardSink{})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for r := range 300 {
				body := []byte(`{"Data":[]}`)
				if (g+r)%2 == 0 {
					body = referencePayload()
				}
				b := AcquireBatch()
				if err := b.Decode(body); err != nil {
					t.Errorf("Decode() = %v", err)
					return
				}
				if err := d.SubmitAndWait(time.Now(), b, 5*time.Second); err != nil {
					t.Errorf("SubmitAndWait() = %v; want nil", err)
				}
			}
		})
	}
	wg.Wait()
	shutdown(t, d)
}

// TestShutdownTwiceClosesDeferredSinkOnce: Shutdown is safe to call more
// than once and from several goroutines; the sink is still closed once.
func TestShutdownTwiceClosesDeferredSinkOnce(t *testing.T) {
	t.Parallel()
	sink := &heldSink{}
	d := newDispatcher(t, 16, 2, sink)
	if err := d.Submit(time.Now(), NewBatch(makeParcels("p", 5))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to hold 5 parcels", func() bool { return sink.heldCount() == 5 })
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { shutdown(t, d) })
	}
	wg.Wait()
	shutdown(t, d)
	checkCounts(t, d, counts{5, 5, 0})
	if got := sink.closes.Load(); got != 1 {
		t.Errorf("Close called %d times by 4 Shutdowns; want 1", got)
	}
}

// TestSubmitPooledBatchesFinishedConcurrently submits pooled batches with
// Submit (ACK=enqueued) to several workers, so that the last tasks of a
// batch finish at the same time; the race detector watches the batch's
// release.
func TestSubmitPooledBatchesFinishedConcurrently(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, 64, 8, discardSink{})
	body := referencePayload()
	for range 2000 {
		b := AcquireBatch()
		if err := b.Decode(body); err != nil {
			t.Fatal(err)
		}
		if err := d.Submit(time.Now(), b); err != nil {
			t.Fatalf("Submit() = %v", err)
		}
	}
	shutdown(t, d)
	checkCounts(t, d, counts{2000 * 9, 2000 * 9, 0})
}

// TestShutdownSinkLeavesTasksUnfinished: a sink whose Close returns nil
// while it still holds tasks makes Shutdown fail, saying how many parcels
// were not completed.
func TestShutdownSinkLeavesTasksUnfinished(t *testing.T) {
	t.Parallel()
	sink := &heldSink{closeLeaves: true}
	d := newDispatcher(t, 16, 2, sink)
	if err := d.Submit(time.Now(), NewBatch(makeParcels("p", 4))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the sink to hold 4 parcels", func() bool { return sink.heldCount() == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.Shutdown(ctx)
	if err == nil || !strings.Contains(err.Error(), "4 accepted parcels not completed") {
		t.Fatalf("Shutdown() = %v; want an error saying 4 parcels were not completed", err)
	}
	if strings.Contains(err.Error(), "%!") {
		t.Errorf("Shutdown() = %q; want a well-formed message (a nil error was formatted with %%w)", err)
	}
	sink.finish(-1, nil, nil) // let the batch go
	checkCounts(t, d, counts{4, 4, 0})
}
