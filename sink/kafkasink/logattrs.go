package kafkasink

// SummaryAttrs describes what the sink did, for fastingest's shutdown
// summary, as slog key-value pairs.
func (s *Sink) SummaryAttrs() []any {
	st := s.Stats()
	return []any{"kafka_produced", st.Produced, "kafka_failed", st.Failed, "kafka_abandoned", st.Abandoned}
}
