package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
)

// worker stores tasks one at a time. At the top of its loop it offers its own
// task channel to the dispatcher's pool of ready workers, then blocks until
// the dispatcher sends it a task, or closes the channel to tell it to quit.
//
// The reference design gives each worker a separate quit channel and selects
// on it beside the task channel. On the request path that select is the
// single most expensive step of a task's hand-off: a select locks and queues
// on both channels where a receive touches one. BenchmarkHandoffFloor
// against BenchmarkHandoffFloorQuitSelect measures it, and the whole server
// without it used less CPU per request and served more requests per second
// (figures: benchmarks/RESULTS.md, "Figures the code cites"). So the task
// channel doubles as the quit channel: the dispatcher, its only sender,
// closes it after its last send, which is exactly when the reference would
// tell a worker to quit.
type worker struct {
	id    int
	tasks chan Task        // unbuffered: a send is a hand-off; closed: quit
	pool  chan<- chan Task // where the worker announces it is ready
	d     *Dispatcher      // sink, counters and logger
	done  func()           // called once when the loop exits
	trace bool             // log every task (LOG_LEVEL=debug)
}

func newWorker(id int, pool chan<- chan Task, d *Dispatcher, done func()) *worker {
	return &worker{
		id:    id,
		tasks: make(chan Task),
		pool:  pool,
		d:     d,
		done:  done,
		trace: d.log.Enabled(context.Background(), slog.LevelDebug),
	}
}

// start runs the worker's loop in its own goroutine.
func (w *worker) start() {
	go w.loop()
}

// quit tells the worker to quit once it is idle; a task it is processing is
// finished first. Only the dispatcher calls it, once, after its last send to
// the worker: a send after it would panic.
func (w *worker) quit() {
	close(w.tasks)
}

func (w *worker) loop() {
	defer w.done()
	for {
		// The pool has room for every worker and a worker offers itself
		// at most once per task, so this send never blocks.
		w.pool <- w.tasks
		t, ok := <-w.tasks
		if !ok {
			return
		}
		w.process(t)
	}
}

func (w *worker) process(t Task) {
	d := w.d
	if w.trace {
		d.log.Debug("Worker " + strconv.Itoa(w.id) + ": Received Task with Parcel " + t.Parcel.ID)
	}
	if t.Seq%sinkLatencySample == 0 {
		t.storeStart = monotonic()
	}
	err := w.store(t)
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
