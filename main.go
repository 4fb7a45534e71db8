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
	"github.com/fastingest/fastingest/sink/kafkasink"
	"github.com/fastingest/fastingest/sink/natssink"
)

func main() {
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr))
}

// run starts fastingest and returns its exit code: 0 after a clean shutdown
// (and after -h or -version, which print to stdout), 1 on a runtime failure
// or an unfinished drain, 2 on invalid configuration.
func run(args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, lookupEnv, stdout)
	if errors.Is(err, flag.ErrHelp) || errors.Is(err, errVersion) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "fastingest:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	a, code := start(cfg, log, stderr)
	if a == nil {
		return code
	}
	code, hurry := a.serve()
	return a.shutdown(code, hurry)
}

// app is a started fastingest: the parts serve and shutdown work with.
type app struct {
	cfg        config
	log        *slog.Logger
	store      ingest.Sink
	dispatcher *ingest.Dispatcher
	srv        *server.Server
	signals    chan os.Signal // SIGINT and SIGTERM
	serveErr   chan error     // what srv.Serve returned
}

// startupDescriber is a sink with something to add to the startup line
// (the file sink: the segment posted parcels land in).
type startupDescriber interface{ StartupAttrs() []any }

// summarizer is a sink that counts what it did, for the shutdown summary.
type summarizer interface{ SummaryAttrs() []any }

// metricsWriter is a sink with metrics of its own for /metrics (the file
// sink: lost segments, and shipping to S3).
type metricsWriter interface{ WriteMetrics(w io.Writer) }

// start builds the parts from cfg, listens and starts serving. When it
// fails it has said why, on stderr or in the log, and returns a nil app and
// the exit code: 2 for a configuration fastingest cannot use, 1 otherwise.
func start(cfg config, log *slog.Logger, stderr io.Writer) (*app, int) {
	invalid := func(err error) (*app, int) {
		fmt.Fprintln(stderr, "fastingest:", err)
		return nil, 2
	}
	// MAX_CONNS connections and what the process needs besides must fit
	// in the open-file limit: lowered, with a WARN line, when they do not.
	files, err := fdlimit.Fit(cfg.MaxConns, reservedFiles(cfg), log)
	if err != nil {
		return invalid(err)
	}
	cfg.MaxConns = files.MaxConns
	tlsConfig, err := cfg.loadSecrets()
	if err != nil {
		return invalid(err)
	}

	store, health, err := newSink(cfg, log)
	if err != nil {
		log.Error("cannot start the sink", "sink", cfg.Sink, "err", err)
		return nil, 1
	}
	registry := metrics.NewSet() // what /metrics serves
	build := readBuildInfo()
	buildMetric := build.metric()
	registry.RegisterMetricsWriter(func(w io.Writer) { _, _ = io.WriteString(w, buildMetric) })
	if m, ok := store.(metricsWriter); ok {
		registry.RegisterMetricsWriter(m.WriteMetrics)
	}
	dispatcher, err := ingest.New(ingest.Config{
		MaxQueue: cfg.MaxQueue, MaxQueueBytes: cfg.MaxQueueBytes, MaxWorkers: cfg.MaxWorkers, Shards: cfg.Shards, Sink: store,
		EnqueueTimeout: cfg.EnqueueTimeout, Metrics: registry, Logger: log,
	})
	if err != nil {
		if d, ok := store.(ingest.DeferredSink); ok {
			_ = d.Close(context.Background()) // holds nothing yet
		}
		return invalid(err)
	}
	// abandon releases the sink (its connection, an empty segment) when
	// startup fails after this point; the queue is empty.
	abandon := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = dispatcher.Shutdown(ctx)
	}
	srv, err := server.New(server.Config{
		MaxBodyBytes: cfg.MaxBodyBytes, Ack: cfg.Ack, AckTimeout: cfg.AckTimeout,
		SinkHealth: health, QueueWait: dispatcher.RecentQueueWait, ReadyMaxQueueWait: cfg.ReadyMaxQueueWait,
		MaxConns: cfg.MaxConns, MaxHeaderBytes: int(cfg.MaxHeaderBytes),
		ReadTimeout: cfg.ReadTimeout, WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout,
		AuthToken: cfg.AuthToken, MetricsPublic: cfg.MetricsPublic, Metrics: registry, Logger: log,
		TLSConfig: tlsConfig,
	}, dispatcher)
	if err != nil {
		abandon()
		fmt.Fprintln(stderr, "fastingest:", err)
		return nil, 1
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		abandon()
		log.Error("cannot listen", "addr", cfg.Addr, "err", err)
		return nil, 1
	}
	a := &app{cfg: cfg, log: log, store: store, dispatcher: dispatcher, srv: srv,
		signals: make(chan os.Signal, 2), serveErr: make(chan error, 1)}
	signal.Notify(a.signals, syscall.SIGINT, syscall.SIGTERM)

	dispatcher.Start()
	go func() { a.serveErr <- srv.Serve(ln) }()
	// The memory bound is that of the MAX_CONNS Fit left, the one served.
	attrs := []any{"listen", ln.Addr().String(), "version", build.Version, "nofile", files.NoFile,
		"memory_bound", formatMiB(cfg.memoryBound().Total()), "shards", dispatcher.Stats().Shards}
	attrs = append(attrs, cfg.logAttrs()...)
	if d, ok := store.(startupDescriber); ok {
		attrs = append(attrs, d.StartupAttrs()...)
	}
	log.Info("fastingest listening", attrs...)
	return a, 0
}

// serve waits for SIGINT or SIGTERM, or for the server to stop by itself,
// then turns /readyz to 503 and, after a signal, goes on serving for
// DRAIN_DELAY. It returns the exit code so far, and hurry when a second
// signal asked not to wait any longer.
func (a *app) serve() (code int, hurry bool) {
	select {
	case sig := <-a.signals:
		a.log.Info("shutting down: no longer ready, draining requests and queue", "signal", sig.String(),
			"timeout", a.cfg.ShutdownTimeout.String())
	case err := <-a.serveErr:
		a.log.Error("server stopped unexpectedly; draining the queue", "err", err)
		code = 1
	}

	a.srv.Unready()
	if code == 0 && a.cfg.DrainDelay > 0 {
		a.log.Info("still serving for DRAIN_DELAY, with /readyz answering 503, before closing the listener",
			"drain_delay", a.cfg.DrainDelay.String())
		delay := time.NewTimer(a.cfg.DrainDelay)
		select {
		case <-delay.C:
		case sig := <-a.signals:
			delay.Stop()
			a.log.Warn("second signal: not waiting any longer", "signal", sig.String())
			hurry = true
		}
	}
	return code, hurry
}

// shutdown closes the listener, waits for the requests in progress and for
// the queue to drain into the sink, within SHUTDOWN_TIMEOUT (at once with
// hurry, or on another signal), and logs the summary. It returns the exit
// code: code, or 1 when accepted parcels were not completed.
func (a *app) shutdown(code int, hurry bool) int {
	defer signal.Stop(a.signals)
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if hurry {
		cancel()
	}
	go func() {
		select {
		case sig := <-a.signals:
			a.log.Warn("second signal: not waiting any longer", "signal", sig.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	start := time.Now()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.log.Warn("requests still in progress when the shutdown deadline passed", "err", err)
	}
	drainErr := a.dispatcher.Shutdown(ctx)

	st, rs := a.dispatcher.Stats(), a.srv.Stats()
	summary := []any{
		"accepted", st.Accepted, "completed", st.Completed, "failed", st.Failed,
		"not_completed", st.InFlight(),
		"requests_accepted", rs.Accepted, "requests_rejected", rs.ClientErrors,
		"requests_failed", rs.ServerErrors, "decoder_panics", rs.DecoderPanics,
		"took", time.Since(start).Round(time.Millisecond).String(),
	}
	if s, ok := a.store.(summarizer); ok {
		summary = append(summary, s.SummaryAttrs()...)
	}
	if drainErr != nil {
		summary = append(summary, "error", drainErr.Error())
		a.log.Error("shutdown incomplete: accepted parcels were not completed", summary...)
		return 1
	}
	a.log.Info("shutdown complete", summary...)
	return code
}

// reservedFiles is how many file descriptors fastingest keeps out of
// MAX_CONNS's reach: fdlimit's reserve, the connections the server holds
// past MAX_CONNS while refusing them, and the sink's: the file sink's open
// segment, its directory while it is fsynced, a segment being created or
// deleted and the directory read at startup; the NATS sink's connection and
// a second one while it reconnects. 8 covers either with room. The Kafka
// client keeps up to two connections per broker (requests and produce)
// and its seeds': 32 covers a cluster of a dozen brokers. The S3 shipper
// holds a segment and an HTTP connection per upload.
func reservedFiles(cfg config) int {
	n := fdlimit.Reserve + server.ConnsBeyondMax
	switch cfg.Sink {
	case "file", "nats":
		n += 8
	case "kafka":
		n += 32
	}
	if cfg.S3Bucket != "" {
		n += 2 * cfg.S3UploadConcurrency
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
		shipper, err := cfg.newShipper(log) // nil without S3_BUCKET
		if err != nil {
			return nil, nil, err
		}
		s, err := filesink.New(filesink.Config{
			Dir: cfg.DataDir, SegmentBytes: cfg.SegmentBytes, SegmentAge: cfg.SegmentAge,
			RetainBytes: cfg.RetainBytes, FsyncInterval: cfg.FsyncInterval, Durable: cfg.Ack == server.AckPersisted,
			Shipper: shipper, Logger: log,
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
	case "kafka":
		kc := kafkasink.DefaultConfig()
		kc.Brokers, kc.Topic, kc.Compression = cfg.KafkaBrokers, cfg.KafkaTopic, cfg.KafkaCompression
		kc.Linger, kc.MaxBuffered = cfg.KafkaLinger, cfg.KafkaMaxBuffered
		kc.TLS, kc.CAPEM = cfg.KafkaTLS, []byte(cfg.KafkaTLSCAPEM)
		kc.SASLMechanism, kc.SASLUser, kc.SASLPassword = cfg.KafkaSASLMechanism, cfg.KafkaSASLUser, cfg.KafkaSASLPassword
		kc.CreateTopic, kc.Partitions, kc.Replication = cfg.KafkaCreateTopic, cfg.KafkaPartitions, cfg.KafkaReplication
		kc.Logger = log
		// New asks the cluster once (3 s at most) and does not fail when
		// it cannot answer: the sink reports itself unhealthy and
		// fastingest answers 503 until it can.
		s, err := kafkasink.New(context.Background(), kc)
		if err != nil {
			return nil, nil, err
		}
		return s, s.Healthy, nil
	}
	return nil, nil, fmt.Errorf("unknown sink %q", cfg.Sink)
}
