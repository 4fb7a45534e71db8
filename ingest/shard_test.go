package ingest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestShardsShareQueueAndWorkers: MaxQueue and MaxWorkers are shared out
// as evenly as they divide, worker ids run on across shards, and Stats
// adds the shards up.
func TestShardsShareQueueAndWorkers(t *testing.T) {
	t.Parallel()
	d, err := New(Config{MaxQueue: 10, MaxWorkers: 5, Sink: &recordingSink{}, Shards: 3})
	if err != nil {
		t.Fatal(err)
	}
	var places, workers []int
	ids := map[int]bool{}
	for _, sh := range d.shards {
		places = append(places, cap(sh.queue))
		workers = append(workers, len(sh.workers))
		for _, w := range sh.workers {
			ids[w.id] = true
		}
	}
	if fmt.Sprint(places) != "[4 3 3]" || fmt.Sprint(workers) != "[2 2 1]" {
		t.Errorf("shards of %v places and %v workers; want [4 3 3] and [2 2 1]", places, workers)
	}
	for id := 1; id <= 5; id++ {
		if !ids[id] {
			t.Errorf("no worker %d among %v; want ids 1 to 5", id, ids)
		}
	}
	st := d.Stats()
	if st.QueueCap != 10 || st.Workers != 5 || st.Shards != 3 {
		t.Errorf("Stats() = %+v; want QueueCap 10, Workers 5, Shards 3", st)
	}
	// The smallest shard bounds a request: its tasks all go to one.
	var tooLarge *TooLargeError
	if err := d.Submit(time.Now(), NewBatch(makeParcels("big", 4))); !errors.As(err, &tooLarge) || tooLarge.MaxQueue != 3 {
		t.Errorf("Submit(4 parcels) = %v; want a TooLargeError naming 3", err)
	}
	d.Start()
	shutdown(t, d)
}

// TestShardsDeliverEveryTaskOnce: with several shards, concurrent requests
// reach the sink exactly once each, the accounting adds up, and every
// shard's places are given back.
func TestShardsDeliverEveryTaskOnce(t *testing.T) {
	t.Parallel()
	sink := &recordingSink{}
	d, err := New(Config{MaxQueue: 64, MaxWorkers: 8, Sink: sink, Shards: 4})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	const submitters, requests, perRequest = 8, 50, 9
	var wg sync.WaitGroup
	for g := range submitters {
		wg.Go(func() {
			for r := range requests {
				if err := d.Submit(time.Now(), NewBatch(makeParcels(fmt.Sprintf("g%d-r%d-", g, r), perRequest))); err != nil {
					t.Errorf("Submit() = %v", err)
				}
			}
		})
	}
	wg.Wait()
	shutdown(t, d)
	seen := map[string]int{}
	for _, p := range sink.stored() {
		seen[p.ID]++
	}
	if want := submitters * requests * perRequest; len(seen) != want {
		t.Errorf("%d distinct parcels stored; want %d", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("parcel %s stored %d times; want once", id, n)
		}
	}
	checkCounts(t, d, counts{submitters * requests * perRequest, submitters * requests * perRequest, 0})
	for i, sh := range d.shards {
		if sh.room.free.Load() != int64(cap(sh.queue)) {
			t.Errorf("shard %d: %d of %d places free after the drain; want all", i, sh.room.free.Load(), cap(sh.queue))
		}
	}
}

// TestShardsBackpressure: a request whose turn's shard is full goes to
// another with room; with every shard full it waits, and gives up after
// EnqueueTimeout with nothing queued; once the sink resumes everything
// queued is stored.
func TestShardsBackpressure(t *testing.T) {
	t.Parallel()
	sink := newGatedSink()
	d, err := New(Config{MaxQueue: 4, MaxWorkers: 2, Sink: sink, Shards: 2, EnqueueTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() {
		select {
		case <-sink.release:
		default:
			close(sink.release)
		}
	})
	// Each shard: one task with its worker, two queued (two places). The
	// first two, one per shard, are waited for until their workers run
	// them: a task is queued before its shard's dispatcher takes it, and
	// its place is free again only once taken, so that a busy machine
	// could otherwise find both shards full before the sixth.
	for i := range 6 {
		if err := d.Submit(time.Now(), NewBatch(makeParcels(fmt.Sprintf("fill%d-", i), 1))); err != nil {
			t.Fatalf("Submit() %d = %v; want room in some shard", i, err)
		}
		waitFor(t, "the task run or queued", func() bool {
			running := int(sink.running.Load())
			return running == min(i+1, 2) && d.Stats().Queued == i+1-running
		})
	}
	if st := d.Stats(); st.Queued != 4 || sink.running.Load() != 2 {
		t.Fatalf("Stats() = %+v with %d stores running; want both queues full, both workers on a task", st, sink.running.Load())
	}
	var full *QueueFullError
	if err := d.Submit(time.Now(), NewBatch(makeParcels("late", 1))); !errors.As(err, &full) {
		t.Fatalf("Submit() with every shard full = %v; want a QueueFullError", err)
	}
	if st := d.Stats(); st.Accepted != 6 {
		t.Errorf("accepted %d parcels; want 6, nothing of the refused request", st.Accepted)
	}
	close(sink.release)
	shutdown(t, d)
	checkCounts(t, d, counts{6, 6, 0})
}

// TestShardsTurnToOneWithRoom: a request whose turn falls on a full shard
// goes to another shard with room, at once, rather than wait (were it to
// wait, the Submit would fail after EnqueueTimeout).
func TestShardsTurnToOneWithRoom(t *testing.T) {
	t.Parallel()
	sink := newGatedSink()
	d, err := New(Config{MaxQueue: 4, MaxWorkers: 2, Sink: sink, Shards: 2, EnqueueTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	defer shutdown(t, d)
	defer close(sink.release)
	submitOnTurn := func(shard int, id string) {
		t.Helper()
		// reserve takes the turn next.Add(1) % 2.
		d.next.Store(uint32(shard + 1))
		if err := d.Submit(time.Now(), NewBatch(makeParcels(id, 1))); err != nil {
			t.Fatalf("Submit(%s) = %v", id, err)
		}
	}
	// Shard 0 full: one task with its worker, its two places queued.
	submitOnTurn(0, "a")
	waitFor(t, "the first task run", func() bool { return sink.running.Load() == 1 })
	submitOnTurn(0, "b")
	submitOnTurn(0, "c")
	if n := len(d.shards[0].queue); n != 2 {
		t.Fatalf("shard 0 holds %d queued tasks; want 2", n)
	}
	// Its turn again: shard 1 takes it.
	submitOnTurn(0, "d")
	waitFor(t, "the request stored by shard 1", func() bool {
		return sink.running.Load() == 2 || len(d.shards[1].queue) == 1
	})
	if n := len(d.shards[0].queue); n != 2 {
		t.Errorf("shard 0 holds %d queued tasks after the fourth request; want still 2", n)
	}
}

// TestDefaultShards: one shard for every eight CPUs GOMAXPROCS allows, and
// New never gives a shard no place or no worker when choosing for the host.
func TestDefaultShards(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, tc := range []struct{ procs, want int }{{1, 1}, {2, 1}, {8, 1}, {9, 2}, {16, 2}, {64, 8}} {
		runtime.GOMAXPROCS(tc.procs)
		if got := DefaultShards(); got != tc.want {
			t.Errorf("DefaultShards() with GOMAXPROCS=%d = %d; want %d", tc.procs, got, tc.want)
		}
	}
	// More CPUs than MaxShards shards' worth: New keeps to MaxShards.
	runtime.GOMAXPROCS(MaxShards*cpusPerShard + 1)
	if huge, err := New(Config{MaxQueue: 10000, MaxWorkers: 10000, Sink: &recordingSink{}}); err != nil || len(huge.shards) != MaxShards {
		t.Errorf("New() on %d CPUs = %v; want %d shards", MaxShards*cpusPerShard+1, err, MaxShards)
	}
	runtime.GOMAXPROCS(64)
	d, err := New(Config{MaxQueue: 100, MaxWorkers: 3, Sink: &recordingSink{}})
	if err != nil {
		t.Fatalf("New() with 3 workers on 64 CPUs = %v; want shards fitted to the workers", err)
	}
	if n := len(d.shards); n != 3 {
		t.Errorf("%d shards for 3 workers on 64 CPUs; want 3", n)
	}
	d.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}
