package kafkasink

import (
	"io"
	"time"

	"github.com/fastingest/fastingest/internal/promtext"
)

// latencyBuckets: 1 ms to 30 s, from a broker on the same host to a
// failover.
var latencyBuckets = []time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// WriteMetrics writes the sink's metrics in the Prometheus text format,
// with HELP and TYPE lines; fastingest registers it with /metrics.
func (s *Sink) WriteMetrics(w io.Writer) {
	st := s.Stats()
	records, bytes := s.Buffered()
	ready := uint64(0)
	if s.Healthy() == nil {
		ready = 1
	}
	promtext.Counter(w, "fastingest_kafka_records_produced_total", "Records the Kafka brokers acknowledged (acks=all).", st.Produced)
	promtext.Counter(w, "fastingest_kafka_produce_errors_total",
		"Records whose produce failed for good, each parcel counted as failed; records given up on at shutdown included.",
		st.Failed+st.Abandoned)
	promtext.Gauge(w, "fastingest_kafka_buffered_records", "Records handed to the Kafka producer and not yet acknowledged.", uint64(max(records, 0)))
	promtext.Gauge(w, "fastingest_kafka_buffered_bytes",
		"Bytes (keys, values, headers, before compression) of the records not yet acknowledged; at most KAFKA_MAX_BUFFERED.",
		uint64(max(bytes, 0)))
	promtext.Gauge(w, "fastingest_kafka_ready", "1 while a broker answers, the topic exists and every partition has a leader; else 0.", ready)
	s.latency.WriteFamily(w, "Time from a record handed to the producer to its acknowledgement or failure.")
}
