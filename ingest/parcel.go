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
// for the parcel returns. A sink that keeps them longer must copy them.
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

	batch *Batch // released when its last task is done
}

// done marks the task finished; the worker calls it once Store returned.
func (t Task) done() {
	if t.batch != nil {
		t.batch.taskDone()
	}
}

// Sink is what a worker does with a task: store it somewhere. Store is called
// concurrently from every worker and must be safe for that. A non-nil error
// counts the parcel as failed; it is never retried by the worker. The task's
// parcel is valid only until Store returns (see Parcel).
//
// ctx is cancelled when a shutdown's deadline passes; a sink that can block
// for long should give up then and return an error.
type Sink interface {
	Store(ctx context.Context, t Task) error
}
