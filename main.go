// Command fastingest is a high-throughput HTTP JSON ingestion server: clients
// POST batches of parcels to /, every parcel becomes a task on one bounded
// global queue, and a pool of workers stores the tasks in a sink.
//
// main only turns flags and the environment into configuration, builds the
// parts, waits for a signal and shuts down in order: listener first, then the
// queue, so that every accepted parcel reaches the sink or is counted.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/fastingest/fastingest/ingest"
	"github.com/fastingest/fastingest/internal/fdlimit"
	"github.com/fastingest/fastingest/server"
	"github.com/fastingest/fastingest/sink"
	"github.com/fastingest/fastingest/sink/filesink"
	"github.com/fastingest/fastingest/sink/natssink"
)

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stderr))
}

// run starts fastingest and returns its exit code: 0 after a clean shutdown,
// 1 on a runtime failure or an unfinished drain, 2 on invalid configuration.
func run(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) int {
	cfg, err := loadConfig(args, lookupEnv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "fastingest:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	// MAX_CONNS connections and what the process needs besides must fit
	// in the open-file limit: lowered, with a WARN line, when they do not.
	files, err := fdlimit.Fit(cfg.MaxConns, reservedFiles(cfg.Sink), log)
	if err != nil {
		fmt.Fprintln(stderr, "fastingest:", err)
		return 2
	}
	cfg.MaxConns = files.MaxConns
	tlsConfig, err := cfg.loadSecrets()
	if err != nil {
		fmt.Fprintln(stderr, "fastingest:", err)
		return 2
	}

	store, health, err := newSink(cfg, log)
	if err != nil {
		log.Error("cannot start the sink", "sink", cfg.Sink, "err", err)
		return 1
	}
	registry := metrics.NewSet() // what /metrics serves
	dispatcher, err := ingest.New(ingest.Config{
		MaxQueue: cfg.MaxQueue, MaxQueueBytes: cfg.MaxQueueBytes, MaxWorkers: cfg.MaxWorkers, Sink: store,
		EnqueueTimeout: cfg.EnqueueTimeout, Metrics: registry, Logger: log,
	})
	if err != nil {
		if d, ok := store.(ingest.DeferredSink); ok {
			_ = d.Close(context.Background()) // holds nothing yet
		}
		fmt.Fprintln(stderr, "fastingest:", err)
		return 2
	}
	// abandon releases the sink (its connection, an empty segment) when
	// startup fails after this point; the queue is empty.
	abandon := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = dispatcher.Shutdown(ctx)
	}
	ack := server.AckEnqueued
	if cfg.Ack == "persisted" {
		ack = server.AckPersisted
	}
	srv, err := server.New(server.Config{
		MaxBodyBytes: cfg.MaxBodyBytes, Ack: ack, AckTimeout: cfg.AckTimeout,
		SinkHealth: health, QueueWait: dispatcher.RecentQueueWait, ReadyMaxQueueWait: cfg.ReadyMaxQueueWait,
		MaxConns: cfg.MaxConns, MaxHeaderBytes: int(cfg.MaxHeaderBytes),
		ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout,
		AuthToken: cfg.AuthToken, MetricsPublic: cfg.MetricsPublic, Metrics: registry, Logger: log,
		TLSConfig: tlsConfig,
	}, dispatcher)
	if err != nil {
		abandon()
		fmt.Fprintln(stderr, "fastingest:", err)
		return 1
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		abandon()
		log.Error("cannot listen", "addr", cfg.Addr, "err", err)
		return 1
	}
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	dispatcher.Start()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	attrs := append([]any{"listen", ln.Addr().String(), "nofile", files.NoFile}, cfg.logAttrs()...)
	if f, ok := store.(*filesink.Sink); ok {
		attrs = append(attrs, "segment", f.Segment()) // where posted parcels land
	}
	log.Info("fastingest listening", attrs...)

	code := 0
	select {
	case sig := <-signals:
		log.Info("shutting down: no longer ready, draining requests and queue", "signal", sig.String(),
			"timeout", cfg.ShutdownTimeout.String())
	case err := <-serveErr:
		log.Error("server stopped unexpectedly; draining the queue", "err", err)
		code = 1
	}

	srv.Unready()
	stopWaiting := false // a second signal came during DRAIN_DELAY
	if code == 0 && cfg.DrainDelay > 0 {
		log.Info("still serving for DRAIN_DELAY, with /readyz answering 503, before closing the listener",
			"drain_delay", cfg.DrainDelay.String())
		delay := time.NewTimer(cfg.DrainDelay)
		select {
		case <-delay.C:
		case sig := <-signals:
			delay.Stop()
			log.Warn("second signal: not waiting any longer", "signal", sig.String())
			stopWaiting = true
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if stopWaiting {
		cancel()
	}
	go func() {
		select {
		case sig := <-signals:
			log.Warn("second signal: not waiting any longer", "signal", sig.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("requests still in progress when the shutdown deadline passed", "err", err)
	}
	drainErr := dispatcher.Shutdown(ctx)

	st, rs := dispatcher.Stats(), srv.Stats()
	summary := []any{
		"accepted", st.Accepted, "completed", st.Completed, "failed", st.Failed,
		"not_completed", st.InFlight(),
		"requests_accepted", rs.Accepted, "requests_rejected", rs.ClientErrors,
		"requests_failed", rs.ServerErrors, "decoder_panics", rs.DecoderPanics,
		"took", time.Since(start).Round(time.Millisecond).String(),
	}
	if f, ok := store.(*filesink.Sink); ok {
		fs := f.Stats()
		summary = append(summary, "file_writes", fs.Writes, "file_fsyncs", fs.Fsyncs)
	}
	if n, ok := store.(*natssink.Sink); ok {
		ns := n.Stats()
		summary = append(summary, "nats_published", ns.Published, "nats_retried", ns.Retried,
			"nats_acknowledged", ns.Acknowledged, "nats_abandoned", ns.Abandoned)
	}
	if drainErr != nil {
		summary = append(summary, "error", drainErr.Error())
		log.Error("shutdown incomplete: accepted parcels were not completed", summary...)
		return 1
	}
	log.Info("shutdown complete", summary...)
	return code
}

// reservedFiles is how many file descriptors fastingest keeps out of
// MAX_CONNS's reach: fdlimit's reserve, the connections the server holds
// past MAX_CONNS while refusing them, and the sink's: the file sink's open
// segment, its directory while it is fsynced, a segment being created or
// deleted and the directory read at startup; the NATS sink's connection and
// a second one while it reconnects. 8 covers either with room.
func reservedFiles(sink string) int {
	n := fdlimit.Reserve + server.ConnsBeyondMax
	if sink == "file" || sink == "nats" {
		n += 8
	}
	return n
}

// newSink builds the sink named in the configuration, and the function
// that reports whether it can store parcels (nil for sinks that always can).
func newSink(cfg config, log *slog.Logger) (ingest.Sink, func() error, error) {
	switch cfg.Sink {
	case "null":
		return sink.Null{}, nil, nil
	case "sim":
		s, err := sink.NewSim(cfg.SimMin, cfg.SimMax)
		return s, nil, err
	case "file":
		fsync := cfg.FsyncInterval
		if fsync == 0 {
			fsync = -1 // filesink: fsync after every write
		}
		s, err := filesink.New(filesink.Config{
			Dir: cfg.DataDir, SegmentBytes: cfg.SegmentBytes, SegmentAge: cfg.SegmentAge,
			RetainBytes: cfg.RetainBytes, FsyncInterval: fsync, Durable: cfg.Ack == "persisted",
			Logger: log,
		})
		if err != nil {
			return nil, nil, err
		}
		return s, s.Healthy, nil
	case "nats":
		nc := natssink.DefaultConfig()
		nc.URL, nc.Subject, nc.Stream, nc.Replicas = cfg.NATSURL, cfg.NATSSubject, cfg.NATSStream, cfg.NATSReplicas
		nc.Logger = log
		// New does not wait for NATS: while it is unreachable the sink
		// reports itself unhealthy and fastingest answers 503.
		s, err := natssink.New(context.Background(), nc)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Healthy, nil
	}
	return nil, nil, fmt.Errorf("unknown sink %q", cfg.Sink)
}
