package filesink

// StartupAttrs describes the sink for fastingest's startup log line, as
// slog key-value pairs: the segment posted parcels land in.
func (s *Sink) StartupAttrs() []any {
	return []any{"segment", s.Segment()}
}

// SummaryAttrs describes what the sink did, for fastingest's shutdown
// summary, as slog key-value pairs: its writes and fsyncs, and the open
// segments lost to something else's rm, mv or truncate with the parcels
// they took (written, most of them acknowledged, and gone).
func (s *Sink) SummaryAttrs() []any {
	st := s.Stats()
	return []any{"file_writes", st.Writes, "file_fsyncs", st.Fsyncs,
		"file_segments_lost", st.SegmentsLost, "file_parcels_lost", st.ParcelsLost}
}
