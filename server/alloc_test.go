//go:build !race

package server

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/fastingest/fastingest/ingest"
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
	allocs := requestAllocs(t, srv, d, "application/json", "", refBody)
	if allocs > 3 {
		t.Errorf("request path allocates %.1f times per request; want at most 3", allocs)
	}
	t.Logf("%.1f allocations per request", allocs)
}

// TestCompressedRequestAllocations measures the allocations per request of
// compressed and NDJSON bodies through the handler, in the steady state:
// the pooled decoders and buffers must make them cost no more than an
// uncompressed JSON request (at most 3).
func TestCompressedRequestAllocations(t *testing.T) {
	d := newNullDispatcher(t)
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, d)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, ctype, encoding, body string
	}{
		{"identity JSON", "application/json", "", refBody},
		{"gzip JSON", "application/json", "gzip", gzipped(refBody)},
		{"deflate JSON", "application/json", "deflate", zlibbed(refBody)},
		{"raw deflate JSON", "application/json", "deflate", deflated(refBody)},
		{"zstd JSON", "application/json", "zstd", zstded(refBody)},
		{"zstd streamed JSON", "application/json", "zstd", zstdStreamed(refBody)},
		{"identity NDJSON", "application/x-ndjson", "", refNDJSON},
		{"gzip NDJSON", "application/x-ndjson", "gzip", gzipped(refNDJSON)},
	}
	for _, tt := range tests {
		allocs := requestAllocs(t, srv, d, tt.ctype, tt.encoding, tt.body)
		t.Logf("%s: %.1f allocations per request", tt.name, allocs)
		if allocs > 3 {
			t.Errorf("%s: %.1f allocations per request; want at most 3", tt.name, allocs)
		}
	}
}

// requestAllocs returns the allocations per POST / of body through srv's
// handler, each request waited for until its tasks are done. The body comes
// as a stream, as fasthttp hands it over with StreamRequestBody.
func requestAllocs(t *testing.T, srv *Server, d *ingest.Dispatcher, ctype, encoding, body string) float64 {
	t.Helper()
	var ctx fasthttp.RequestCtx
	ctx.Request.Header.SetMethod(fasthttp.MethodPost)
	ctx.Request.SetRequestURI("/")
	ctx.Request.Header.SetContentType(ctype)
	if encoding != "" {
		ctx.Request.Header.Set("Content-Encoding", encoding)
	}
	var stream bytes.Reader
	raw := []byte(body)
	return testing.AllocsPerRun(1000, func() {
		stream.Reset(raw)
		ctx.Request.SetBodyStream(&stream, len(raw))
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
}
