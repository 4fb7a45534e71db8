package ingest

import (
	"context"
	"testing"
	"time"
)

// BenchmarkDecode measures the request path's decoder on the reference
// 9-parcel payload: a pooled batch, the body copied into it and parsed in
// place.
func BenchmarkDecode(b *testing.B) {
	body := referencePayload()
	batch := AcquireBatch()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := batch.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeGoJSON is the general path alone: go-json into a new
// parcel slice, as every body took before the in-place fast path.
func BenchmarkDecodeGoJSON(b *testing.B) {
	body := referencePayload()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeSlow(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeStd is the twin with encoding/json and the same
// validation: what the reference design pays.
func BenchmarkDecodeStd(b *testing.B) {
	body := referencePayload()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := referenceDecode(body); err != nil {
			b.Fatal(err)
		}
	}
}

type discardSink struct{}

func (discardSink) Store(context.Context, Task) error { return nil }

// BenchmarkDispatcherPerTask measures a task's whole trip after decoding:
// Submit into the global queue, the dispatcher's hand-off to a ready
// worker, the worker and a sink that does nothing. One op is a 9-parcel
// request (its one allocation is the benchmark's unpooled batch); ns/task is
// the figure per parcel. Run it with -cpu 1 to match a server on one CPU.
func BenchmarkDispatcherPerTask(b *testing.B) {
	d, err := New(Config{MaxQueue: 10000, MaxWorkers: 100, Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	d.Start()
	parcels, err := Decode(referencePayload())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	tasks := 0
	for b.Loop() {
		// A batch that is not pooled, over parcels decoded once: the
		// figure is the hand-off alone. The parcels are only read.
		tasks += len(parcels)
		if err := d.Submit(now, NewBatch(parcels)); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := b.Elapsed()
	shutdown(b, d)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(tasks), "ns/task")
}

// BenchmarkHandoffFloor is the least the reference structure can cost per
// task, without any of fastingest's code: one worker that offers its own
// channel on a pool channel and selects on it and a quit channel, fed by a
// loop that takes the offer and sends a task. Each task costs two goroutine
// switches and five channel operations; the global queue would add two more.
// With -cpu 1 this is the floor under BenchmarkDispatcherPerTask.
func BenchmarkHandoffFloor(b *testing.B) {
	pool := make(chan chan Task, 1)
	tasks := make(chan Task)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			pool <- tasks
			select {
			case <-tasks:
			case <-quit:
				return
			}
		}
	}()
	p := &Parcel{ID: "1"}
	b.ReportAllocs()
	for b.Loop() {
		ready := <-pool
		ready <- Task{Parcel: p}
	}
	close(quit)
	<-done
}
