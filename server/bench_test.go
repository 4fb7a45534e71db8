package server

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/sink"
)

// newNullDispatcher is a running dispatcher whose sink does nothing, for
// measuring the request path alone; it is shut down when the test ends.
func newNullDispatcher(b testing.TB) *ingest.Dispatcher {
	b.Helper()
	// MaxQueueBytes as fastingest's default: the body-bytes reservation
	// is part of the measured path.
	d, err := ingest.New(ingest.Config{MaxQueue: 10000, MaxQueueBytes: 256 << 20, MaxWorkers: 64, Sink: sink.Null{}}) // runs of tasks, as SINK=null
	if err != nil {
		b.Fatal(err)
	}
	d.Start()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.Shutdown(ctx)
	})
	return d
}

// BenchmarkHandler posts the reference payload through the whole server:
// fasthttp over an in-memory listener, decode, every task queued and
// processed by a sink that does nothing. Allocations include the client's.
func BenchmarkHandler(b *testing.B) {
	benchmarkHandlerBody(b, "application/json", "", refBody)
}

// benchmarkHandlerBody is BenchmarkHandler with a given body, its media
// type and content coding.
func benchmarkHandlerBody(b *testing.B, ctype, encoding, body string) {
	srv, err := New(Config{MaxBodyBytes: testMaxBody}, newNullDispatcher(b))
	if err != nil {
		b.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	client := &fasthttp.HostClient{Addr: "bench", Dial: func(string) (net.Conn, error) { return ln.Dial() }}

	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("http://bench/")
	req.Header.SetContentType(ctype)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	req.SetBodyString(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != fasthttp.StatusAccepted {
			b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
		}
	}
}

// BenchmarkHandlerNetHTTP is the twin on net/http: the same decoder and
// dispatcher behind a net/http handler, over an in-memory listener.
func BenchmarkHandlerNetHTTP(b *testing.B) {
	benchmarkNetHTTP(b, "", refBody, func(r *http.Request) ([]byte, error) {
		return io.ReadAll(io.LimitReader(r.Body, testMaxBody))
	})
}

// benchmarkNetHTTP posts body, with the given content coding, to a net/http
// server whose handler reads the body with readBody and then decodes and
// submits it as fastingest does.
func benchmarkNetHTTP(b *testing.B, encoding, body string, readBody func(*http.Request) ([]byte, error)) {
	d := newNullDispatcher(b)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := readBody(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		batch := ingest.AcquireBatch()
		if err := batch.Decode(body); err != nil {
			ingest.ReleaseBatch(batch)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := len(batch.Parcels)
		if err := d.Submit(time.Now(), batch); err != nil { // batch is the queue's either way
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte(`{"accepted":` + strconv.Itoa(n) + `}`))
	})
	ln := fasthttputil.NewInmemoryListener()
	hs := &http.Server{Handler: handler}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = hs.Close() })
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) { return ln.Dial() },
	}}

	payload := []byte(body)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, "http://bench/", bytes.NewReader(payload))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
