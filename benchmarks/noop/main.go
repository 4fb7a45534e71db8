// Command noop is the ceiling for scripts/bench.sh: a fasthttp server that
// reads the request body and answers 200 with an empty body, doing nothing
// else. What fastingest costs beyond it is the cost of decoding, validating
// and queueing; no ingestion server on fasthttp can be faster than this.
//
// Environment: ADDR (default :8080). It prints "listening on HOST:PORT" (the
// actual address, so ADDR=127.0.0.1:0 works) to stderr, and exits 0 on SIGINT
// or SIGTERM.
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/valyala/fasthttp"
)

// handle answers 200 with an empty body. fasthttp has read the whole body
// before calling it; handle only looks at it, as any ingestion server must.
func handle(ctx *fasthttp.RequestCtx) {
	_ = ctx.PostBody()
	ctx.SetStatusCode(fasthttp.StatusOK)
}

func main() {
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = ":8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
	srv := &fasthttp.Server{Handler: handle, Name: "noop"}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr().String())

	select {
	case <-signals:
	case err := <-serveErr:
		fmt.Fprintln(os.Stderr, "noop:", err)
		os.Exit(1)
	}
	// Shutdown closes the listener and waits for open connections to go idle.
	if err := srv.Shutdown(); err != nil {
		fmt.Fprintln(os.Stderr, "noop: shutdown:", err)
	}
}
