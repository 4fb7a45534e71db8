package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
)

// Worker stores tasks one at a time. At the top of its loop it offers its own
// task channel to the dispatcher's pool of ready workers, then blocks until
// the dispatcher sends it a task or it is told to quit.
type Worker struct {
	id    int
	tasks chan Task        // unbuffered: a send is a hand-off to this worker
	pool  chan<- chan Task // where the worker announces it is ready
	quit  chan struct{}    // closed by Stop
	stop  sync.Once        // guards close(quit)
	d     *Dispatcher      // sink, counters and logger
	done  func()           // called once when the loop exits
	trace bool             // log every task (LOG_LEVEL=debug)
}

func newWorker(id int, pool chan<- chan Task, d *Dispatcher, done func()) *Worker {
	return &Worker{
		id:    id,
		tasks: make(chan Task),
		pool:  pool,
		quit:  make(chan struct{}),
		d:     d,
		done:  done,
		trace: d.log.Enabled(context.Background(), slog.LevelDebug),
	}
}

// Start runs the worker's loop in its own goroutine.
func (w *Worker) Start() {
	go w.loop()
}

// Stop tells the worker to quit once it is idle. A task the worker is
// processing is finished first. Stop is safe to call more than once.
func (w *Worker) Stop() {
	w.stop.Do(func() { close(w.quit) })
}

func (w *Worker) loop() {
	defer w.done()
	for {
		// The pool has room for every worker and a worker offers itself
		// at most once per task, so this send never blocks.
		w.pool <- w.tasks
		select {
		case t := <-w.tasks:
			w.process(t)
		case <-w.quit:
			return
		}
	}
}

func (w *Worker) process(t Task) {
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
func (w *Worker) store(t Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("sink panicked: %v", r)
		}
	}()
	return w.d.sink.Store(w.d.storeCtx, t)
}
