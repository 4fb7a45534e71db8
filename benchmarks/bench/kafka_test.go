package main

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestKafkaRunSettings(t *testing.T) {
	if got, want := kafkaTopic("kafka-enqueued", 2), "bench.kafka-enqueued.2"; got != want {
		t.Errorf("kafkaTopic = %q, want %q", got, want)
	}
	got := kafkaSettings("127.0.0.1:1,127.0.0.1:2", "bench.kafka-persisted.1", "persisted")
	want := []string{"SINK=kafka", "ACK=persisted", "KAFKA_BROKERS=127.0.0.1:1,127.0.0.1:2", "KAFKA_TOPIC=bench.kafka-persisted.1"}
	if !slices.Equal(got, want) {
		t.Errorf("kafkaSettings = %v, want %v", got, want)
	}
	cfg := kafkaTopicConfig(6)
	if v := cfg["retention.bytes"]; v == nil || *v != "2097152" || len(cfg) != 1 {
		t.Errorf("kafkaTopicConfig(6) = %v, want retention.bytes 2097152 (6 MiB over 3 partitions)", cfg)
	}
}

func TestStoredMiB(t *testing.T) {
	for _, tc := range []struct {
		bytes, held, records int64
		want                 float64
	}{
		{1 << 20, 100, 100, 1},
		{1 << 20, 100, 300, 3}, // retention dropped two thirds: scaled up
		{0, 0, 0, 0},
		{0, 0, 50, 0},
	} {
		if got := storedMiB(tc.bytes, tc.held, tc.records); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("storedMiB(%d, %d, %d) = %v, want %v", tc.bytes, tc.held, tc.records, got, tc.want)
		}
	}
}

func TestKfakeBrokers(t *testing.T) {
	log := filepath.Join(t.TempDir(), "kfake.log")
	if got := kfakeBrokers(log); got != "" {
		t.Errorf("no log: %q, want nothing", got)
	}
	if err := os.WriteFile(log, []byte("kfake: listening on 127.0.0.1:4001,127.0.0.1:4002 (2 brokers); topic t, 3 partitions\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, want := kfakeBrokers(log), "127.0.0.1:4001,127.0.0.1:4002"; got != want {
		t.Errorf("kfakeBrokers = %q, want %q", got, want)
	}
}

// kafkaResults adds kafka rows to full-run.txt's results: null's CPU per
// request times enq and pers.
func kafkaResults(t *testing.T, enq, pers float64) *results {
	t.Helper()
	r, _ := readResults(t, "full-run.txt")
	var add []row
	for _, x := range r.sinkRows {
		if x.name != "null" {
			continue
		}
		for _, k := range []struct {
			run string
			f   float64
		}{{"kafka-enqueued", enq}, {"kafka-persisted", pers}} {
			y := x
			y.name, y.cpuUS, y.coCPU, y.coUtil, y.storedMiB = k.run, x.cpuUS*k.f, 6, 40, 12.5
			add = append(add, y)
		}
	}
	r.sinkRows = append(r.sinkRows, add...)
	r.sinkRuns = append(r.sinkRuns, "kafka-enqueued", "kafka-persisted")
	r.kfakeRSS = "80.5"
	return r
}

func TestKafkaSummary(t *testing.T) {
	r := kafkaResults(t, 1.5, 2.5)
	null := median(r.sinkRows, "null", "cpu_us_per_req")
	var sb strings.Builder
	writeSummary(&sb, r)
	for _, want := range []string{
		"kafka/enqueued: CPU per request fastingest " + fixed(null*1.5, 2) + " us (kfake 6.00 us apart, 40% of the load generator's CPU) = 1.50 × SINK=null's " + fixed(null, 2) + " us (target ≤ 2.00: met)\n",
		"kafka/persisted: CPU per request fastingest " + fixed(null*2.5, 2) + " us (kfake 6.00 us apart, 40% of the load generator's CPU) = 2.50 × SINK=null's " + fixed(null, 2) + " us\n",
		"kfake peak RSS over the section: 80.5 MiB",
		"(kafka runs: nats us/req is kfake's",
	} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("the summary lacks %q:\n%s", want, sb.String())
		}
	}
	if line := "kafka/enqueued  "; !strings.Contains(sb.String(), line) {
		t.Errorf("the sink table lacks a %q row", line)
	}

	r = kafkaResults(t, 2.2, 3)
	sb.Reset()
	writeKafkaCost(&sb, r)
	if want := "= 2.20 × SINK=null's " + fixed(null, 2) + " us (target ≤ 2.00: NOT met)"; !strings.Contains(sb.String(), want) {
		t.Errorf("not met: lacks %q:\n%s", want, sb.String())
	}

	r.sinkRows = slices.DeleteFunc(r.sinkRows, func(x row) bool { return x.name == "null" })
	sb.Reset()
	writeKafkaCost(&sb, r)
	if want := "; not compared (SINKS must include null)\n"; !strings.Contains(sb.String(), want) {
		t.Errorf("without null: lacks %q:\n%s", want, sb.String())
	}
}

// TestKafkaSummaryParsedBack checks that --charts-from reads back what the
// kafka lines add: kfake's RSS, and a chart with kfake's CPU stacked.
func TestKafkaSummaryParsedBack(t *testing.T) {
	r := kafkaResults(t, 1.5, 2.5)
	var sb strings.Builder
	writeSummary(&sb, r)
	_, file := readResults(t, "full-run.txt")
	before, _, _ := strings.Cut(file, "\n== summary:")
	back, err := parseResults(strings.NewReader(before + sb.String()))
	if err != nil {
		t.Fatal(err)
	}
	if back.kfakeRSS != "80.5" {
		t.Errorf("kfakeRSS = %q, want 80.5", back.kfakeRSS)
	}
	c := sinksChart(r, "sub")
	if !strings.Contains(c.Title, "kafka") || len(c.Series) != 3 || c.Series[2].Name != "kfake" {
		t.Errorf("chart: title %q, series %v", c.Title, c.Series)
	}
	svg := string(c.SVG())
	if !strings.Contains(svg, "kfake") || !strings.Contains(svg, "kafka/persisted") {
		t.Errorf("the chart lacks kfake or kafka/persisted")
	}
}
