package ingest

import (
	"fmt"
	"time"
)

// Defaults and limits of the Config fields that fastingest's settings set
// (MAX_QUEUE, MAX_WORKERS, MAX_QUEUE_BYTES, ENQUEUE_TIMEOUT, SHARDS). They
// live here, beside the code that uses them; fastingest's options table
// reads them and checks each setting with the Validate function below, so
// that a value is refused at startup by the same rule New applies.
const (
	DefaultMaxQueue       = 10_000
	DefaultMaxWorkers     = 1000
	DefaultMaxQueueBytes  = 256 << 20
	DefaultEnqueueTimeout = 5 * time.Second

	// MaxQueueLimit bounds MaxQueue: the queue is a channel allocated
	// whole, 10M tasks are already hundreds of MiB.
	MaxQueueLimit = 10_000_000
	// MaxWorkersLimit bounds MaxWorkers: a goroutine each.
	MaxWorkersLimit = 1_000_000
	// MinMaxQueueBytes and MaxQueueBytesLimit bound MAX_QUEUE_BYTES.
	// New also takes smaller positive values (tests fill the queue with
	// a few bytes) and 0 for no limit, which the setting does not offer:
	// fastingest's memory bound counts on it.
	MinMaxQueueBytes   = 1 << 10
	MaxQueueBytesLimit = 1 << 40
)

// ValidateMaxQueue checks a queue capacity, in parcels.
func ValidateMaxQueue(n int) error {
	if n < 1 || n > MaxQueueLimit {
		return fmt.Errorf("want an integer from 1 to %d", MaxQueueLimit)
	}
	return nil
}

// ValidateMaxWorkers checks a number of workers.
func ValidateMaxWorkers(n int) error {
	if n < 1 || n > MaxWorkersLimit {
		return fmt.Errorf("want an integer from 1 to %d", MaxWorkersLimit)
	}
	return nil
}

// ValidateMaxQueueBytes checks a MAX_QUEUE_BYTES setting.
func ValidateMaxQueueBytes(n int64) error {
	if n < MinMaxQueueBytes || n > MaxQueueBytesLimit {
		return fmt.Errorf("want a size from %d to %d bytes", MinMaxQueueBytes, int64(MaxQueueBytesLimit))
	}
	return nil
}

// ValidateEnqueueTimeout checks an enqueue timeout: 0 (wait as long as it
// takes) or more.
func ValidateEnqueueTimeout(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("want a duration of 0 or more")
	}
	return nil
}

// MaxShards bounds Shards: a shard is a dispatcher loop, and one feeds
// about eight CPUs.
const MaxShards = 256

// ValidateShards checks a number of shards (SHARDS) on its own: 0 (one per
// 8 CPUs, DefaultShards) or up to MaxShards. New and fastingest's settings
// check with ShardsFit that a number asked for fits the queue and the
// workers it shares out.
func ValidateShards(shards int) error {
	if shards < 0 || shards > MaxShards {
		return fmt.Errorf("want 0 or an integer from 1 to %d", MaxShards)
	}
	return nil
}

// ShardsFit checks that every one of shards shards gets a queue place and
// a worker.
func ShardsFit(shards, maxQueue, maxWorkers int) error {
	switch {
	case shards > maxQueue:
		return fmt.Errorf("more shards than MAX_QUEUE places (%d)", maxQueue)
	case shards > maxWorkers:
		return fmt.Errorf("more shards than MAX_WORKERS workers (%d)", maxWorkers)
	}
	return nil
}
