package filesink

// StartupAttrs describes the sink for fastingest's startup log line, as
// slog key-value pairs: the segment posted parcels land in.
func (s *Sink) StartupAttrs() []any {
	attrs := []any{"segment", s.Segment()}
	if d, ok := s.cfg.Shipper.(interface{ StartupAttrs() []any }); ok {
		attrs = append(attrs, d.StartupAttrs()...)
	}
	return attrs
}

// SummaryAttrs describes what the sink did, for fastingest's shutdown
// summary, as slog key-value pairs: its writes and fsyncs, and the open
// segments lost to something else's rm, mv or truncate with the parcels
// they took (written, most of them acknowledged, and gone).
func (s *Sink) SummaryAttrs() []any {
	st := s.Stats()
	attrs := []any{"file_writes", st.Writes, "file_fsyncs", st.Fsyncs,
		"file_segments_lost", st.SegmentsLost, "file_parcels_lost", st.ParcelsLost}
	if d, ok := s.cfg.Shipper.(interface{ SummaryAttrs() []any }); ok {
		attrs = append(attrs, d.SummaryAttrs()...)
	}
	return attrs
}
