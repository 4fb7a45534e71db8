// Package svgchart draws the harness's figures as horizontal bar charts in
// hand-written SVG: a chart is a title, a legend and panels side by side,
// each a list of labelled groups of bars on its own axis, linear or
// logarithmic. It uses the standard library only; the output is
// deterministic (same figures, same bytes), so a chart's diff in git is the
// change of its figures.
//
// Text widths are estimated (no font metrics in SVG): labels are sized for a
// 12 px sans-serif font at about 7 px per character.
package svgchart

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// Chart is one SVG image.
type Chart struct {
	Title    string
	Subtitle string   // one line under the title: where the figures come from
	Series   []Series // what a Segment's Series indexes: colours and legend
	Legend   bool     // draw the legend (when colour carries meaning)
	Panels   []Panel  // drawn left to right
	Notes    []string // lines under the panels
}

// Series is a kind of bar: its name in the legend and value labels, its
// colour.
type Series struct {
	Name  string
	Color string // any SVG colour; empty: a colour of the palette
}

// Panel is a bar chart with one axis.
type Panel struct {
	Title  string
	Unit   string // after each value label ("ms"); may be empty
	Log    bool   // a logarithmic axis, for figures spanning decades
	Groups []Group
	// Format writes a value for its label; nil: up to 3 significant digits.
	Format func(float64) string
	// SeriesInLabel starts each value label with its series' name ("p99
	// 1.96 ms"), so that the figure does not rest on colour alone.
	SeriesInLabel bool
}

// Group is a labelled set of bars (a server, with one bar per percentile).
type Group struct {
	Label string
	Bars  []Bar
}

// Bar is one bar, made of one segment or of several stacked ones (a linear
// panel only).
type Bar struct {
	Segments []Segment
}

// Segment is a part of a bar. A NaN or non-positive value draws nothing; on a
// logarithmic panel a bar of several segments draws only its first.
type Segment struct {
	Value  float64
	Series int
}

// palette is Okabe and Ito's colour-blind-safe palette, yellow left out (too
// pale on white).
var palette = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999999"}

// Layout, in pixels.
const (
	width      = 480 // of a panel
	charW      = 7.0 // estimated width of a character of the 12 px font
	barH       = 16
	barGap     = 3
	groupGap   = 12
	marginX    = 16
	headerH    = 58 // title and subtitle
	legendH    = 24
	panelTopH  = 26 // panel title
	axisH      = 30 // tick labels under the bars
	noteLineH  = 16
	panelGapX  = 24
	labelRoomX = 150 // the most a value label may overhang a full bar
)

// color returns the colour of series i.
func (c *Chart) color(i int) string {
	if i >= 0 && i < len(c.Series) && c.Series[i].Color != "" {
		return c.Series[i].Color
	}
	return palette[((i%len(palette))+len(palette))%len(palette)]
}

// seriesName returns the name of series i, empty if there is none.
func (c *Chart) seriesName(i int) string {
	if i >= 0 && i < len(c.Series) {
		return c.Series[i].Name
	}
	return ""
}

// SVG renders the chart.
func (c *Chart) SVG() []byte {
	top := float64(headerH)
	if c.Legend && len(c.Series) > 0 {
		top += legendH
	}
	panelsH := 0.0
	for i := range c.Panels {
		panelsH = math.Max(panelsH, c.Panels[i].height())
	}
	// As wide as the panels at their narrowest or as the longest text;
	// panels share what the text asks for beyond them.
	gaps := float64(max(len(c.Panels)-1, 0) * panelGapX)
	w := math.Max(float64(len(c.Panels)*width)+gaps, c.textWidth()) + 2*marginX
	panelW := float64(width)
	if len(c.Panels) > 0 {
		panelW = (w - 2*marginX - gaps) / float64(len(c.Panels))
	}
	h := top + panelsH + float64(len(c.Notes)*noteLineH) + 12

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" role="img" aria-labelledby="title desc" font-family="Helvetica, Arial, sans-serif" font-size="12">`+"\n",
		num(w), num(h), num(w), num(h))
	fmt.Fprintf(&b, "<title id=\"title\">%s</title>\n<desc id=\"desc\">%s</desc>\n", esc(c.Title), esc(c.describe()))
	// A background of its own: the chart stays readable on a dark page.
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="#ffffff"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" font-weight="bold" fill="#222">%s</text>`+"\n", marginX, esc(c.Title))
	if c.Subtitle != "" {
		fmt.Fprintf(&b, `<text x="%d" y="44" fill="#555">%s</text>`+"\n", marginX, esc(c.Subtitle))
	}
	if c.Legend {
		c.legend(&b, headerH)
	}
	for i := range c.Panels {
		x := marginX + float64(i)*(panelW+panelGapX)
		c.panel(&b, &c.Panels[i], x, top, panelW)
	}
	y := top + panelsH + noteLineH
	for _, n := range c.Notes {
		fmt.Fprintf(&b, `<text x="%d" y="%s" font-size="11" fill="#555">%s</text>`+"\n", marginX, num(y), esc(n))
		y += noteLineH
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

// legend draws a swatch and a name per series, in a row.
func (c *Chart) legend(b *bytes.Buffer, y float64) {
	x := float64(marginX)
	for i, s := range c.Series {
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="12" height="12" fill="%s"/>`, num(x), num(y+2), c.color(i))
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="#222">%s</text>`+"\n", num(x+16), num(y+12), esc(s.Name))
		x += 16 + textWidth(s.Name) + 18
	}
}

// textWidth returns the width of the chart's longest line of text: title
// (16 px bold), subtitle, notes (11 px).
func (c *Chart) textWidth() float64 {
	w := math.Max(textWidth(c.Title)*16/12*1.05, textWidth(c.Subtitle))
	for _, n := range c.Notes {
		w = math.Max(w, textWidth(n)*11/12)
	}
	legend := 0.0
	if c.Legend {
		for _, s := range c.Series {
			legend += 16 + textWidth(s.Name) + 18
		}
	}
	return math.Max(w, legend)
}

// height returns the panel's height: title, bars, axis.
func (p *Panel) height() float64 {
	h := float64(panelTopH + axisH)
	for i, g := range p.Groups {
		if i > 0 {
			h += groupGap
		}
		h += float64(len(g.Bars)*barH + max(len(g.Bars)-1, 0)*barGap)
	}
	return h
}

// labelWidth returns the room the group labels take on the left of a panel
// w pixels wide.
func (p *Panel) labelWidth(w float64) float64 {
	lw := 0.0
	for _, g := range p.Groups {
		lw = math.Max(lw, textWidth(g.Label))
	}
	return math.Min(lw+8, w/2)
}

// panel draws a panel w pixels wide with its top-left corner at x, y.
func (c *Chart) panel(b *bytes.Buffer, p *Panel, x, y, w float64) {
	title := p.Title
	if p.Log {
		title += " (log scale)"
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" font-weight="bold" fill="#222">%s</text>`+"\n", num(x), num(y+16), esc(title))
	x0 := x + p.labelWidth(w)
	plotW := w - p.labelWidth(w) - labelRoomX
	sc := p.scale(plotW)
	top := y + panelTopH
	bottom := y + p.height() - axisH

	// Grid lines and tick labels first, bars over them.
	for _, t := range sc.ticks {
		tx := x0 + sc.x(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e2e2e2"/>`, num(tx), num(top-4), num(tx), num(bottom+2))
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle" font-size="11" fill="#555">%s</text>`+"\n",
			num(tx), num(bottom+16), esc(tickLabel(t)))
	}
	fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888"/>`+"\n", num(x0), num(top-4), num(x0), num(bottom+2))

	by := top
	for gi, g := range p.Groups {
		if gi > 0 {
			by += groupGap
		}
		gh := float64(len(g.Bars)*barH + max(len(g.Bars)-1, 0)*barGap)
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end" fill="#222">%s</text>`+"\n",
			num(x0-6), num(by+gh/2+4), esc(g.Label))
		for _, bar := range g.Bars {
			c.bar(b, p, sc, bar, x0, by)
			by += barH + barGap
		}
		by -= barGap
	}
}

// bar draws one bar (its segments stacked) and its value label.
func (c *Chart) bar(b *bytes.Buffer, p *Panel, sc scale, bar Bar, x0, y float64) {
	segs := bar.Segments
	if p.Log && len(segs) > 1 {
		segs = segs[:1]
	}
	end := x0
	var parts []string
	for _, s := range segs {
		if !(s.Value > 0) || math.IsInf(s.Value, 0) {
			continue
		}
		// Linear: segments stack, each as long as its value. Log: one
		// segment, from the axis's origin.
		w, x := sc.x(s.Value), end
		fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
			num(x), num(y), num(math.Max(w, 0.5)), barH, c.color(s.Series), esc(c.segmentText(p, s)))
		end = x + w
		parts = append(parts, p.format(s.Value))
	}
	if len(parts) == 0 {
		fmt.Fprintf(b, `<text x="%s" y="%s" fill="#555">no figure</text>`+"\n", num(x0+4), num(y+12))
		return
	}
	label := strings.Join(parts, " + ")
	if p.Unit != "" {
		label += " " + p.Unit
	}
	if p.SeriesInLabel {
		if name := c.seriesName(segs[0].Series); name != "" {
			label = name + " " + label
		}
	}
	fmt.Fprintf(b, `<text x="%s" y="%s" fill="#222">%s</text>`+"\n", num(end+4), num(y+12), esc(label))
}

// segmentText is a segment's tooltip and description: series, value, unit.
func (c *Chart) segmentText(p *Panel, s Segment) string {
	t := p.format(s.Value)
	if p.Unit != "" {
		t += " " + p.Unit
	}
	if name := c.seriesName(s.Series); name != "" {
		t = name + ": " + t
	}
	return t
}

// describe is the text alternative of the chart: every figure, in order.
func (c *Chart) describe() string {
	var parts []string
	if c.Subtitle != "" {
		parts = append(parts, c.Subtitle+".")
	}
	for _, p := range c.Panels {
		var groups []string
		for _, g := range p.Groups {
			var vals []string
			for _, bar := range g.Bars {
				for _, s := range bar.Segments {
					if s.Value > 0 && !math.IsInf(s.Value, 0) {
						vals = append(vals, c.segmentText(&p, s))
					}
				}
			}
			if len(vals) == 0 {
				vals = []string{"no figure"}
			}
			groups = append(groups, g.Label+" "+strings.Join(vals, ", "))
		}
		parts = append(parts, p.Title+": "+strings.Join(groups, "; ")+".")
	}
	return strings.Join(parts, " ")
}

func (p *Panel) format(v float64) string {
	if p.Format != nil {
		return p.Format(v)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// textWidth estimates the width of s in the 12 px font.
func textWidth(s string) float64 {
	return float64(len([]rune(s))) * charW
}

// num writes a coordinate: at most one decimal, no trailing zeros.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64)
}

// esc escapes text for SVG.
func esc(s string) string {
	return html.EscapeString(s)
}
