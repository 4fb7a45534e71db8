// Package ingest turns decoded request bodies into tasks and runs them through
// the reference queue–dispatcher–worker design: one bounded global task queue,
// a dispatcher that hands each task to a ready worker, and a fixed pool of
// workers that store tasks in a Sink.
//
// The package owns no global mutable state: every Dispatcher is independent,
// so several can run in one process (and in one test).
package ingest

import (
	"context"
	"time"
)

// Parcel is one entry of a request's "Data" array, exactly as the client sent
// it. On the request path its strings point into its Batch's pooled copy of
// the body: they stay valid after the handler returns, until the Sink's Store
// for the parcel returns (for a DeferredSink that took the task, until its
// Finish). A sink that keeps them longer must copy them.
type Parcel struct {
	// ID is the client's identifier for the parcel; never empty.
	ID string `json:"id"`
	// Time is the client's RFC 3339 timestamp, kept verbatim (not re-encoded)
	// so that sinks store what was sent; Decode has checked that it parses.
	Time string `json:"time"`
	// Data is the opaque payload; it may be empty.
	Data string `json:"data"`
}

// Task is the unit of work that travels through the queue: one parcel and the
// moment its request was received, from which completion latency is measured.
type Task struct {
	Received time.Time
	// Parcel points at an element of the request's own parcel slice, so every
	// task of a request refers to a distinct parcel (see Dispatcher.Submit).
	Parcel *Parcel
	// Seq numbers the parcel among all the parcels the dispatcher accepted
	// since it started, from 1. Together with something naming the process
	// run it identifies an accepted parcel uniquely, which is what a sink
	// needs to let its store drop the duplicates of a retried write.
	Seq uint64

	batch      *Batch // released when its last task is finished
	storeStart int64  // monotonic() when Store was called, on sampled tasks; else 0
}

// Finish reports the outcome of a task that a DeferredSink took: nil once
// the parcel is stored, or the reason it never will be. Call it exactly once
// per task the sink took. The task's parcel must not be used after it.
func (t Task) Finish(err error) {
	t.batch.owner.finishTask(t, err)
}

// NewTask returns a task for p outside any dispatcher, whose Finish calls
// finish: for testing sinks on their own.
func NewTask(p *Parcel, received time.Time, seq uint64, finish func(error)) Task {
	b := &Batch{owner: finishFunc(finish), Parcels: []Parcel{*p}}
	b.pending.Store(1)
	return Task{Received: received, Parcel: &b.Parcels[0], Seq: seq, batch: b}
}

// finisher receives the outcome of each task of a batch.
type finisher interface {
	finishTask(t Task, err error)
}

type finishFunc func(error)

func (f finishFunc) finishTask(_ Task, err error) { f(err) }

// Sink is what a worker does with a task: store it somewhere. Store is called
// concurrently from every worker and must be safe for that. A non-nil error
// counts the parcel as failed; it is never retried by the worker. The task's
// parcel is valid only until Store returns (see Parcel; DeferredSink extends
// it until Finish).
//
// ctx is cancelled when a shutdown's deadline passes; a sink that can block
// for long should give up then and return an error.
type Sink interface {
	Store(ctx context.Context, t Task) error
}

// A DeferredSink is a Sink that finishes tasks later, after Store has
// returned: it can then write many parcels with one system call, share one
// fsync or wait for many acknowledgements at once, without holding a worker
// per parcel. The dispatcher calls Store as for any sink; when Store returns
// nil, the sink owns the task and must call its Finish exactly once, with
// nil when the parcel is stored or with the reason it never will be. The
// parcel stays valid until then. A non-nil error from Store means the sink
// did not take the task: the parcel counts as failed and Finish must not be
// called.
//
// Store may block while the sink has no room; that is how backpressure
// reaches the queue. Store must not panic once it has taken the task: the
// worker recovers a panic and counts the parcel as failed, which is right
// only if the sink does not hold the task too.
type DeferredSink interface {
	Sink
	// Close is called by Dispatcher.Shutdown once no Store is running or
	// will run again. It finishes every task the sink holds — stored, or
	// failed once ctx ends — and then releases the sink's resources.
	Close(ctx context.Context) error
}

// A RunSink is a Sink that stores a run of tasks in one call: one write and
// one lock for many parcels, where Store takes them one at a time. The
// dispatcher then hands a ready worker up to MaxRun tasks at once, what is
// queued, instead of one: the per-parcel hand-off (a queue receive, a send
// to a worker, a worker's wake-up) is paid once per run (issue 15).
//
// StoreRun stores the tasks of run, in order, as Store would each: errs has
// one element per task, nil on entry, and StoreRun sets errs[i] for a task
// it could not store (or, for a DeferredSink, did not take). The run and its
// tasks' parcels are valid as for Store; the run slice itself only until
// StoreRun returns. Like Store, StoreRun must not panic once it has taken a
// task: a panic fails every task whose errs element is still nil.
type RunSink interface {
	Sink
	// MaxRun is the most tasks the dispatcher hands over in one run; 1
	// means a task at a time, as for a plain Sink.
	MaxRun() int
	StoreRun(ctx context.Context, run []Task, errs []error)
}
