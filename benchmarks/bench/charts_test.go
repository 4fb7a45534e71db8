package main

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestBuildCharts(t *testing.T) {
	r, _ := readResults(t, "full-run.txt")
	cs := buildCharts(r, "benchmarks/results/2026-11-29-111453.txt")
	var names []string
	for _, c := range cs {
		names = append(names, c.name)
	}
	if want := []string{"servers.svg", "latency.svg", "sinks.svg"}; !slices.Equal(names, want) {
		t.Fatalf("charts %v, want %v", names, want)
	}
	dir := t.TempDir()
	paths, err := writeCharts(dir, cs)
	if err != nil {
		t.Fatal(err)
	}
	// Each chart is well-formed and carries its figures in its text (the
	// medians of the file's rounds), where a reader and a diff find them.
	for i, want := range [][]string{
		{"74,622", "23,308", "179,427", "13.38 µs", "42.86 µs", "5.44 µs", "3.20x classic", "commit 23d1810"},
		{"p50 0.860 ms", "p99 1.96 ms", "p99 106.8 ms", "fastingest at 16,667 req/s", "p99.9 5.24 ms", "log scale"},
		{"file/enqueued (0.80×)", "file/persisted (0.45×)", "59,265", "83.2 + 74.8 µs", "nats-server"},
	} {
		text := svgText(t, paths[i])
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("%s lacks %q:\n%s", names[i], w, text)
			}
		}
	}

	// Without sink runs there is no sinks chart; a smoke run says so.
	b, _ := readResults(t, "baseline-run.txt")
	b.smoke = true
	cs = buildCharts(b, "x.txt")
	if len(cs) != 2 {
		t.Fatalf("a run without sinks: %d charts, want 2", len(cs))
	}
	text := svgText(t, writeOne(t, cs[0]))
	for _, w := range []string{"SMOKE RUN", "fastingest@23d1810", "74,693", "fastingest over fastingest@23d1810, the same rounds: req/s 1.00x"} {
		if !strings.Contains(text, w) {
			t.Errorf("servers.svg of a baseline run lacks %q:\n%s", w, text)
		}
	}
}

// writeOne writes a chart and returns its path.
func writeOne(t *testing.T, c chartFile) string {
	t.Helper()
	paths, err := writeCharts(t.TempDir(), []chartFile{c})
	if err != nil {
		t.Fatal(err)
	}
	return paths[0]
}

// svgText returns the text of an SVG file, failing if it is not well-formed.
func svgText(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	var sb strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed: %v", filepath.Base(path), err)
		}
		if cd, ok := tok.(xml.CharData); ok {
			sb.Write(cd)
			sb.WriteByte('\n')
		}
	}
	return sb.String()
}

func TestFormats(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{thousands(74622.4), "74,622"},
		{thousands(179427), "179,427"},
		{thousands(11320338), "11,320,338"},
		{thousands(999), "999"},
		{thousands(1000), "1,000"},
		{thousands(-1234), "-1,234"},
		{thousands(0), "0"},
		{significant(0.86), "0.860"},
		{significant(0.276), "0.276"},
		{significant(1.96), "1.96"},
		{significant(29.7), "29.7"},
		{significant(106.78), "106.8"},
		{significant(0.0423), "0.0423"},
		{decimals(2)(13.384), "13.38"},
		{ratioX(3, 2), "1.50x"},
		{ratioX(3, 0), "-"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
