package ingest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runSink is a RunSink that records every run it is given and fails the
// parcels whose id starts with "bad", or panics on "panic" after failing
// the tasks before it.
type runSink struct {
	maxRun int
	gate   chan struct{} // when not nil, StoreRun waits for it to be closed
	given  atomic.Int32  // runs StoreRun was called with, counted before the gate

	mu     sync.Mutex
	runs   []int // the size of each run
	stored []string
}

func (s *runSink) Store(ctx context.Context, t Task) error {
	panic("runSink: Store called; the dispatcher must use StoreRun")
}

func (s *runSink) MaxRun() int { return s.maxRun }

func (s *runSink) StoreRun(_ context.Context, run []Task, errs []error) {
	s.given.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.runs = append(s.runs, len(run))
	for i, t := range run {
		switch {
		case strings.HasPrefix(t.Parcel.ID, "bad"):
			errs[i] = errors.New("bad parcel")
		case strings.HasPrefix(t.Parcel.ID, "panic"):
			panic("runSink: " + t.Parcel.ID)
		default:
			s.stored = append(s.stored, t.Parcel.ID)
		}
	}
}

// TestRunsCarryEveryTask: with a RunSink, queued tasks reach it in runs of
// at most MaxRun, each once, in order within a run, and the accounting is
// exact.
func TestRunsCarryEveryTask(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	sink := &runSink{maxRun: 8, gate: gate}
	d := newDispatcher(t, 100, 1, sink)
	// The one worker is held in its first run while 5 requests queue up:
	// the next runs must then take up to 8 queued tasks at once.
	var want []string
	for r := range 5 {
		ps := makeParcels("r"+string(rune('a'+r))+"-", 9)
		for _, p := range ps {
			want = append(want, p.ID)
		}
		if err := d.Submit(time.Now(), NewBatch(ps)); err != nil {
			t.Fatal(err)
		}
	}
	close(gate)
	shutdown(t, d)
	checkCounts(t, d, counts{45, 45, 0})
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if !slices.Equal(sink.stored, want) {
		t.Errorf("stored %v; want every parcel once, in queue order (one worker)", sink.stored)
	}
	for _, n := range sink.runs {
		if n < 1 || n > 8 {
			t.Errorf("a run of %d tasks; want 1 to MaxRun 8", n)
		}
	}
	if len(sink.runs) >= 45 {
		t.Errorf("%d runs for 45 queued tasks; want runs of several", len(sink.runs))
	}
}

// TestRunFailuresAndPanics: a task StoreRun fails is counted failed, the
// others of its run completed; a panic fails every task of the run not
// reported as failed already (which of them were stored is unknown, as
// with a panic in Store), and the worker carries on.
func TestRunFailuresAndPanics(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	sink := &runSink{maxRun: 16, gate: gate}
	d := newDispatcher(t, 100, 1, sink)
	if err := d.Submit(time.Now(), NewBatch([]Parcel{{ID: "ok0"}})); err != nil {
		t.Fatal(err) // holds the worker at the gate
	}
	// Taken by the worker, not only out of the queue: the dispatcher
	// could still add the next batch's tasks to the run it is forming.
	waitFor(t, "the first run at the gate", func() bool { return sink.given.Load() == 1 })
	// One run: ok1, bad1, ok2, panic1, ok3: bad1 fails, and the panic
	// fails the other four.
	if err := d.Submit(time.Now(), NewBatch([]Parcel{{ID: "ok1"}, {ID: "bad1"}, {ID: "ok2"}, {ID: "panic1"}, {ID: "ok3"}})); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitFor(t, "every task finished", func() bool { return d.Stats().InFlight() == 0 })
	checkCounts(t, d, counts{6, 1, 5})
	// The worker survived the panic.
	if err := d.Submit(time.Now(), NewBatch([]Parcel{{ID: "ok4"}})); err != nil {
		t.Fatal(err)
	}
	shutdown(t, d)
	checkCounts(t, d, counts{7, 2, 5})
}

// TestPlainSinkGetsOneTaskAtATime: a sink without StoreRun keeps the
// reference behaviour, one task per hand-off.
func TestPlainSinkGetsOneTaskAtATime(t *testing.T) {
	t.Parallel()
	d := newDispatcher(t, 100, 4, &recordingSink{})
	if d.maxRun != 1 {
		t.Errorf("maxRun = %d for a plain sink; want 1", d.maxRun)
	}
	for _, w := range allWorkers(d) {
		if cap(w.run) > 1 || w.runSink != nil {
			t.Errorf("worker %d: run buffer of %d, runSink %v; want at most 1 and nil", w.id, cap(w.run), w.runSink)
		}
	}
	shutdown(t, d)
}

// allWorkers lists the workers of every shard of d.
func allWorkers(d *Dispatcher) []*worker {
	var all []*worker
	for _, sh := range d.shards {
		all = append(all, sh.workers...)
	}
	return all
}
