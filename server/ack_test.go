package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
)

// startConfiguredEnv is startEnv for a server built from cfg (MaxBodyBytes
// defaults to testMaxBody) over a dispatcher with the given sink. env.sink
// is set when sink is a *recordingSink.
func startConfiguredEnv(t *testing.T, cfg Config, sink ingest.Sink, maxWorkers int) *testEnv {
	t.Helper()
	return startTunedEnv(t, tunedOptions{
		ingest: ingest.Config{MaxQueue: 64, MaxWorkers: maxWorkers, Sink: sink},
		server: cfg,
	}).testEnv
}

// answer is the outcome of a request sent by postAsync.
type answer struct {
	resp *fasthttp.Response
	err  error
}

// postAsync POSTs body to /, with headers added, from a goroutine of its
// own; the channel receives the answer.
func (e *testEnv) postAsync(body string, headers ...[2]string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		req := fasthttp.AcquireRequest()
		defer fasthttp.ReleaseRequest(req)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.SetRequestURI("http://fastingest.test/")
		req.Header.SetContentType("application/json")
		for _, h := range headers {
			req.Header.Add(h[0], h[1])
		}
		req.SetBodyString(body)
		resp := &fasthttp.Response{}
		err := e.client.DoTimeout(req, resp, waitTimeout)
		ch <- answer{resp, err}
	}()
	return ch
}

// awaitAnswer waits for a request sent by postAsync.
func awaitAnswer(t *testing.T, ch <-chan answer) *fasthttp.Response {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("POST /: %v", a.err)
		}
		return a.resp
	case <-time.After(waitTimeout):
		t.Fatalf("POST / not answered within %v", waitTimeout)
		return nil
	}
}

// checkNotAnswered fails the test if the request has been answered.
func checkNotAnswered(t *testing.T, ch <-chan answer, why string) {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("POST / failed (%v) %s", a.err, why)
		}
		t.Fatalf("POST / answered %d %s %s", a.resp.StatusCode(), a.resp.Body(), why)
	default:
	}
}

// checkAccepted checks a 202 {"accepted":n}.
func checkAccepted(t *testing.T, resp *fasthttp.Response, want string) {
	t.Helper()
	checkStatus(t, resp, fasthttp.StatusAccepted)
	if got := string(resp.Body()); got != want {
		t.Errorf("body: got %q, want %q", got, want)
	}
}

// errStore is the error the tests' sinks fail parcels with.
var errStore = errors.New("test sink: write failed")

// holdingSink is an ingest.DeferredSink that holds every task until the
// test finishes it, like a sink waiting for an fsync or an acknowledgement.
type holdingSink struct {
	mu     sync.Mutex
	held   []ingest.Task
	stored []string // IDs of the parcels finished with nil
}

func (s *holdingSink) Store(_ context.Context, t ingest.Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held = append(s.held, t)
	return nil
}

// finish finishes the n oldest held tasks (all if n < 0) with err.
func (s *holdingSink) finish(n int, err error) {
	s.mu.Lock()
	if n < 0 || n > len(s.held) {
		n = len(s.held)
	}
	tasks := append([]ingest.Task(nil), s.held[:n]...)
	s.held = s.held[n:]
	for _, t := range tasks {
		if err == nil {
			s.stored = append(s.stored, strings.Clone(t.Parcel.ID))
		}
	}
	s.mu.Unlock()
	for _, t := range tasks {
		t.Finish(err)
	}
}

func (s *holdingSink) heldCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held)
}

func (s *holdingSink) storedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.stored)
}

// Close stores whatever is still held.
func (s *holdingSink) Close(context.Context) error {
	s.finish(-1, nil)
	return nil
}

// failingSink fails the parcels whose IDs are in fail and stores nothing.
type failingSink struct{ fail map[string]bool }

func (s *failingSink) Store(_ context.Context, t ingest.Task) error {
	if s.fail[t.Parcel.ID] {
		return errStore
	}
	return nil
}

// TestAckPersistedAnswersAfterStored: with ACK=persisted, 202 goes out only
// once every parcel of the request is in the sink, for a sink that stores
// in Store and for one that finishes its tasks later.
func TestAckPersistedAnswersAfterStored(t *testing.T) {
	t.Parallel()
	t.Run("sink stores in Store", func(t *testing.T) {
		env := startConfiguredEnv(t, Config{Ack: AckPersisted}, &recordingSink{}, 4)
		for r := 1; r <= 3; r++ {
			checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)
			// No waiting: the parcels must be there when the answer is.
			if got, want := env.sink.count(), 9*r; got != want {
				t.Fatalf("request %d answered 202 with %d parcels in the sink; want %d", r, got, want)
			}
			if got, want := env.disp.Stats().Completed, uint64(9*r); got != want {
				t.Fatalf("request %d answered 202 with %d parcels completed; want %d", r, got, want)
			}
		}
		// Nothing to wait for: answered at once.
		checkAccepted(t, env.do(t, request{ctype: "application/json", body: `{"Data":[]}`}), `{"accepted":0}`)
	})

	t.Run("sink finishes later", func(t *testing.T) {
		sink := &holdingSink{}
		env := startConfiguredEnv(t, Config{Ack: AckPersisted}, sink, 4)
		t.Cleanup(func() { sink.finish(-1, nil) }) // before the env's cleanups

		answered := env.postAsync(refBody)
		waitFor(t, "the sink to hold 9 parcels", func() bool { return sink.heldCount() == 9 })
		checkNotAnswered(t, answered, "while the sink held all 9 parcels")
		sink.finish(8, nil)
		checkNotAnswered(t, answered, "while the sink held 1 parcel")
		sink.finish(1, nil)
		resp := awaitAnswer(t, answered)
		checkAccepted(t, resp, `{"accepted":9}`)
		if got := sink.storedCount(); got != 9 {
			t.Errorf("sink stored %d parcels when 202 arrived; want 9", got)
		}
		if got, want := env.srv.Stats(), (Stats{Accepted: 1}); got != want {
			t.Errorf("server Stats: got %+v, want %+v", got, want)
		}
	})
}

// TestAckPersistedSinkFailures: with ACK=persisted, a request some of whose
// parcels the sink fails is answered 503 with Retry-After, saying how many
// parcels could not be stored and to retry.
func TestAckPersistedSinkFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sink func(t *testing.T) (ingest.Sink, func()) // the sink, and what makes it fail 2 parcels
	}{
		{name: "Store fails", sink: func(*testing.T) (ingest.Sink, func()) {
			return &failingSink{fail: map[string]bool{"3": true, "7": true}}, func() {}
		}},
		{name: "deferred sink finishes with an error", sink: func(t *testing.T) (ingest.Sink, func()) {
			s := &holdingSink{}
			return s, func() {
				waitFor(t, "the sink to hold 9 parcels", func() bool { return s.heldCount() == 9 })
				s.finish(2, errStore)
				s.finish(-1, nil)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink, failTwo := tt.sink(t)
			env := startConfiguredEnv(t, Config{Ack: AckPersisted}, sink, 4)
			answered := env.postAsync(refBody)
			failTwo()
			resp := awaitAnswer(t, answered)
			checkError(t, resp, fasthttp.StatusServiceUnavailable,
				"2 of 9 parcels could not be stored", "ACK=persisted", "retry")
			checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
			if got, want := env.srv.Stats(), (Stats{ServerErrors: 1}); got != want {
				t.Errorf("server Stats: got %+v, want %+v", got, want)
			}
			st := env.disp.Stats()
			if st.Accepted != 9 || st.Completed != 7 || st.Failed != 2 {
				t.Errorf("dispatcher Stats: got %+v, want 9 accepted, 7 completed, 2 failed", st)
			}
		})
	}
}

// TestAckPersistedTimeout: with ACK=persisted, a request whose parcels are
// not stored within AckTimeout is answered 503 saying so; the parcels carry
// on and are counted completed once the sink gets to them.
func TestAckPersistedTimeout(t *testing.T) {
	t.Parallel()
	// Long enough for the second request, whose parcels are stored at
	// once, to be confirmed in time under the race detector on a loaded
	// machine; the first waits it out.
	const ackTimeout = 500 * time.Millisecond
	tests := []struct {
		name string
		// sink returns the sink, a condition that holds once it holds
		// the parcels it was given, and a function letting it store them.
		sink func() (ingest.Sink, func() bool, func())
	}{
		{name: "Store blocks", sink: func() (ingest.Sink, func() bool, func()) {
			s := &recordingSink{release: make(chan struct{})}
			return s, func() bool { return true }, sync.OnceFunc(func() { close(s.release) })
		}},
		{name: "deferred sink holds", sink: func() (ingest.Sink, func() bool, func()) {
			s := &holdingSink{}
			return s, func() bool { return s.heldCount() == 9 }, func() { s.finish(-1, nil) }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sink, holding, release := tt.sink()
			// Several workers: after the timeout the last tasks of the
			// batch finish concurrently, with no waiter left.
			env := startConfiguredEnv(t, Config{Ack: AckPersisted, AckTimeout: ackTimeout}, sink, 4)
			t.Cleanup(release) // before the env's cleanups

			resp := env.do(t, request{ctype: "application/json", body: refBody})
			checkError(t, resp, fasthttp.StatusServiceUnavailable,
				"not confirmed stored within 500ms", "ACK=persisted", "retry")
			checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
			if st := env.disp.Stats(); st.Accepted != 9 || st.Completed != 0 || st.Failed != 0 {
				t.Errorf("dispatcher Stats after the timeout: got %+v, want 9 accepted, none completed or failed", st)
			}

			waitFor(t, "the sink to hold the parcels", holding)
			release()
			waitFor(t, "9 parcels completed", func() bool {
				st := env.disp.Stats()
				return st.Completed == 9 && st.InFlight() == 0
			})
			if got := env.disp.Stats().Failed; got != 0 {
				t.Errorf("dispatcher failed %d parcels; want 0", got)
			}
			// The pooled batch the timed-out request left behind serves
			// the next one, which waits for its own parcels.
			answered := env.postAsync(refBody)
			waitFor(t, "the next request answered", func() bool {
				release() // the deferred sink holds this request's parcels too
				return len(answered) > 0
			})
			checkAccepted(t, awaitAnswer(t, answered), `{"accepted":9}`)
			if got := env.disp.Stats().Completed; got != 18 {
				t.Errorf("dispatcher completed %d parcels; want 18", got)
			}
		})
	}
}

// TestAckEnqueuedAnswersBeforeStored: with the default ACK=enqueued, 202
// goes out once the parcels are queued, while the sink has stored none.
func TestAckEnqueuedAnswersBeforeStored(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	sink := &recordingSink{release: release}
	env := startConfiguredEnv(t, Config{}, sink, 1)
	t.Cleanup(releaseOnce) // before the env's cleanups

	if got, want := env.srv.cfg.Ack, AckEnqueued; got != want {
		t.Fatalf("default Ack: got %v, want %v", got, want)
	}
	checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)
	if got := sink.count(); got != 0 {
		t.Errorf("sink stored %d parcels before its gate opened; want 0", got)
	}
	if st := env.disp.Stats(); st.Accepted != 9 || st.Completed != 0 {
		t.Errorf("dispatcher Stats at 202: got %+v, want 9 accepted, none completed", st)
	}
	releaseOnce()
	waitFor(t, "9 parcels in the sink", func() bool { return sink.count() == 9 })
}

// switchableHealth is a SinkHealth the test turns on and off.
type switchableHealth struct {
	mu  sync.Mutex
	err error
}

func (h *switchableHealth) check() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

func (h *switchableHealth) set(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.err = err
}

// TestSinkHealth: while SinkHealth reports an error, POST / answers 503
// with Retry-After and the reason, queueing nothing, and /readyz answers
// 503, while /healthz stays 200; both recover when the sink does.
func TestSinkHealth(t *testing.T) {
	t.Parallel()
	for _, ack := range []Ack{AckEnqueued, AckPersisted} {
		t.Run("ACK="+ack.String(), func(t *testing.T) {
			health := &switchableHealth{}
			sink := &recordingSink{}
			env := startConfiguredEnv(t, Config{Ack: ack, SinkHealth: health.check}, sink, 2)
			get := func(path string) *fasthttp.Response {
				return env.do(t, request{method: fasthttp.MethodGet, path: path})
			}
			checkStatus(t, get("/readyz"), fasthttp.StatusOK)

			health.set(errors.New("disk full on /data"))
			resp := env.do(t, request{ctype: "application/json", body: refBody})
			checkError(t, resp, fasthttp.StatusServiceUnavailable, "disk full on /data", "nothing was accepted", "retry")
			checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
			if got := env.disp.Stats().Accepted; got != 0 {
				t.Errorf("dispatcher accepted %d parcels while the sink was unhealthy; want 0", got)
			}
			if got := sink.count(); got != 0 {
				t.Errorf("sink got %d parcels while unhealthy; want 0", got)
			}
			resp = get("/readyz")
			checkError(t, resp, fasthttp.StatusServiceUnavailable, "disk full on /data")
			checkHeader(t, resp, fasthttp.HeaderRetryAfter, "1")
			checkStatus(t, get("/healthz"), fasthttp.StatusOK)
			// The POST's 503 only: /readyz's is the answer to a probe.
			if got, want := env.srv.Stats(), (Stats{ServerErrors: 1}); got != want {
				t.Errorf("server Stats while unhealthy: got %+v, want %+v", got, want)
			}

			health.set(nil)
			checkStatus(t, get("/readyz"), fasthttp.StatusOK)
			checkAccepted(t, env.do(t, request{ctype: "application/json", body: refBody}), `{"accepted":9}`)
			waitFor(t, "9 parcels in the sink", func() bool { return sink.count() == 9 })
			if got := env.disp.Stats().Accepted; got != 9 {
				t.Errorf("dispatcher accepted %d parcels after recovery; want 9", got)
			}
		})
	}
}
