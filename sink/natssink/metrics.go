package natssink

import (
	"io"
	"time"

	"github.com/fastingest/fastingest/internal/promtext"
)

// ackLatencyBuckets: 250 µs to 30 s, from a server on the same host to a
// stream leader's election.
var ackLatencyBuckets = []time.Duration{
	250 * time.Microsecond, 500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond, time.Second,
	2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// WriteMetrics writes the sink's metrics in the Prometheus text format,
// with HELP and TYPE lines; fastingest registers it with /metrics.
func (s *Sink) WriteMetrics(w io.Writer) {
	st := s.Stats()
	ready := uint64(0)
	if s.Healthy() == nil {
		ready = 1
	}
	promtext.Counter(w, "fastingest_nats_published_total", "Messages published to JetStream, retries included.", st.Published)
	promtext.Counter(w, "fastingest_nats_retried_total",
		"Publishes of a parcel after a failed one: no acknowledgement within the ack wait, a lost connection, or JetStream's refusal.",
		st.Retried)
	promtext.Counter(w, "fastingest_nats_acknowledged_total", "Parcels JetStream acknowledged (a duplicate's acknowledgement too: the message is stored).",
		st.Acknowledged)
	promtext.Counter(w, "fastingest_nats_abandoned_total", "Parcels given up on at the shutdown deadline, each counted as failed.", st.Abandoned)
	promtext.Gauge(w, "fastingest_nats_pending", "Parcels the sink holds: published and awaiting JetStream's acknowledgement, or waiting to be published again.",
		uint64(len(s.slots)))
	promtext.Gauge(w, "fastingest_nats_pending_capacity", "Most parcels the sink holds before Store waits.", uint64(cap(s.slots)))
	promtext.Gauge(w, "fastingest_nats_ready", "1 while connected to NATS with the stream known to exist; else 0.", ready)
	s.ackLatency.WriteFamily(w, "Time from a message's (latest) publish to JetStream's acknowledgement.")
}
