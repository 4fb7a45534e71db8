package svgchart

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestLinearTicks(t *testing.T) {
	for _, tc := range []struct {
		hi   float64
		want []float64
	}{
		{74622, []float64{0, 20000, 40000, 60000, 80000}},
		{188672, []float64{0, 50000, 100000, 150000, 200000}},
		{5.44, []float64{0, 1, 2, 3, 4, 5, 6}},
		{42.86, []float64{0, 10, 20, 30, 40, 50}},
		{1, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}},
		{0.3, []float64{0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3}},
		{100, []float64{0, 20, 40, 60, 80, 100}},
	} {
		if got := linearTicks(tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("linearTicks(%v) = %v, want %v", tc.hi, got, tc.want)
		}
	}
}

func TestLogTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   []float64
	}{
		{0.255, 106.78, []float64{0.1, 1, 10, 100, 1000}},
		{1, 100, []float64{1, 10, 100}},
		{2, 3, []float64{1, 10}},
		{10, 10, []float64{10, 100}},
		{0.0005, 0.004, []float64{0.0001, 0.001, 0.01}},
	} {
		if got := logTicks(tc.lo, tc.hi); !slices.Equal(got, tc.want) {
			t.Errorf("logTicks(%v, %v) = %v, want %v", tc.lo, tc.hi, got, tc.want)
		}
	}
}

func TestTickLabel(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {0.1, "0.1"}, {0.25, "0.25"}, {6, "6"}, {500, "500"}, {20000, "20k"},
		{150000, "150k"}, {1e6, "1M"}, {1.5e6, "1.5M"}, {0.0001, "0.0001"},
	} {
		if got := tickLabel(tc.v); got != tc.want {
			t.Errorf("tickLabel(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

// rect is a bar of a rendered chart.
type rect struct {
	Width float64
	Title string
}

// render renders c, checks that it is well-formed XML with an SVG root, and
// returns its bars (the rects with a title) and its text.
func render(t *testing.T, c *Chart) (bars []rect, text string) {
	t.Helper()
	out := c.SVG()
	if !bytes.Equal(out, c.SVG()) {
		t.Fatal("two renderings of the same chart differ")
	}
	d := xml.NewDecoder(bytes.NewReader(out))
	var texts []string
	var stack []string
	var cur *rect
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, out)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 && (tok.Name.Local != "svg" || tok.Name.Space != "http://www.w3.org/2000/svg") {
				t.Fatalf("root element %v, want svg in the SVG namespace", tok.Name)
			}
			stack = append(stack, tok.Name.Local)
			if tok.Name.Local == "rect" {
				cur = &rect{Width: -1}
				for _, a := range tok.Attr {
					if a.Name.Local == "width" && !strings.HasSuffix(a.Value, "%") {
						cur.Width, _ = strconv.ParseFloat(a.Value, 64)
					}
				}
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if tok.Name.Local == "rect" && cur != nil {
				if cur.Title != "" {
					bars = append(bars, *cur)
				}
				cur = nil
			}
		case xml.CharData:
			if cur != nil && stack[len(stack)-1] == "title" {
				cur.Title += string(tok)
			} else if len(stack) > 0 && (stack[len(stack)-1] == "text" || stack[len(stack)-1] == "desc") {
				texts = append(texts, string(tok))
			}
		}
	}
	return bars, strings.Join(texts, "\n")
}

func TestChartLinear(t *testing.T) {
	c := &Chart{
		Title:    "req/s <median> & more",
		Subtitle: "run 2026-11-29-111453",
		Series:   []Series{{Name: "fastingest"}, {Name: "nats-server", Color: "#D55E00"}},
		Legend:   true,
		Panels: []Panel{{
			Title: "CPU per request",
			Unit:  "µs",
			Groups: []Group{
				{Label: "null", Bars: []Bar{{Segments: []Segment{{Value: 20, Series: 0}}}}},
				{Label: "nats/enqueued", Bars: []Bar{{Segments: []Segment{{Value: 40, Series: 0}, {Value: 40, Series: 1}}}}},
				{Label: "failed", Bars: []Bar{{Segments: []Segment{{Value: math.NaN()}}}}},
			},
		}},
		Notes: []string{"a note"},
	}
	bars, text := render(t, c)
	if len(bars) != 3 {
		t.Fatalf("got %d bars, want 3: %+v", len(bars), bars)
	}
	// 20 is a quarter of the stacked 80, and each segment as long as its value.
	if got, want := bars[1].Width/bars[0].Width, 2.0; math.Abs(got-want) > 0.02 {
		t.Errorf("width of 40 over width of 20 = %v, want %v", got, want)
	}
	if bars[1].Width != bars[2].Width {
		t.Errorf("two stacked segments of 40: widths %v and %v, want equal", bars[1].Width, bars[2].Width)
	}
	if got, want := bars[2].Title, "nats-server: 40 µs"; got != want {
		t.Errorf("segment title %q, want %q", got, want)
	}
	for _, want := range []string{"req/s <median> & more", "run 2026-11-29-111453", "null", "nats/enqueued",
		"40 + 40 µs", "no figure", "a note", "fastingest", "nats-server", "failed no figure"} {
		if !strings.Contains(text, want) {
			t.Errorf("the chart's text lacks %q:\n%s", want, text)
		}
	}
}

func TestChartLog(t *testing.T) {
	c := &Chart{
		Title:  "latency",
		Series: []Series{{Name: "p50"}, {Name: "p99"}},
		Panels: []Panel{{
			Title:         "ms",
			Unit:          "ms",
			Log:           true,
			SeriesInLabel: true,
			Format:        func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) },
			Groups: []Group{{Label: "classic", Bars: []Bar{
				{Segments: []Segment{{Value: 1, Series: 0}}},
				{Segments: []Segment{{Value: 100, Series: 1}}},
				{Segments: []Segment{{Value: 0, Series: 1}}}, // nothing to draw on a log axis
			}}},
		}},
	}
	bars, text := render(t, c)
	if len(bars) != 2 {
		t.Fatalf("got %d bars, want 2: %+v", len(bars), bars)
	}
	// The axis runs 1 to 100: 1 sits on it, 100 at its end.
	if bars[0].Width > 0.5 || bars[1].Width < 100 {
		t.Errorf("log bars of 1 and 100 on a 1–100 axis: widths %v and %v", bars[0].Width, bars[1].Width)
	}
	for _, want := range []string{"p50 1.00 ms", "p99 100.00 ms", "log scale", "no figure"} {
		if !strings.Contains(text, want) {
			t.Errorf("the chart's text lacks %q:\n%s", want, text)
		}
	}
}

func TestChartEmpty(t *testing.T) {
	bars, _ := render(t, &Chart{Title: "nothing", Panels: []Panel{{Title: "empty"}, {Title: "log", Log: true}}})
	if len(bars) != 0 {
		t.Errorf("an empty chart drew bars: %+v", bars)
	}
}
