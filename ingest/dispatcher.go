package ingest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/fastingest/fastingest/internal/promtext"
	"github.com/fastingest/fastingest/internal/ratelog"
)

// ErrClosed is returned by Submit once Shutdown has begun.
var ErrClosed = errors.New("ingest: shutting down, not accepting parcels")

// QueueFullError is returned by Submit when the queue had no room for the
// whole request within EnqueueTimeout, and by ReserveBody when the queue's
// requests held too many body bytes for that long (then Bytes is set).
// Nothing of the request was queued.
type QueueFullError struct {
	Parcels int
	Bytes   int
	Timeout time.Duration
}

func (e *QueueFullError) Error() string {
	if e.Bytes > 0 {
		return "the queue had no room for a body of " + strconv.Itoa(e.Bytes) + " bytes (MAX_QUEUE_BYTES) within " + e.Timeout.String()
	}
	return "the queue had no room for " + strconv.Itoa(e.Parcels) + " parcels within " + e.Timeout.String()
}

// TooLargeError is returned by Submit for a request with more parcels than
// the queue can ever hold, and by ReserveBody for a body larger than the
// queue's byte limit (then Bytes is set): waiting for room would be waiting
// forever.
type TooLargeError struct {
	Parcels  int
	MaxQueue int // the most parcels a request may have: a shard's share of MaxQueue
	Shards   int // how many shards share MaxQueue
	Bytes    int
	MaxBytes int64
}

func (e *TooLargeError) Error() string {
	if e.Bytes > 0 {
		return "a body of " + strconv.Itoa(e.Bytes) + " bytes is more than the queue can ever hold (" +
			strconv.FormatInt(e.MaxBytes, 10) + " bytes)"
	}
	return strconv.Itoa(e.Parcels) + " parcels is more than the queue can ever hold (" + strconv.Itoa(e.MaxQueue) + ")"
}

// Config sizes a Dispatcher.
type Config struct {
	// MaxQueue is the capacity of the task queue (MAX_QUEUE), shared out
	// among the shards.
	MaxQueue int
	// MaxQueueBytes bounds the body bytes held by requests from
	// ReserveBody until their batch is released (MAX_QUEUE_BYTES): the
	// copies of the bodies waiting for queue places, queued, or being
	// stored. 0 means no limit.
	MaxQueueBytes int64
	// MaxWorkers is the number of workers (MAX_WORKERS).
	MaxWorkers int
	// Shards splits the queue, its dispatcher and the workers into that
	// many shards (SHARDS), MaxQueue and MaxWorkers shared out evenly: a
	// request's tasks all go to one shard. 0 means DefaultShards.
	Shards int
	// Sink stores the tasks.
	Sink Sink
	// EnqueueTimeout is the longest a request waits for queue room,
	// ReserveBody's wait for body bytes and Submit's for places together
	// (ENQUEUE_TIMEOUT); 0 waits as long as it takes.
	EnqueueTimeout time.Duration
	// RecentWaitWindow is how long a queue wait keeps counting in
	// RecentQueueWait after it ended; 0 means 5 s, about two probes of a
	// load balancer's readiness check.
	RecentWaitWindow time.Duration
	// Metrics, when set, receives the dispatcher's metrics: queue wait
	// and sink latency histograms, and the parcel, queue and worker
	// figures of one Stats snapshot per scrape.
	Metrics *metrics.Set
	// Logger receives errors and, at debug level, a line per task. Nil
	// discards everything.
	Logger *slog.Logger
}

// Dispatcher owns the task queue and the worker pool, as Shards shards of
// them.
//
// Unlike the reference design, whose dispatcher starts a goroutine per task to
// wait for a free worker, this dispatcher waits for a ready worker itself.
// The queue therefore fills up when workers fall behind, Submit blocks
// (backpressure reaches the HTTP clients), and the number of pending tasks is
// bounded by MaxQueue + MaxWorkers instead of growing as a pile of goroutines.
type Dispatcher struct {
	shards   []*shard      // the queues, each with its dispatcher loop and workers; usually one
	next     atomic.Uint32 // the shard the next request tries first, modulo len(shards)
	queueCap int           // MaxQueue: the shards' capacities together
	shardCap int           // the smallest shard's capacity: the most parcels a request may have
	workerN  int           // MaxWorkers: the shards' workers together
	bodyRoom *room         // free body bytes (MaxQueueBytes); nil: no limit
	maxBytes int64         // MaxQueueBytes
	timeout  time.Duration // EnqueueTimeout
	maxRun   int           // most tasks handed to a worker at once: the sink's MaxRun, else 1
	sink     Sink
	deferred DeferredSink // sink, when it finishes tasks itself; else nil
	log      *slog.Logger
	trace    bool      // log every task (LOG_LEVEL=debug)
	timers   sync.Pool // *time.Timer for SubmitAndWait

	// gate lets Shutdown wait for every Submit in progress before it
	// closes the queue: Submit holds it shared, Shutdown exclusively.
	gate   sync.RWMutex
	closed bool // guarded by gate

	// refuse is closed by RefuseWaiting: requests waiting for room, and
	// any that would wait, give up with ErrClosed.
	refuse     chan struct{}
	refuseOnce sync.Once

	storeCtx    context.Context // cancelled when a shutdown deadline passes
	cancelStore context.CancelFunc

	startOnce    sync.Once
	closeOnce    sync.Once
	sinkClose    sync.Once     // closes the deferred sink
	sinkCloseErr error         // set by sinkClose
	done         chan struct{} // closed when every shard's loop and workers have exited

	queueWait   *promtext.Histogram // how long each request waited for room
	sinkLatency *promtext.Histogram // Store to finish, sampled
	waitMu      sync.Mutex
	recentWaits [waitBuckets]waitBucket // ring of the longest waits of the window's last slots
	waitSlot    int64                   // a slot's length in nanoseconds: RecentWaitWindow / waitBuckets

	accepted   atomic.Uint64
	completed  atomic.Uint64
	failed     atomic.Uint64
	dispatched atomic.Uint64 // tasks handed to a worker; minus completed and failed, the busy workers
	returned   atomic.Uint64 // with a deferred sink, Stores that returned: dispatched minus it is the busy workers
	sinkErrors *ratelog.Limiter
}

// New builds a Dispatcher; Start sets it running.
func New(cfg Config) (*Dispatcher, error) {
	if err := ValidateMaxQueue(cfg.MaxQueue); err != nil {
		return nil, fmt.Errorf("ingest: MaxQueue %d: %w", cfg.MaxQueue, err)
	}
	if err := ValidateMaxWorkers(cfg.MaxWorkers); err != nil {
		return nil, fmt.Errorf("ingest: MaxWorkers %d: %w", cfg.MaxWorkers, err)
	}
	if cfg.Sink == nil {
		return nil, errors.New("ingest: Sink is required")
	}
	if cfg.MaxQueueBytes < 0 || cfg.MaxQueueBytes > MaxQueueBytesLimit {
		return nil, fmt.Errorf("ingest: MaxQueueBytes %d: want 0 (no limit) or up to %d bytes", cfg.MaxQueueBytes, int64(MaxQueueBytesLimit))
	}
	if err := ValidateEnqueueTimeout(cfg.EnqueueTimeout); err != nil {
		return nil, fmt.Errorf("ingest: EnqueueTimeout %v: %w", cfg.EnqueueTimeout, err)
	}
	// Shards chosen for the host never outnumber the places or workers
	// they share out; shards asked for must fit.
	shards := min(DefaultShards(), MaxShards, cfg.MaxQueue, cfg.MaxWorkers)
	if cfg.Shards != 0 {
		shards = cfg.Shards
	}
	if err := cmp.Or(ValidateShards(shards), ShardsFit(shards, cfg.MaxQueue, cfg.MaxWorkers)); err != nil {
		return nil, fmt.Errorf("ingest: Shards %d: %w", shards, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		queueCap:   cfg.MaxQueue,
		workerN:    cfg.MaxWorkers,
		maxBytes:   cfg.MaxQueueBytes,
		timeout:    cfg.EnqueueTimeout,
		maxRun:     1,
		sink:       cfg.Sink,
		log:        log,
		done:       make(chan struct{}),
		refuse:     make(chan struct{}),
		waitSlot:   int64(cmp.Or(cfg.RecentWaitWindow, defaultRecentWaitWindow) / waitBuckets),
		sinkErrors: ratelog.New(10 * time.Second),
		trace:      log.Enabled(context.Background(), slog.LevelDebug),
	}
	if cfg.MaxQueueBytes > 0 {
		d.bodyRoom = newRoom64(cfg.MaxQueueBytes)
	}
	d.deferred, _ = cfg.Sink.(DeferredSink)
	if rs, ok := cfg.Sink.(RunSink); ok {
		d.maxRun = max(1, rs.MaxRun())
	}
	d.registerMetrics(cfg.Metrics)
	d.storeCtx, d.cancelStore = context.WithCancel(context.Background())
	// Shares as even as they come: the first shards take one more of
	// what does not divide. Worker ids run on across shards.
	firstID := 1
	for i := range shards {
		places := share(cfg.MaxQueue, shards, i)
		workers := share(cfg.MaxWorkers, shards, i)
		d.shards = append(d.shards, newShard(d, places, workers, firstID))
		firstID += workers
	}
	d.shardCap = cap(d.shards[len(d.shards)-1].queue) // the smallest share
	return d, nil
}

// share is shard i's part of total split among n shards.
func share(total, n, i int) int {
	part := total / n
	if i < total%n {
		part++
	}
	return part
}

// Start starts every shard's workers and dispatcher loop. Calling it
// again does nothing.
func (d *Dispatcher) Start() {
	d.startOnce.Do(func() {
		var running sync.WaitGroup
		for _, sh := range d.shards {
			running.Go(sh.start)
		}
		go func() {
			running.Wait()
			close(d.done)
		}()
	})
}

// ReserveBody reserves n bytes of MaxQueueBytes for the body that b is about
// to hold, before it is copied and decoded: a request waits for memory
// while it holds only the HTTP server's buffer, not a copy of its own. It
// waits like Submit, first come, first served, at most EnqueueTimeout, and
// returns a *QueueFullError (Bytes set) if the time runs out, or a
// *TooLargeError if n exceeds MaxQueueBytes. What is counted is the memory
// the copy holds: the pooled buffer it goes into when that is larger than
// the body (much larger ones are let go first). Decoding shrinks the
// reservation to that memory (for a compressed body, reserve the
// decompressed bound); releasing the batch gives it back, on every path.
// Without a byte limit it does nothing.
func (d *Dispatcher) ReserveBody(b *Batch, n int) error {
	if d.bodyRoom == nil || n <= 0 {
		return nil
	}
	if int64(n) > d.maxBytes {
		return &TooLargeError{Bytes: n, MaxBytes: d.maxBytes}
	}
	b.giveBackBody(0) // at most one reservation per batch
	// What the copy will hold: the body, or the pooled buffer it goes
	// into when that is larger (and kept: see fitPooled).
	b.fitPooled(n)
	need := min(max(int64(n), int64(cap(b.buf))), d.maxBytes)
	waited, err := d.wait(d.bodyRoom, need, d.timeout)
	if waited > 0 {
		d.noteWait(waited)
	}
	if err != nil {
		d.queueWait.Observe(waited) // a request that waited in vain; Submit observes the others
		if err == ErrClosed {
			return err
		}
		return &QueueFullError{Bytes: n, Timeout: d.timeout}
	}
	b.bodyRoom, b.bodyReserved, b.bodyWaited = d.bodyRoom, need, waited
	return nil
}

// Submit queues one task per parcel of b, all received at received. It
// blocks while the queue is full (backpressure) and returns once every task
// is queued. Otherwise it queues nothing and returns ErrClosed once Shutdown
// has begun (or RefuseWaiting was called while it had to wait), a
// *QueueFullError when no room came within what is left of EnqueueTimeout
// after b's wait in ReserveBody, or a *TooLargeError for more parcels than
// one shard's share of MaxQueue (all of it with one shard).
//
// The dispatcher owns b from the call on, whatever the outcome: it must not
// be used, modified or released again. It is released when its last task
// is done, or at once when nothing was queued. A caller has one way to hand
// a batch over, and none to leak it or release it twice.
func (d *Dispatcher) Submit(received time.Time, b *Batch) error {
	err := d.submit(received, b, false)
	if err != nil {
		ReleaseBatch(b)
	}
	return err
}

// SubmitAndWait queues b like Submit, then waits until every task of b is
// finished, for at most timeout: it is how a request learns that its
// parcels are stored (ACK=persisted). It returns nil when every parcel was
// stored, and a *NotStoredError when some parcel failed or the time ran
// out; the tasks then carry on, and b is released when they are done. Any
// other error (ErrClosed, *QueueFullError, *TooLargeError) means nothing
// was queued, as with Submit. b is the dispatcher's from the call on,
// whatever the outcome, as with Submit.
func (d *Dispatcher) SubmitAndWait(received time.Time, b *Batch, timeout time.Duration) error {
	n := len(b.Parcels)
	if err := d.submit(received, b, true); err != nil {
		ReleaseBatch(b)
		return err
	}
	if n == 0 {
		return nil
	}
	timer, _ := d.timers.Get().(*time.Timer)
	if timer == nil {
		timer = time.NewTimer(timeout)
	} else {
		timer.Reset(timeout)
	}
	finished, failed := b.wait(timer.C)
	timer.Stop() // since Go 1.23 a stopped timer's channel holds nothing stale
	d.timers.Put(timer)
	switch {
	case !finished:
		return &NotStoredError{Parcels: n, Timeout: timeout}
	case failed > 0:
		return &NotStoredError{Parcels: n, Failed: int(failed)}
	}
	return nil
}

// NotStoredError is SubmitAndWait's answer when the parcels of a request
// were accepted but not all are known to be stored.
type NotStoredError struct {
	Parcels int           // parcels in the request
	Failed  int           // parcels the sink failed to store, when known
	Timeout time.Duration // nonzero when the wait ran out first
}

func (e *NotStoredError) Error() string {
	if e.Timeout > 0 {
		return "parcels not confirmed stored within " + e.Timeout.String()
	}
	return strconv.Itoa(e.Failed) + " of " + strconv.Itoa(e.Parcels) + " parcels could not be stored"
}

// submit queues b's tasks; with wait, it registers the caller as a waiter
// that b.wait must then be called for.
func (d *Dispatcher) submit(received time.Time, b *Batch, wait bool) error {
	d.gate.RLock()
	defer d.gate.RUnlock()
	if d.closed {
		return ErrClosed
	}
	n := len(b.Parcels)
	if n == 0 {
		ReleaseBatch(b)
		return nil
	}
	if n > d.shardCap {
		return &TooLargeError{Parcels: n, MaxQueue: d.shardCap, Shards: len(d.shards)}
	}
	// Room for every task first, so that a request that gives up
	// waiting has queued nothing; the sends below then never block.
	sh, err := d.reserve(n, b.bodyWaited)
	if err != nil {
		return err
	}
	b.owner = d
	if wait {
		if b.finished == nil {
			b.finished = make(chan struct{}, 1)
		}
		b.pending.Store(int64(n) + waiterRef)
	} else {
		b.pending.Store(int64(n))
	}
	// Counted for the whole batch before the first send, so that
	// accepted ≥ completed + failed holds at every instant.
	seq := d.accepted.Add(uint64(n)) - uint64(n)
	for i := 0; i < n; i++ {
		seq++
		// &b.Parcels[i], not the address of a range variable: each task
		// refers to a distinct parcel.
		sh.queue <- Task{Received: received, Parcel: &b.Parcels[i], Seq: seq, batch: b}
	}
	return nil
}

// reserve takes room for n tasks in one shard's queue, and returns that
// shard, recording how long the request waited, bodyWaited for its body
// bytes included: it waits for places only what is left of EnqueueTimeout
// after that. Requests take the shards in turn; one that finds its turn's
// shard full takes the first other with room, and waits for its turn's
// shard only when every shard is full.
func (d *Dispatcher) reserve(n int, bodyWaited time.Duration) (*shard, error) {
	first := 0
	if len(d.shards) > 1 {
		first = int(d.next.Add(1) % uint32(len(d.shards)))
	}
	for i := range d.shards {
		sh := d.shards[(first+i)%len(d.shards)]
		if sh.room.tryReserve(int64(n)) {
			d.queueWait.Observe(bodyWaited)
			return sh, nil
		}
	}
	timeout := d.timeout
	if timeout > 0 {
		// At least a moment: a request whose body wait used up the
		// time still gets places that are free.
		timeout = max(timeout-bodyWaited, time.Millisecond)
	}
	sh := d.shards[first]
	waited, err := d.wait(sh.room, int64(n), timeout)
	d.queueWait.Observe(bodyWaited + waited)
	d.noteWait(bodyWaited + waited)
	if err == ErrClosed {
		return nil, err
	}
	if err != nil {
		return nil, &QueueFullError{Parcels: n, Timeout: d.timeout}
	}
	return sh, nil
}

// wait takes n units of r, waiting at most timeout (0: as long as it
// takes), and returns how long it waited: 0 when they were free at once.
// After RefuseWaiting it returns ErrClosed rather than wait.
func (d *Dispatcher) wait(r *room, n int64, timeout time.Duration) (time.Duration, error) {
	if r.tryReserve(n) {
		return 0, nil
	}
	start := time.Now()
	err := r.reserve(n, timeout, d.refuse)
	waited := time.Since(start)
	if err != nil {
		select {
		case <-d.refuse:
			return waited, ErrClosed
		default:
		}
	}
	return waited, err
}

// RefuseWaiting makes every request waiting for queue room or body bytes
// give up with ErrClosed, and every later one that would have to wait: the
// server calls it when its shutdown deadline passes with requests still
// waiting (ENQUEUE_TIMEOUT=0 waits without end), so that they are answered
// 503 with nothing queued instead of losing their connection when the
// process exits. Requests that find room at once still get in; Shutdown
// refuses those. Safe to call more than once.
func (d *Dispatcher) RefuseWaiting() {
	d.refuseOnce.Do(func() { close(d.refuse) })
}

// noteWait records a queue wait that just ended, in the bucket of the
// slot it ended in.
func (d *Dispatcher) noteWait(waited time.Duration) {
	slot := time.Now().UnixNano() / d.waitSlot
	d.waitMu.Lock()
	b := &d.recentWaits[slot%waitBuckets]
	if b.slot != slot {
		*b = waitBucket{slot: slot}
	}
	b.longest = max(b.longest, waited)
	d.waitMu.Unlock()
}

// waitBucket is the longest queue wait that ended in one slot of
// RecentWaitWindow / waitBuckets.
type waitBucket struct {
	slot    int64 // Unix nanoseconds / the slot's length
	longest time.Duration
}

// waitBuckets is how many slots RecentWaitWindow is cut into: a wait
// counts for the window after it ended, give or take a slot.
const waitBuckets = 5

// defaultRecentWaitWindow is RecentWaitWindow's default.
const defaultRecentWaitWindow = 5 * time.Second

// RecentQueueWait returns the longest time a request has waited for queue
// room recently: the wait of a request still waiting, or the longest that
// ended within RecentWaitWindow (5 s). Readiness checks compare it with a
// bound.
func (d *Dispatcher) RecentQueueWait() time.Duration {
	now := time.Now()
	var longest time.Duration
	for _, sh := range d.shards {
		longest = max(longest, sh.room.longestWait(now))
	}
	if d.bodyRoom != nil {
		longest = max(longest, d.bodyRoom.longestWait(now))
	}
	oldest := now.UnixNano()/d.waitSlot - waitBuckets
	d.waitMu.Lock()
	for _, b := range d.recentWaits {
		if b.slot >= oldest {
			longest = max(longest, b.longest)
		}
	}
	d.waitMu.Unlock()
	return longest
}

// finishTask counts the outcome of a task and lets its batch go.
func (d *Dispatcher) finishTask(t Task, err error) {
	if t.storeStart != 0 {
		d.sinkLatency.Observe(time.Duration(monotonic() - t.storeStart))
	}
	if err != nil {
		d.failed.Add(1)
		if t.batch != nil {
			t.batch.failed.Add(1)
		}
		if ok, suppressed := d.sinkErrors.Allow(); ok {
			d.log.Error("sink failed to store parcel; it is counted as failed",
				"parcel", t.Parcel.ID, "err", err, "suppressed_since_last", suppressed)
		}
	} else {
		d.completed.Add(1)
		if d.trace {
			d.log.Debug("Task: Completed for Parcel " + t.Parcel.ID + " (" + time.Since(t.Received).String() + ")")
		}
	}
	if t.batch != nil { // nil only for tasks a test built by hand
		t.batch.taskDone() // the parcel's memory may be reused from here on
	}
}

// Shutdown stops accepting parcels, lets every Submit in progress finish,
// waits until every queued task has been stored, then stops the workers. If
// ctx ends first it cancels the sinks' context and returns an error saying
// how many accepted parcels were not completed. It is safe to call more than
// once and from several goroutines.
func (d *Dispatcher) Shutdown(ctx context.Context) error {
	d.Start() // a dispatcher that never ran still has to drain its queue
	d.closeOnce.Do(func() {
		go func() {
			d.gate.Lock()
			d.closed = true
			d.gate.Unlock()
			for _, sh := range d.shards {
				close(sh.queue)
			}
		}()
	})
	if !d.waitDrained(ctx) {
		unfinished := d.Stats().InFlight() // counted before cancelling turns them into failures
		d.cancelStore()
		if d.deferred != nil {
			// A deferred sink's Store gives up once storeCtx is
			// cancelled, so the workers soon run out of tasks; then
			// the sink fails whatever it still holds, and every
			// accepted parcel is counted as completed or failed.
			<-d.done
			_ = d.closeSink(ctx)
		}
		return fmt.Errorf("ingest: %d accepted parcels not completed: %w", unfinished, ctx.Err())
	}
	if d.deferred == nil {
		return nil
	}
	// No Store runs any more: the sink finishes what it holds.
	before := d.Stats()
	err := d.closeSink(ctx)
	after := d.Stats()
	// Not completed: still in flight, or failed while closing.
	unfinished := after.InFlight() + after.Failed - before.Failed
	switch {
	case err != nil:
		return fmt.Errorf("ingest: %d accepted parcels not completed: closing the sink: %w", unfinished, err)
	case unfinished > 0:
		return fmt.Errorf("ingest: %d accepted parcels not completed: the sink closed without finishing them", unfinished)
	}
	return nil
}

// waitDrained waits until the queue is drained and the workers have quit,
// or ctx ends, and reports whether they did. A deadline that ends with
// nothing unfinished is no timeout: the drain was there already (select
// picks either ready case at random), or is moments away (the queue is
// closed from a goroutine, which may not have run yet), so it is given
// those moments, a second at most.
func (d *Dispatcher) waitDrained(ctx context.Context) bool {
	select {
	case <-d.done:
		return true
	case <-ctx.Done():
	}
	if d.Stats().InFlight() > 0 {
		select {
		case <-d.done:
			return true
		default:
			return false
		}
	}
	grace := time.NewTimer(time.Second)
	defer grace.Stop()
	select {
	case <-d.done:
		return true
	case <-grace.C:
		return false
	}
}

// closeSink closes the deferred sink once, however many Shutdowns run;
// every caller gets the first Close's error.
func (d *Dispatcher) closeSink(ctx context.Context) error {
	d.sinkClose.Do(func() { d.sinkCloseErr = d.deferred.Close(ctx) })
	return d.sinkCloseErr
}

// Stats is a snapshot of a Dispatcher's counters.
type Stats struct {
	Accepted    uint64 // parcels of submitted batches, queued or waiting to be, since start
	Completed   uint64 // parcels the sink stored
	Failed      uint64 // parcels the sink refused or panicked on
	Queued      int    // tasks waiting in the queues, all shards together
	QueueCap    int    // MaxQueue
	BusyWorkers int    // workers given a task they have not finished
	Workers     int    // MaxWorkers
	Shards      int    // queues, each with its dispatcher and workers
}

// busyWorkers counts the workers given a task that are still on it: until
// the task is finished, or, with a deferred sink, until its Store returned
// (the sink then holds the task, not the worker).
func (d *Dispatcher) busyWorkers(completed, failed uint64) int {
	var busy int64
	if d.deferred != nil {
		returned := d.returned.Load()
		busy = int64(d.dispatched.Load() - returned)
	} else {
		busy = int64(d.dispatched.Load() - completed - failed)
	}
	// The counters are read one after the other while tasks move: tasks
	// handed over after completed was read make the difference overshoot.
	// No more workers than exist can be busy.
	return int(min(max(busy, 0), int64(d.workerN)))
}

// InFlight is the number of accepted parcels not yet completed or failed.
func (s Stats) InFlight() uint64 { return s.Accepted - s.Completed - s.Failed }

// Stats returns the current counters. Completed and failed are read before
// accepted, so Accepted ≥ Completed + Failed holds in every snapshot.
func (d *Dispatcher) Stats() Stats {
	completed := d.completed.Load()
	failed := d.failed.Load()
	return Stats{
		Completed:   completed,
		Failed:      failed,
		Accepted:    d.accepted.Load(),
		Queued:      d.queued(),
		QueueCap:    d.queueCap,
		BusyWorkers: d.busyWorkers(completed, failed),
		Workers:     d.workerN,
		Shards:      len(d.shards),
	}
}

// queued counts the tasks waiting in every shard's queue.
func (d *Dispatcher) queued() int {
	n := 0
	for _, sh := range d.shards {
		n += len(sh.queue)
	}
	return n
}
