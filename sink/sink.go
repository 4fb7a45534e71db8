// Package sink holds the places tasks can be stored. Each sink satisfies
// ingest.Sink; constructors return concrete types.
package sink

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

// Null discards every task. It measures the ingest path itself: with it,
// whatever limits throughput is the HTTP layer, the decoder or the queue.
type Null struct{}

// Store does nothing and never fails.
func (Null) Store(context.Context, ingest.Task) error { return nil }

// NullMaxRun is the most tasks the null sink takes in one run: as many as a
// worker is likely to find queued under load, so that the hand-off is paid
// once for several requests (issue 15).
const NullMaxRun = 64

// MaxRun makes Null an ingest.RunSink.
func (Null) MaxRun() int { return NullMaxRun }

var _ ingest.RunSink = Null{}

// StoreRun does nothing and never fails.
func (Null) StoreRun(context.Context, []ingest.Task, []error) {}

// Sim is the reference design's simulated storage: each Store sleeps for a
// uniformly random duration in [Min, Max] and succeeds.
type Sim struct {
	min, max time.Duration
	// sleep is time.Sleep; tests replace it to observe the chosen latency
	// without waiting for it.
	sleep func(time.Duration)
}

// NewSim returns a Sim sink whose latency is uniform in [min, max].
func NewSim(min, max time.Duration) (*Sim, error) {
	if min < 0 || max < min {
		return nil, fmt.Errorf("sink: simulated latency range %v-%v: want 0 <= min <= max", min, max)
	}
	return &Sim{min: min, max: max, sleep: time.Sleep}, nil
}

// Store sleeps for a random duration in the sink's range, as the reference's
// simulated store does. It does not watch ctx: a shutdown waits for a sleep
// in progress until its deadline, and past it counts the task as not
// completed.
func (s *Sim) Store(_ context.Context, _ ingest.Task) error {
	s.sleep(s.latency())
	return nil
}

// latency draws a duration uniformly from [min, max]. math/rand/v2's
// top-level functions are safe for concurrent use without a shared lock.
func (s *Sim) latency() time.Duration {
	return s.min + rand.N(s.max-s.min+1)
}
