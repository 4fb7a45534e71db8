package ingest

import (
	"context"
	"runtime"
	"strconv"
	"sync"
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
// Submit into the queue, the dispatcher's hand-off to a ready
// worker, the worker and a sink that does nothing. One op is a 9-parcel
// request (its one allocation is the benchmark's unpooled batch); ns/task is
// the figure per parcel. Run it with -cpu 1 to match a server on one CPU.
func BenchmarkDispatcherPerTask(b *testing.B) { benchmarkDispatcher(b, discardSink{}) }

// BenchmarkDispatcherPerTaskRuns is BenchmarkDispatcherPerTask with a sink
// that takes runs of up to 64 tasks (a RunSink, as the null sink is): a
// worker gets what is queued in one hand-off.
func BenchmarkDispatcherPerTaskRuns(b *testing.B) { benchmarkDispatcher(b, discardRunSink{}) }

// discardRunSink is a RunSink that stores nothing.
type discardRunSink struct{ discardSink }

func (discardRunSink) MaxRun() int                               { return 64 }
func (discardRunSink) StoreRun(context.Context, []Task, []error) {}

func benchmarkDispatcher(b *testing.B, sink Sink) {
	// One shard whatever the host, as BenchmarkHandoffFloor's one queue.
	d, err := New(Config{MaxQueue: 10000, MaxWorkers: 100, Sink: sink, Shards: 1})
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
		for d.queued() > 0 { // as BenchmarkHandoffFloor does
			runtime.Gosched()
		}
	}
	elapsed := b.Elapsed()
	shutdown(b, d)
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(tasks), "ns/task")
}

// BenchmarkHandoffFloor is the least the reference structure, as fastingest
// keeps it, can cost per task, without any of fastingest's code: 9-task
// requests sent into a global queue, a dispatcher loop that hands each task
// to the most recently ready of 100 workers, and workers that offer their own
// channel on a pool channel and receive on it. Each task costs two goroutine
// switches and six channel operations. With -cpu 1 this is the floor under
// BenchmarkDispatcherPerTask; ns/task is the figure to compare.
func BenchmarkHandoffFloor(b *testing.B) { benchmarkHandoff(b, false) }

// BenchmarkHandoffFloorQuitSelect is the same with the reference's worker,
// which selects on its task channel and a separate quit channel: the cost
// that made fastingest's worker quit on its task channel being closed.
func BenchmarkHandoffFloorQuitSelect(b *testing.B) { benchmarkHandoff(b, true) }

func benchmarkHandoff(b *testing.B, quitSelect bool) {
	const workers, perRequest = 100, 9
	pool := make(chan chan Task, workers)
	quit := make(chan struct{})
	var exited sync.WaitGroup
	exited.Add(workers)
	for range workers {
		tasks := make(chan Task)
		go func() {
			defer exited.Done()
			for {
				pool <- tasks
				if quitSelect {
					select {
					case <-tasks:
					case <-quit:
						return
					}
				} else if _, ok := <-tasks; !ok {
					return
				}
			}
		}()
	}
	queue := make(chan Task, 10000)
	dispatched := make(chan []chan Task)
	go func() {
		ready := make([]chan Task, 0, workers)
		for t := range queue {
			for len(pool) > 0 || len(ready) == 0 {
				ready = append(ready, <-pool)
			}
			w := ready[len(ready)-1]
			ready = ready[:len(ready)-1]
			w <- t
		}
		dispatched <- ready
	}()
	p := &Parcel{ID: "1"}
	b.ReportAllocs()
	tasks := 0
	for b.Loop() {
		for range perRequest {
			queue <- Task{Parcel: p}
		}
		tasks += perRequest
		// Like a handler going back to wait for its next request: the
		// dispatcher and workers run, as they would on one CPU.
		for len(queue) > 0 {
			runtime.Gosched()
		}
	}
	elapsed := b.Elapsed()
	close(queue)
	ready := <-dispatched
	if quitSelect {
		close(quit)
	} else {
		// Every worker has offered itself, or is about to: close each
		// task channel once, whether its offer was taken or not.
		for _, w := range ready {
			close(w)
		}
		for range workers - len(ready) {
			close(<-pool)
		}
	}
	exited.Wait()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(tasks), "ns/task")
}

// BenchmarkDispatcherParallel measures how many requests one dispatcher can
// move when many handlers submit at once (issue 15, "Cores"): producers on
// every CPU (-cpu N) submit 9-parcel requests to one queue, one dispatcher
// hands runs to 100 workers, and a sink that takes runs does nothing. The
// figure per op is the dispatcher's cost per request when it is the
// bottleneck; 1e9 / ns/op is the most requests per second one dispatcher
// can feed, to divide by one core's request rate. shards=2 runs two
// dispatchers (SHARDS=2), for the contention they take off each other.
func BenchmarkDispatcherParallel(b *testing.B) {
	parcels, err := Decode(referencePayload())
	if err != nil {
		b.Fatal(err)
	}
	for _, shards := range []int{1, 2} {
		b.Run("shards="+strconv.Itoa(shards), func(b *testing.B) {
			d, err := New(Config{MaxQueue: 10000, MaxWorkers: 100, Sink: discardRunSink{}, Shards: shards})
			if err != nil {
				b.Fatal(err)
			}
			d.Start()
			now := time.Now()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := d.Submit(now, NewBatch(parcels)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			shutdown(b, d)
		})
	}
}
