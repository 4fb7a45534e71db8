package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
)

// worker stores runs of tasks. At the top of its loop it offers itself to
// the dispatcher's pool of ready workers, then blocks until the dispatcher
// sends it a run (one task, or up to the sink's MaxRun for a RunSink), or
// closes its channel to tell it to quit.
//
// The reference design gives each worker a separate quit channel and selects
// on it beside the task channel. On the request path that select is the
// single most expensive step of a task's hand-off: a select locks and queues
// on both channels where a receive touches one. BenchmarkHandoffFloor
// against BenchmarkHandoffFloorQuitSelect measures it, and the whole server
// without it used less CPU per request and served more requests per second
// (figures: benchmarks/RESULTS.md, "Figures the code cites"). So the run
// channel doubles as the quit channel: the dispatcher, its only sender,
// closes it after its last send, which is exactly when the reference would
// tell a worker to quit.
type worker struct {
	id    int
	runs  chan []Task    // unbuffered: a send is a hand-off; closed: quit
	pool  chan<- *worker // where the worker announces it is ready
	d     *Dispatcher    // sink, counters and logger
	done  func()         // called once when the loop exits
	trace bool           // log every task (LOG_LEVEL=debug)

	// run is the worker's buffer of tasks, filled by the dispatcher while
	// the worker is offered and handed over by the send on runs; errs is
	// StoreRun's result for it. Both grow on a worker's first runs, up to
	// the sink's MaxRun, and are kept: handing over a run then allocates
	// nothing, and the many workers that stay idle (the dispatcher favours
	// the most recently ready) hold nothing.
	run     []Task
	errs    []error
	runSink RunSink // the sink, when it stores runs; else nil
}

func newWorker(id int, pool chan<- *worker, d *Dispatcher, done func()) *worker {
	w := &worker{
		id:    id,
		runs:  make(chan []Task),
		pool:  pool,
		d:     d,
		done:  done,
		trace: d.log.Enabled(context.Background(), slog.LevelDebug),
	}
	w.runSink, _ = d.sink.(RunSink)
	return w
}

// start runs the worker's loop in its own goroutine.
func (w *worker) start() {
	go w.loop()
}

// quit tells the worker to quit once it is idle; a run it is processing is
// finished first. Only the dispatcher calls it, once, after its last send to
// the worker: a send after it would panic.
func (w *worker) quit() {
	close(w.runs)
}

func (w *worker) loop() {
	defer w.done()
	for {
		// The pool has room for every worker and a worker offers itself
		// at most once per run, so this send never blocks.
		w.pool <- w
		run, ok := <-w.runs
		if !ok {
			return
		}
		if w.runSink != nil {
			w.processRun(run)
		} else {
			for _, t := range run {
				w.process(t)
			}
		}
		clear(run) // no parcel kept alive by the buffer
	}
}

func (w *worker) process(t Task) {
	w.traceTask(t)
	if t.Seq%sinkLatencySample == 0 {
		t.storeStart = monotonic()
	}
	w.outcome(t, w.store(t))
}

// processRun stores a run with one StoreRun call.
func (w *worker) processRun(run []Task) {
	for i := range run {
		w.traceTask(run[i])
		if run[i].Seq%sinkLatencySample == 0 {
			run[i].storeStart = monotonic()
		}
	}
	if cap(w.errs) < len(run) {
		w.errs = make([]error, w.d.maxRun)
	}
	errs := w.errs[:len(run)]
	clear(errs)
	w.storeRun(run, errs)
	for i, t := range run {
		w.outcome(t, errs[i])
	}
}

func (w *worker) traceTask(t Task) {
	if w.trace {
		w.d.log.Debug("Worker " + strconv.Itoa(w.id) + ": Received Task with Parcel " + t.Parcel.ID)
	}
}

// outcome counts what became of a task the sink was given: finished here,
// or, for a deferred sink that took it, when the sink finishes it.
func (w *worker) outcome(t Task, err error) {
	d := w.d
	if d.deferred != nil {
		if err == nil {
			d.returned.Add(1)
			return // the sink took the task and finishes it
		}
		defer d.returned.Add(1) // after finishTask: never counted idle before it is done
	}
	d.finishTask(t, err)
}

// store calls the sink, turning a panic into an error so that one bad parcel
// or sink bug cannot take the process (and every queued parcel) down.
func (w *worker) store(t Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sink panicked: %v", r)
		}
	}()
	return w.d.sink.Store(w.d.storeCtx, t)
}

// storeRun is store for a run: a panic fails every task of the run that the
// sink did not report on.
func (w *worker) storeRun(run []Task, errs []error) {
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("sink panicked: %v", r)
			for i := range errs {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		}
	}()
	w.runSink.StoreRun(w.d.storeCtx, run, errs)
}
