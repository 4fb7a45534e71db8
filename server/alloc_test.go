//go:build !race

package server

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
)

type nullSink struct{}

func (nullSink) Store(context.Context, ingest.Task) error { return nil }

// newAllocServer is a server and a running dispatcher with a sink that does
// nothing, for measuring the request path alone.
func newAllocServer(t testing.TB) (*Server, *ingest.Dispatcher) {
	t.Helper()
	d, err := ingest.New(ingest.Config{MaxQueue: 10000, MaxWorkers: 64, Sink: nullSink{}})
	if err != nil {
		t.Fatal(err)
	}
	d.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, d)
	if err != nil {
		t.Fatal(err)
	}
	return srv, d
}

// TestRequestPathAllocations guards the allocation budget of the request
// path, from the handler to every task queued and the 202 written: at most 3
// per request for the reference payload, whatever its number of parcels
// (the batch, its body copy and its parcels are pooled).
func TestRequestPathAllocations(t *testing.T) {
	srv, d := newAllocServer(t)
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI("/")
	ctx.Request.Header.SetContentType("application/json")
	ctx.Request.SetBodyString(refBody)

	allocs := testing.AllocsPerRun(1000, func() {
		ctx.Response.Reset()
		srv.handle(&ctx)
		if ctx.Response.StatusCode() != fasthttp.StatusAccepted {
			t.Fatalf("status %d: %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
		// Let the workers finish the request, as they keep up in a
		// steady state, so that its batch is back in the pool: without
		// it this loop outruns them and measures the pool's growth.
		for d.Stats().InFlight() != 0 {
			runtime.Gosched()
		}
	})
	if allocs > 3 {
		t.Errorf("request path allocates %.1f times per request; want at most 3", allocs)
	}
	t.Logf("%.1f allocations per request", allocs)
}
