//go:build !race

package server

import (
	"runtime"
	"testing"

	"github.com/valyala/fasthttp"
)

// TestRequestPathAllocations guards the allocation budget of the request
// path, from the handler to every task queued and the 202 written: at most 3
// per request for the reference payload, whatever its number of parcels
// (the batch, its body copy and its parcels are pooled).
func TestRequestPathAllocations(t *testing.T) {
	d := newNullDispatcher(t)
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, d)
	if err != nil {
		t.Fatal(err)
	}
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
