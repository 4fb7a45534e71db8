package promtext

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestObserveAndWrite(t *testing.T) {
	h := NewHistogram("x_seconds", `path="/"`, time.Millisecond, 10*time.Millisecond)
	for _, d := range []time.Duration{0, time.Millisecond, 2 * time.Millisecond, time.Second, -time.Second} {
		h.Observe(d)
	}
	var b strings.Builder
	h.WritePrometheus(&b)
	want := `x_seconds_bucket{path="/",le="0.001"} 3
x_seconds_bucket{path="/",le="0.01"} 4
x_seconds_bucket{path="/",le="+Inf"} 5
x_seconds_sum{path="/"} 1.003
x_seconds_count{path="/"} 5
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}

	u := NewHistogram("y", "", time.Second)
	u.Observe(time.Millisecond)
	b.Reset()
	u.WritePrometheus(&b)
	if want := "y_bucket{le=\"1\"} 1\ny_bucket{le=\"+Inf\"} 1\ny_sum 0.001\ny_count 1\n"; b.String() != want {
		t.Errorf("without labels: got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestConcurrentObserve(t *testing.T) {
	h := NewHistogram("z", "", time.Microsecond)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 1000 {
				h.Observe(time.Millisecond)
			}
		})
	}
	wg.Wait()
	var b strings.Builder
	h.WritePrometheus(&b)
	if !strings.Contains(b.String(), "z_count 8000\n") {
		t.Errorf("got\n%s\nwant a count of 8000", b.String())
	}
}

func TestNewHistogramPanicsOnUnorderedBounds(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewHistogram with decreasing bounds did not panic")
		}
	}()
	NewHistogram("w", "", time.Second, time.Millisecond)
}

func BenchmarkObserve(b *testing.B) {
	h := NewHistogram("b", "", 100*time.Microsecond, time.Millisecond, 10*time.Millisecond, 100*time.Millisecond, time.Second)
	b.ReportAllocs()
	for b.Loop() {
		h.Observe(3 * time.Millisecond)
	}
}
