package server

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestBackpressureOverHTTP holds every worker busy and posts many more
// parcels than MAX_QUEUE + MAX_WORKERS. The requests must wait (no answer),
// the queue and the busy workers stay within their bounds, the goroutine
// count does not grow with the number of pending parcels (the reference
// dispatcher would start one goroutine per parcel here), and every request
// is answered 202 with all its parcels stored once the workers resume.
func TestBackpressureOverHTTP(t *testing.T) {
	const maxQueue, maxWorkers = 40, 2
	const requests, perRequest = 8, 15 // 120 parcels pending, bound is 42
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	env := startEnv(t, envOptions{maxQueue: maxQueue, maxWorkers: maxWorkers, release: release})
	t.Cleanup(releaseOnce)

	parcels := make([]string, 0, requests)
	for r := 0; r < requests; r++ {
		ps := refParcels[:0:0]
		for i := 0; i < perRequest; i++ {
			p := refParcel(i%9 + 1)
			p.ID = fmt.Sprintf("r%d-%d", r, i)
			ps = append(ps, p)
		}
		parcels = append(parcels, parcelsJSON(ps...))
	}

	base := runtime.NumGoroutine()
	var answered atomic.Int64
	var wg sync.WaitGroup
	statuses := make([]int, requests)
	bodies := make([]string, requests)
	for r := 0; r < requests; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fasthttp.AcquireRequest()
			defer fasthttp.ReleaseRequest(req)
			resp := fasthttp.AcquireResponse()
			defer fasthttp.ReleaseResponse(resp)
			req.Header.SetMethod(fasthttp.MethodPost)
			req.SetRequestURI("http://fastingest.test/")
			req.Header.SetContentType("application/json")
			req.SetBodyString(parcels[r])
			if err := env.client.DoTimeout(req, resp, waitTimeout); err != nil {
				t.Errorf("request %d: %v", r, err)
			}
			statuses[r], bodies[r] = resp.StatusCode(), string(resp.Body())
			answered.Add(1)
		}()
	}

	// Two requests fit (15 + 15 of 40 places, 2 of them already taken
	// by the workers); the third needs 15 places with 12 free, and it
	// and all the others wait, having queued nothing: room is reserved
	// for a whole request before any of its tasks is queued.
	const admitted = 2 * perRequest
	waitFor(t, "two requests queued, the workers busy, the others waiting for room", func() bool {
		st := env.disp.Stats()
		return st.BusyWorkers == maxWorkers && st.Queued == admitted-maxWorkers && st.Accepted == admitted &&
			env.disp.RecentQueueWait() > 0 && answered.Load() == admitted/perRequest
	})
	for i := 0; i < 50; i++ {
		st := env.disp.Stats()
		if st.Queued > maxQueue || st.BusyWorkers > maxWorkers {
			t.Fatalf("stats %+v: want at most %d queued and %d busy", st, maxQueue, maxWorkers)
		}
		if st.Accepted != admitted {
			t.Fatalf("stats %+v: want exactly %d accepted: a waiting request queues nothing", st, admitted)
		}
		// Tasks that exist: in the queue and in the workers; the other
		// parcels wait in their request's batch, not as tasks or
		// goroutines.
		if tasks := st.Queued + st.BusyWorkers; tasks > maxQueue+maxWorkers {
			t.Fatalf("%d tasks queued or running; want at most %d", tasks, maxQueue+maxWorkers)
		}
		// The client goroutines, one server goroutine per connection and a
		// few of the client's per request: nothing per parcel.
		if g, limit := runtime.NumGoroutine(), base+3*requests; g > limit {
			t.Fatalf("%d goroutines with %d parcels pending; want at most %d", g, requests*perRequest, limit)
		}
		if n := answered.Load(); n != admitted/perRequest {
			t.Fatalf("%d requests answered; want the %d whose parcels are queued, the others waiting", n, admitted/perRequest)
		}
		runtime.Gosched()
	}

	releaseOnce()
	wg.Wait()
	want := fmt.Sprintf(`{"accepted":%d}`, perRequest)
	for r := range statuses {
		if statuses[r] != fasthttp.StatusAccepted || bodies[r] != want {
			t.Errorf("request %d: got %d %q; want 202 %q", r, statuses[r], bodies[r], want)
		}
	}
	waitFor(t, "every parcel stored", func() bool { return env.sink.count() == requests*perRequest })
	seen := map[string]bool{}
	for _, p := range env.sink.stored() {
		if seen[p.ID] {
			t.Fatalf("parcel %s stored twice", p.ID)
		}
		seen[p.ID] = true
	}
	if st := env.disp.Stats(); st.Accepted != requests*perRequest || st.Completed != requests*perRequest {
		t.Errorf("stats %+v: want %d accepted and completed", st, requests*perRequest)
	}
}
