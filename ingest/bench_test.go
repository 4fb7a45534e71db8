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

// BenchmarkDispatcherPerTask measures a task's whole trip: Submit into the
// global queue, the dispatcher's hand-off to a ready worker, the worker and
// a sink that does nothing. One op is a 9-parcel request; ns/task is the
// figure per parcel. Run it with -cpu 1 to match a server on one CPU.
func BenchmarkDispatcherPerTask(b *testing.B) {
	d, err := New(Config{MaxQueue: 10000, MaxWorkers: 100, Sink: discardSink{}})
	if err != nil {
		b.Fatal(err)
	}
	d.Start()
	body := referencePayload()
	now := time.Now()
	b.ReportAllocs()
	tasks := 0
	for b.Loop() {
		batch := AcquireBatch()
		if err := batch.Decode(body); err != nil {
			b.Fatal(err)
		}
		tasks += len(batch.Parcels)
		if err := d.Submit(now, batch); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := b.Elapsed()
	shutdown(b, d)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(tasks), "ns/task")
}
