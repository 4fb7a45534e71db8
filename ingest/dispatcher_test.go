package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recordingSink remembers every parcel it stores.
type recordingSink struct {
	mu      sync.Mutex
	parcels []*Parcel
}

func (s *recordingSink) Store(_ context.Context, t Task) error {
	s.mu.Lock()
	s.parcels = append(s.parcels, t.Parcel)
	s.mu.Unlock()
	return nil
}

func (s *recordingSink) stored() []*Parcel {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Parcel(nil), s.parcels...)
}

// gatedSink blocks every Store until release is closed (or the store
// context ends), and tracks how many stores run at once.
type gatedSink struct {
	release chan struct{}
	running atomic.Int64
	maxRun  atomic.Int64
	stored  atomic.Int64
}

func newGatedSink() *gatedSink { return &gatedSink{release: make(chan struct{})} }

func (s *gatedSink) Store(ctx context.Context, _ Task) error {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		m := s.maxRun.Load()
		if n <= m || s.maxRun.CompareAndSwap(m, n) {
			break
		}
	}
	select {
	case <-s.release:
		s.stored.Add(1)
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func newDispatcher(t *testing.T, queue, workers int, sink Sink) *Dispatcher {
	t.Helper()
	d, err := New(Config{MaxQueue: queue, MaxWorkers: workers, Sink: sink, Shards: 1})
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	d.Start()
	return d
}

func shutdown(t testing.TB, d *Dispatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() error = %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline. It never asserts on how long that took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func makeParcels(prefix string, n int) []Parcel {
	ps := make([]Parcel, n)
	for i := range ps {
		ps[i] = Parcel{ID: fmt.Sprintf("%s%d", prefix, i), Time: "2017-01-01T00:00:01Z", Data: fmt.Sprintf("data-%s%d", prefix, i)}
	}
	return ps
}

func TestNewRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []Config{
		{MaxQueue: 0, MaxWorkers: 1, Sink: &recordingSink{}},
		{MaxQueue: 1, MaxWorkers: 0, Sink: &recordingSink{}},
		{MaxQueue: 1, MaxWorkers: -1, Sink: &recordingSink{}},
		{MaxQueue: 1, MaxWorkers: 1},
		{MaxQueue: 1, MaxWorkers: 1, Sink: &recordingSink{}, Shards: -1},
		{MaxQueue: 1, MaxWorkers: 2, Sink: &recordingSink{}, Shards: 2},
		{MaxQueue: 2, MaxWorkers: 1, Sink: &recordingSink{}, Shards: 2},
		{MaxQueue: 1000, MaxWorkers: 1000, Sink: &recordingSink{}, Shards: MaxShards + 1},
	}
	for _, cfg := range tests {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error; want an error", cfg)
		}
	}
}

// TestNineParcelsReachSinkDistinct is the reference payload's path: 9
// parcels reach the sink as 9 distinct parcels with their own fields.
func TestNineParcelsReachSinkDistinct(t *testing.T) {
	t.Parallel()
	sink := &recordingSink{}
	d := newDispatcher(t, 16, 4, sink)
	parcels, err := Decode(referencePayload())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Submit(time.Now(), NewBatch(parcels)); err != nil {
		t.Fatalf("Submit() = %v", err)
	}
	shutdown(t, d)

	got := sink.stored()
	if len(got) != 9 {
		t.Fatalf("sink stored %d parcels; want 9", len(got))
	}
	byID := map[string]*Parcel{}
	for _, p := range got {
		if byID[p.ID] != nil {
			t.Fatalf("parcel %q stored twice", p.ID)
		}
		byID[p.ID] = p
	}
	for i := 1; i <= 9; i++ {
		id := fmt.Sprint(i)
		p := byID[id]
		if p == nil {
			t.Fatalf("parcel %q never stored; stored %v", id, byID)
		}
		want := Parcel{ID: id, Time: fmt.Sprintf("2017-01-01T00:00:0%dZ", i), Data: "abc" + id}
		if *p != want {
			t.Errorf("stored %+v; want %+v", *p, want)
		}
	}
}

func TestEachTaskDeliveredExactlyOnce(t *testing.T) {
	t.Parallel()
	sink := &recordingSink{}
	d := newDispatcher(t, 8, 5, sink)
	const submitters, perRequest, requests = 4, 7, 50
	var wg sync.WaitGroup
	for s := 0; s < submitters; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < requests; r++ {
				if err := d.Submit(time.Now(), NewBatch(makeParcels(fmt.Sprintf("s%d-r%d-", s, r), perRequest))); err != nil {
					t.Errorf("Submit() = %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	shutdown(t, d)

	const want = submitters * perRequest * requests
	seen := map[string]int{}
	for _, p := range sink.stored() {
		seen[p.ID]++
		if p.Data != "data-"+p.ID {
			t.Fatalf("parcel %q carries data %q; want %q", p.ID, p.Data, "data-"+p.ID)
		}
	}
	if len(seen) != want {
		t.Errorf("sink stored %d distinct parcels; want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("parcel %q stored %d times; want once", id, n)
		}
	}
	st := d.Stats()
	if st.Accepted != want || st.Completed != want || st.Failed != 0 || st.InFlight() != 0 {
		t.Errorf("Stats() = %+v; want accepted = completed = %d", st, want)
	}
}

// TestBackpressureBoundsPendingWork holds every worker busy and submits
// more parcels than MaxQueue + MaxWorkers. Submitters must wait, the queue
// must not exceed its capacity, no goroutine per task may appear (as the
// reference dispatcher would start), and everything completes once the
// workers resume.
func TestBackpressureBoundsPendingWork(t *testing.T) {
	const maxQueue, maxWorkers = 4, 2
	const requests, perRequest = 6, 3 // 18 parcels > 4 + 2
	base := runtime.NumGoroutine()
	sink := newGatedSink()
	d := newDispatcher(t, maxQueue, maxWorkers, sink)

	var returned atomic.Int64
	var wg sync.WaitGroup
	for r := 0; r < requests; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Submit(time.Now(), NewBatch(makeParcels(fmt.Sprintf("r%d-", r), perRequest))); err != nil {
				t.Errorf("Submit() = %v", err)
			}
			returned.Add(1)
		}()
	}
	waitFor(t, "every worker busy and the queue full", func() bool {
		st := d.Stats()
		return st.BusyWorkers == maxWorkers && st.Queued == maxQueue
	})
	// Pending work is bounded: at most maxWorkers parcels in the sink and
	// maxQueue in the queue; the rest wait in their submitters. Check a
	// few times while the workers stay blocked.
	for i := 0; i < 20; i++ {
		st := d.Stats()
		if st.Queued > maxQueue {
			t.Fatalf("queued %d tasks; want at most MaxQueue = %d", st.Queued, maxQueue)
		}
		if got := sink.running.Load(); got > maxWorkers {
			t.Fatalf("%d stores running; want at most MaxWorkers = %d", got, maxWorkers)
		}
		if pending := st.Queued + st.BusyWorkers; pending > maxQueue+maxWorkers {
			t.Fatalf("%d tasks pending; want at most %d", pending, maxQueue+maxWorkers)
		}
		// Goroutines: the test's submitters, the workers and the
		// dispatcher loop, nothing per task.
		if g, limit := runtime.NumGoroutine(), base+requests+maxWorkers+1; g > limit {
			t.Fatalf("%d goroutines; want at most %d (no goroutine per task)", g, limit)
		}
		if n := returned.Load(); n == requests {
			t.Fatalf("all %d submitters returned while the queue was full; want some waiting", n)
		}
		time.Sleep(time.Millisecond)
	}

	close(sink.release)
	wg.Wait()
	shutdown(t, d)
	if got := sink.stored.Load(); got != requests*perRequest {
		t.Errorf("sink stored %d parcels; want %d", got, requests*perRequest)
	}
	if got := sink.maxRun.Load(); got > maxWorkers {
		t.Errorf("up to %d stores ran at once; want at most %d", got, maxWorkers)
	}
	if st := d.Stats(); st.Completed != requests*perRequest || st.InFlight() != 0 {
		t.Errorf("Stats() = %+v; want %d completed, none in flight", st, requests*perRequest)
	}
}

func TestShutdownDrainsQueueBeforeStoppingWorkers(t *testing.T) {
	t.Parallel()
	sink := newGatedSink()
	d := newDispatcher(t, 100, 3, sink)
	if err := d.Submit(time.Now(), NewBatch(makeParcels("p", 60))); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- d.Shutdown(ctx)
	}()
	// Submits racing the shutdown are either queued whole or refused.
	late := 0
	waitFor(t, "Shutdown to close the gate", func() bool {
		err := d.Submit(time.Now(), NewBatch(makeParcels("late", 1)))
		if err == nil {
			late++
		}
		return errors.Is(err, ErrClosed)
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v while 60 tasks were still queued", err)
	default:
	}
	close(sink.release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	want := int64(60 + late)
	if got := sink.stored.Load(); got != want {
		t.Errorf("sink stored %d parcels before the workers quit; want %d", got, want)
	}
	if st := d.Stats(); st.Accepted != uint64(want) || st.Completed != uint64(want) {
		t.Errorf("Stats() = %+v; want %d accepted and completed", st, want)
	}
	// Shutdown again, from another goroutine too: both return at once.
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); shutdown(t, d) }()
	}
	wg.Wait()
}

func TestShutdownWaitsForSubmitInProgress(t *testing.T) {
	t.Parallel()
	sink := newGatedSink()
	d := newDispatcher(t, 2, 1, sink)
	// The first request fills the worker and the queue's first place;
	// the second needs two places and waits for them.
	if err := d.Submit(time.Now(), NewBatch(makeParcels("a", 2))); err != nil {
		t.Fatal(err)
	}
	submitted := make(chan error, 1)
	go func() { submitted <- d.Submit(time.Now(), NewBatch(makeParcels("p", 2))) }()
	waitFor(t, "the submitter to wait for queue room", func() bool {
		st := d.Stats()
		return st.BusyWorkers == 1 && st.Queued == 1 && d.RecentQueueWait() > 0
	})
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- d.Shutdown(ctx)
	}()
	close(sink.release)
	if err := <-submitted; err != nil {
		t.Fatalf("Submit() in progress at shutdown = %v; want nil (it was admitted before)", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	if got := sink.stored.Load(); got != 4 {
		t.Errorf("stored %d parcels; want all 4 of the two admitted requests", got)
	}
}

func TestShutdownDeadlineCountsUnfinished(t *testing.T) {
	t.Parallel()
	sink := newGatedSink() // never released: stores end only when cancelled
	d := newDispatcher(t, 10, 2, sink)
	if err := d.Submit(time.Now(), NewBatch(makeParcels("p", 7))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both workers busy", func() bool { return d.Stats().BusyWorkers == 2 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has already passed
	err := d.Shutdown(ctx)
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "7 accepted parcels not completed") {
		t.Fatalf("Shutdown() = %v; want a context error saying 7 parcels were not completed", err)
	}
	// The store context is now cancelled, so the blocked stores fail and
	// the rest drain as failures: every parcel ends up counted.
	waitFor(t, "every parcel accounted for", func() bool {
		st := d.Stats()
		return st.Completed+st.Failed == 7
	})
	if st := d.Stats(); st.Failed != 7 || st.Accepted != 7 {
		t.Errorf("Stats() = %+v; want 7 accepted, 7 failed", st)
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	t.Parallel()
	d, err := New(Config{MaxQueue: 4, MaxWorkers: 1, Sink: &recordingSink{}})
	if err != nil {
		t.Fatal(err)
	}
	shutdown(t, d)
	if err := d.Submit(time.Now(), NewBatch(makeParcels("p", 1))); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit() after Shutdown = %v; want ErrClosed", err)
	}
}

// panicSink panics on parcels whose id starts with "bad".
type panicSink struct{ recordingSink }

func (s *panicSink) Store(ctx context.Context, t Task) error {
	if strings.HasPrefix(t.Parcel.ID, "bad") {
		panic("sink bug")
	}
	return s.recordingSink.Store(ctx, t)
}

func TestSinkPanicCountsAsFailedAndWorkerSurvives(t *testing.T) {
	t.Parallel()
	sink := &panicSink{}
	d := newDispatcher(t, 4, 1, sink)
	if err := d.Submit(time.Now(), NewBatch([]Parcel{{ID: "bad1"}, {ID: "ok1"}, {ID: "bad2"}, {ID: "ok2"}})); err != nil {
		t.Fatal(err)
	}
	shutdown(t, d)
	if st := d.Stats(); st.Completed != 2 || st.Failed != 2 || st.InFlight() != 0 {
		t.Errorf("Stats() = %+v; want 2 completed, 2 failed", st)
	}
}

// startLoneWorker starts a worker outside any dispatcher loop, offering
// itself on the returned pool; exited is closed when it quits.
func startLoneWorker(t *testing.T, sink Sink) (w *worker, pool chan *worker, exited chan struct{}) {
	t.Helper()
	d, err := New(Config{MaxQueue: 1, MaxWorkers: 1, Sink: sink})
	if err != nil {
		t.Fatal(err)
	}
	pool = make(chan *worker, 1)
	exited = make(chan struct{})
	w = newWorker(1, pool, d, func() { close(exited) })
	w.start()
	return w, pool, exited
}

func waitExited(t *testing.T, exited <-chan struct{}) {
	t.Helper()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("worker did not quit after its task channel was closed")
	}
}

func TestWorkerQuitWhileIdle(t *testing.T) {
	t.Parallel()
	w, pool, exited := startLoneWorker(t, &recordingSink{})
	<-pool // offered, and waiting for a task
	w.quit()
	waitExited(t, exited)
}

func TestWorkerQuitWhileBusyFinishesTheTask(t *testing.T) {
	t.Parallel()
	sink := newGatedSink()
	w, pool, exited := startLoneWorker(t, sink)
	(<-pool).runs <- []Task{{Parcel: &Parcel{ID: "1"}}}
	waitFor(t, "the worker storing its task", func() bool { return sink.running.Load() == 1 })
	w.quit()
	select {
	case <-exited:
		t.Fatal("worker quit before finishing its task")
	case <-time.After(20 * time.Millisecond):
	}
	close(sink.release)
	waitExited(t, exited)
	if got := w.d.Stats().Completed; got != 1 {
		t.Errorf("completed = %d; want 1", got)
	}
}

// TestAccountingHoldsAtEveryRead reads the counters while tasks flow and
// checks accepted = completed + failed + in flight, with none negative.
func TestAccountingHoldsAtEveryRead(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, 8, 3, &panicSink{})
	stop := make(chan struct{})
	var readerErr atomic.Value
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			st := d.Stats()
			if st.Completed+st.Failed > st.Accepted {
				readerErr.Store(fmt.Sprintf("snapshot %+v: completed + failed > accepted", st))
				return
			}
		}
	}()
	for r := 0; r < 200; r++ {
		ps := makeParcels("ok", 3)
		ps[1].ID = "bad"
		if err := d.Submit(time.Now(), NewBatch(ps)); err != nil {
			t.Fatal(err)
		}
	}
	shutdown(t, d)
	close(stop)
	wg.Wait()
	if msg := readerErr.Load(); msg != nil {
		t.Fatal(msg)
	}
	if st := d.Stats(); st.Accepted != 600 || st.Completed != 400 || st.Failed != 200 {
		t.Errorf("Stats() = %+v; want 600 accepted, 400 completed, 200 failed", st)
	}
}

// TestShutdownDoneAsTheDeadlinePasses: a dispatcher that has drained is
// not reported as timed out because the deadline passed too; select
// chooses among ready cases at random, so it is asked many times.
func TestShutdownDoneAsTheDeadlinePasses(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, 10, 2, &recordingSink{})
	if err := d.Submit(time.Now(), NewBatch([]Parcel{{ID: "1"}, {ID: "2"}})); err != nil {
		t.Fatal(err)
	}
	shutdown(t, d)
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 64 {
		if err := d.Shutdown(expired); err != nil {
			t.Fatalf("Shutdown %d with an expired context after the drain: %v; want nil", i+2, err)
		}
	}
}

// TestShutdownIdleWithExpiredDeadline: an idle dispatcher shut down with a
// deadline already passed (the HTTP server's shutdown may use it all up)
// has nothing unfinished, and says so, rather than report a timeout.
func TestShutdownIdleWithExpiredDeadline(t *testing.T) {
	t.Parallel()
	for _, sink := range []Sink{&recordingSink{}, &heldSink{}} {
		d := newDispatcher(t, 10, 2, sink)
		expired, cancel := context.WithCancel(context.Background())
		cancel()
		if err := d.Shutdown(expired); err != nil {
			t.Errorf("Shutdown(expired) of an idle dispatcher (%T): %v; want nil", sink, err)
		}
	}
}
