package filesink

import (
	"io"

	"github.com/fastingest/fastingest/internal/promtext"
)

// WriteMetrics writes the sink's metrics in the Prometheus text format,
// with HELP and TYPE lines; fastingest registers it with /metrics.
func (s *Sink) WriteMetrics(w io.Writer) {
	st := s.Stats()
	promtext.Counter(w, "fastingest_file_parcels_written_total", "Parcels the file sink wrote to a segment.", st.Written)
	promtext.Counter(w, "fastingest_file_writes_total", "Write system calls of the file sink, one per group of parcels.", st.Writes)
	promtext.Counter(w, "fastingest_file_fsyncs_total", "Fsyncs of the file sink's segments.", st.Fsyncs)
	promtext.Counter(w, "fastingest_file_segments_lost_total",
		"Open segments deleted, moved, replaced or truncated by something other than fastingest.", st.SegmentsLost)
	promtext.Counter(w, "fastingest_file_parcels_lost_total",
		"Parcels written to a lost segment and no longer in it (acknowledged with ACK=persisted, or queued with ACK=enqueued).",
		st.ParcelsLost)
	promtext.Counter(w, "fastingest_file_segments_repaired_total",
		"Segments found at startup with torn lines or NUL runs, which were cut.", st.SegmentsRepaired)
	promtext.Counter(w, "fastingest_file_cut_bytes_total", "Bytes of torn lines and NUL runs cut from segments at startup.", st.CutBytes)
	blocked := uint64(0)
	if s.retentionFull.Load() {
		blocked = 1
	}
	promtext.Gauge(w, "fastingest_file_retention_blocked",
		"1 while RETAIN_BYTES is full of segments not yet shipped: new requests get 503.", blocked)
	if m, ok := s.cfg.Shipper.(interface{ WriteMetrics(io.Writer) }); ok {
		m.WriteMetrics(w)
	}
}
