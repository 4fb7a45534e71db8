package ingest

import (
	"runtime"
	"sync"
)

// shard is the reference design whole: a bounded task queue, a dispatcher
// loop, and a pool of workers that each offer their own channel and block
// until a run of tasks arrives. A Dispatcher runs one shard per
// Config.Shards and gives each request to one of them.
//
// One dispatcher loop moves every request's parcels, so on a big enough
// host it bounds the server's rate: BenchmarkDispatcherParallel measures
// how many CPUs' worth of requests one loop can feed (at the least ten, by
// benchmarks/RESULTS.md, "Shards"), and DefaultShards gives a shard to
// every eight CPUs.
type shard struct {
	d       *Dispatcher
	queue   chan Task    // the shard's task queue, cap its share of MaxQueue
	room    *room        // its free places, reserved a whole request at a time
	pool    chan *worker // ready workers, cap the shard's workers
	workers []*worker
	running sync.WaitGroup // the workers' loops
}

// newShard builds a shard of places queue places and workers workers,
// numbered from firstID.
func newShard(d *Dispatcher, places, workers, firstID int) *shard {
	sh := &shard{
		d:     d,
		queue: make(chan Task, places),
		room:  newRoom(places),
		pool:  make(chan *worker, workers),
	}
	sh.workers = make([]*worker, workers)
	for i := range sh.workers {
		sh.workers[i] = newWorker(firstID+i, sh.pool, d, sh.running.Done)
	}
	return sh
}

// DefaultShards is the number of shards for Config.Shards 0 (SHARDS=0): one
// for every eight CPUs the process may use (GOMAXPROCS), at least one. New
// keeps it within MaxShards, MaxQueue and MaxWorkers.
func DefaultShards() int {
	return (runtime.GOMAXPROCS(0) + cpusPerShard - 1) / cpusPerShard
}

// cpusPerShard is how many CPUs' worth of requests one dispatcher loop is
// given by default: fewer than it can feed, so that it never becomes the
// bound (see shard).
const cpusPerShard = 8

// start starts the shard's workers, then runs its dispatcher loop until
// the queue is closed and drained and every worker has quit.
func (sh *shard) start() {
	sh.running.Add(len(sh.workers))
	for _, w := range sh.workers {
		w.start()
	}
	sh.run()
}

// run hands tasks from the shard's queue to ready workers until the queue
// is closed and empty, then stops the workers and waits for them.
//
// Workers announce themselves on the pool channel, which is first in, first
// out: taken straight from it, every task would go to the worker idle the
// longest, whose stack has gone cold in the CPU caches. run moves the offers
// into a stack instead and hands each task to the most recently ready
// worker: less CPU per request and more requests per second, measured with
// wrk (figures: benchmarks/RESULTS.md, "Figures the code cites").
func (sh *shard) run() {
	d := sh.d
	ready := make([]*worker, 0, cap(sh.pool)) // ready workers, newest last
	var freed int64                           // queue places taken off and not yet given back
	for {
		ready = sh.collectReady(ready)
		if len(ready) == 0 {
			sh.room.release(freed) // before blocking: nobody waits on places we hold
			freed = 0
			// Take a ready worker before a task, so that a task is
			// never held outside the queue waiting for someone to run it.
			ready = append(ready, <-sh.pool)
		}
		t, ok := <-sh.queue
		if !ok {
			break
		}
		w := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		// The worker's own buffer, grown here on its first runs and
		// kept: the worker does not touch it until it is sent.
		w.run = sh.fillRun(append(w.run[:0], t))
		run := w.run
		// Places are given back in batches, not one atomic operation
		// per task: at the latest when the queue is empty, before the
		// next receive could block.
		if freed += int64(len(run)); freed >= 16 || len(sh.queue) == 0 {
			sh.room.release(freed)
			freed = 0
		}
		// Counted here, once per run, rather than by the worker on
		// entry and exit: one atomic operation instead of two per task.
		d.dispatched.Add(uint64(len(run)))
		w.runs <- run
	}
	// The queue is closed and empty: nothing more will be sent to any
	// worker, so each may be told to quit.
	for _, w := range sh.workers {
		w.quit()
	}
	sh.running.Wait()
}

// fillRun appends to run the tasks already queued, up to maxRun, without
// waiting for more: a run is what the queue holds when a worker is ready,
// so that under light load a task waits for no other, and under heavy load
// one hand-off moves many. A request's parcels may so go to one worker or
// to several, in order within each run.
func (sh *shard) fillRun(run []Task) []Task {
	for len(run) < sh.d.maxRun {
		select {
		case t, ok := <-sh.queue:
			if !ok {
				return run // closed: the next receive in run ends the loop
			}
			run = append(run, t)
		default:
			return run
		}
	}
	return run
}

// collectReady appends every offer waiting in the pool, without blocking.
func (sh *shard) collectReady(ready []*worker) []*worker {
	for {
		select {
		case w := <-sh.pool:
			ready = append(ready, w)
		default:
			return ready
		}
	}
}
