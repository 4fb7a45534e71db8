package s3ship

import (
	"io"
	"time"

	"github.com/fastingest/fastingest/internal/promtext"
)

// WriteMetrics writes the shipper's metrics in the Prometheus text format,
// with HELP and TYPE lines.
func (s *Shipper) WriteMetrics(w io.Writer) {
	promtext.Counter(w, "fastingest_s3_segments_shipped_total", "Segments uploaded to S3.", s.segmentsShipped.Load())
	promtext.Counter(w, "fastingest_s3_shipped_bytes_total", "Bytes of the segments uploaded to S3, before compression.", s.bytesShipped.Load())
	promtext.Counter(w, "fastingest_s3_uploaded_bytes_total", "Bytes of the objects uploaded to S3, compressed.", s.bytesUploaded.Load())
	promtext.Counter(w, "fastingest_s3_upload_errors_total", "Segment uploads to S3 that failed; each is retried with backoff.", s.uploadErrors.Load())
	promtext.Counter(w, "fastingest_s3_segments_missing_total", "Segments deleted by something else before they shipped.", s.missing.Load())
	segs, bytes, oldest := s.backlog()
	age := 0.0
	if !oldest.IsZero() {
		age = max(time.Since(oldest).Seconds(), 0)
	}
	promtext.GaugeFloat(w, "fastingest_s3_backlog_segments", "Closed segments not shipped yet.", float64(segs))
	promtext.GaugeFloat(w, "fastingest_s3_backlog_bytes", "Bytes of the closed segments not shipped yet.", float64(bytes))
	promtext.GaugeFloat(w, "fastingest_s3_backlog_oldest_age_seconds", "Time since the oldest segment not shipped yet was closed; 0 without a backlog.", age)
	s.latency.WriteFamily(w, "Time to upload one segment to S3, compression included.")
}

// SummaryAttrs describes what the shipper did, for fastingest's shutdown
// summary.
func (s *Shipper) SummaryAttrs() []any {
	segs, _, _ := s.backlog()
	return []any{"s3_shipped", s.segmentsShipped.Load(), "s3_upload_errors", s.uploadErrors.Load(), "s3_backlog", segs}
}
