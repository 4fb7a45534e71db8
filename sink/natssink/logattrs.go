package natssink

// SummaryAttrs describes what the sink did, for fastingest's shutdown
// summary, as slog key-value pairs.
func (s *Sink) SummaryAttrs() []any {
	st := s.Stats()
	return []any{"nats_published", st.Published, "nats_retried", st.Retried,
		"nats_acknowledged", st.Acknowledged, "nats_abandoned", st.Abandoned}
}
