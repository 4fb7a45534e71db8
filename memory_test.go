package main

import "testing"

// TestMemoryBound checks the bound's terms against the settings that make
// them, for the defaults and for a small configuration computed by hand.
func TestMemoryBound(t *testing.T) {
	small := config{MaxConns: 100, MaxHeaderBytes: 4 << 10, MaxQueueBytes: 8 << 20, MaxBodyBytes: 1 << 20,
		MaxQueue: 1000, MaxWorkers: 10}
	m := small.memoryBound()
	if got, want := m.Connections, int64(100*(4<<10+memConnOverhead)); got != want {
		t.Errorf("Connections = %d; want %d (MAX_CONNS × (MAX_HEADER_BYTES + overhead))", got, want)
	}
	if got, want := m.Bodies, int64(16<<20); got != want {
		t.Errorf("Bodies = %d; want %d (2 × MAX_QUEUE_BYTES)", got, want)
	}
	if got, want := m.Decompressors, int64(8*memDecompressor); got != want {
		t.Errorf("Decompressors = %d; want %d (MAX_QUEUE_BYTES / MAX_BODY_BYTES of them)", got, want)
	}
	if got, want := m.Total(), memBase+2*m.Live(); got != want {
		t.Errorf("Total = %d; want %d", got, want)
	}

	// The sink's buffers.
	for _, tt := range []struct {
		c    config
		want int64
	}{
		{config{Sink: "null"}, 0},
		{config{Sink: "file"}, memFileGroups},
		{config{Sink: "file", S3Bucket: "b", S3UploadConcurrency: 3}, memFileGroups + 3*memS3Upload},
		{config{Sink: "nats", MaxQueueBytes: 8 << 20}, 8 << 20},
		{config{Sink: "kafka", MaxQueueBytes: 8 << 20, KafkaMaxBuffered: 4 << 20}, 4 << 20},
	} {
		if got := tt.c.sinkMemory(); got != tt.want {
			t.Errorf("sinkMemory(%+v) = %d; want %d", tt.c, got, tt.want)
		}
	}

	// Each setting that holds memory raises the bound.
	for name, grow := range map[string]func(*config){
		"MAX_CONNS":        func(c *config) { c.MaxConns *= 2 },
		"MAX_HEADER_BYTES": func(c *config) { c.MaxHeaderBytes *= 2 },
		"MAX_QUEUE_BYTES":  func(c *config) { c.MaxQueueBytes *= 2 },
		"MAX_QUEUE":        func(c *config) { c.MaxQueue *= 2 },
		"MAX_WORKERS":      func(c *config) { c.MaxWorkers *= 2 },
	} {
		c := small
		grow(&c)
		if c.memoryBound().Total() <= m.Total() {
			t.Errorf("doubling %s does not raise the bound (%d)", name, m.Total())
		}
	}

	// The defaults fit the 4 GiB instance the EC2 deployment uses.
	def, err := loadConfig(nil, func(string) (string, bool) { return "", false }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if total := def.memoryBound().Total(); total > 3<<30 {
		t.Errorf("the defaults' bound is %s; want it under 3 GiB", formatMiB(total))
	} else {
		t.Logf("defaults: %s (%+v)", formatMiB(total), def.memoryBound())
	}
}
