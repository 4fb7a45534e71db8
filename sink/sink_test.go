package sink

import (
	"context"
	"testing"
	"time"

	"github.com/fastingest/fastingest/ingest"
)

func TestNewSimRejectsBadRanges(t *testing.T) {
	for _, r := range [][2]time.Duration{{-time.Millisecond, time.Millisecond}, {55 * time.Millisecond, 5 * time.Millisecond}} {
		if _, err := NewSim(r[0], r[1]); err == nil {
			t.Errorf("NewSim(%v, %v) = nil error; want an error", r[0], r[1])
		}
	}
}

func TestSimLatencyIsUniformInRange(t *testing.T) {
	const min, max = 5 * time.Millisecond, 55 * time.Millisecond
	s, err := NewSim(min, max)
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	s.sleep = func(d time.Duration) { got = append(got, d) }
	const n = 20000
	for range n {
		if err := s.Store(context.Background(), ingest.Task{Parcel: &ingest.Parcel{ID: "1"}}); err != nil {
			t.Fatalf("Store() = %v; want nil", err)
		}
	}
	// Ten equal buckets over [min, max]: each should hold about n/10
	// draws; a draw outside the range fails at once.
	var buckets [10]int
	var sum time.Duration
	for _, d := range got {
		if d < min || d > max {
			t.Fatalf("latency %v outside [%v, %v]", d, min, max)
		}
		i := int((d - min) * 10 / (max - min + 1))
		buckets[i]++
		sum += d
	}
	for i, c := range buckets {
		if c < n/10*8/10 || c > n/10*12/10 {
			t.Errorf("bucket %d holds %d of %d draws; want about %d (uniform)", i, c, n, n/10)
		}
	}
	if mean, want := sum/n, (min+max)/2; mean < want-time.Millisecond || mean > want+time.Millisecond {
		t.Errorf("mean latency %v; want about %v", mean, want)
	}
}

func TestSimFixedLatency(t *testing.T) {
	s, err := NewSim(7*time.Millisecond, 7*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var got time.Duration
	s.sleep = func(d time.Duration) { got = d }
	_ = s.Store(context.Background(), ingest.Task{})
	if got != 7*time.Millisecond {
		t.Fatalf("latency = %v; want 7ms", got)
	}
}

func TestNullStoresNothingAndSucceeds(t *testing.T) {
	if err := (Null{}).Store(context.Background(), ingest.Task{}); err != nil {
		t.Fatalf("Null.Store() = %v; want nil", err)
	}
}
