package svgchart

import (
	"math"
	"strconv"
	"strings"
)

// scale maps values to distances from a panel's axis.
type scale struct {
	log    bool
	lo, hi float64 // the domain: [0, hi] linear, [lo, hi] logarithmic
	w      float64 // the length of the domain, in pixels
	ticks  []float64
}

// x returns the distance of v from the axis, in pixels.
func (s scale) x(v float64) float64 {
	if s.log {
		return s.w * (math.Log10(v) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	}
	return s.w * v / s.hi
}

// scale returns the panel's scale over w pixels, from its positive values.
func (p *Panel) scale(w float64) scale {
	lo, hi := math.Inf(1), 0.0
	for _, g := range p.Groups {
		for _, bar := range g.Bars {
			sum := 0.0
			for i, s := range bar.Segments {
				if !(s.Value > 0) || math.IsInf(s.Value, 0) {
					continue
				}
				lo = math.Min(lo, s.Value)
				if p.Log && i > 0 {
					break // only the first segment is drawn
				}
				sum += s.Value
			}
			hi = math.Max(hi, sum)
		}
	}
	if hi == 0 { // no figure at all: an axis all the same
		lo, hi = 1, 1
	}
	if p.Log {
		t := logTicks(lo, hi)
		return scale{log: true, lo: t[0], hi: t[len(t)-1], w: w, ticks: t}
	}
	t := linearTicks(hi)
	return scale{lo: 0, hi: t[len(t)-1], w: w, ticks: t}
}

// linearTicks returns ticks from 0 to the first tick at or above hi (> 0),
// a step of 1, 2 or 5 times a power of ten, at most 6 intervals.
func linearTicks(hi float64) []float64 {
	mag := math.Pow(10, math.Floor(math.Log10(hi)))
	var step float64
	for _, m := range []float64{0.1, 0.2, 0.5, 1, 2, 5, 10} {
		step = m * mag
		if math.Ceil(hi/step-1e-9) <= 6 {
			break
		}
	}
	n := int(math.Ceil(hi/step - 1e-9))
	ticks := make([]float64, n+1)
	for i := range ticks {
		// i*step, not a running sum: no 0.30000000000000004.
		ticks[i] = roundSig(float64(i) * step)
	}
	return ticks
}

// logTicks returns the powers of ten from the one at or below lo to the one
// at or above hi (0 < lo <= hi), at least two.
func logTicks(lo, hi float64) []float64 {
	a := int(math.Floor(math.Log10(lo) + 1e-9))
	b := int(math.Ceil(math.Log10(hi) - 1e-9))
	if b <= a {
		b = a + 1
	}
	ticks := make([]float64, 0, b-a+1)
	for e := a; e <= b; e++ {
		ticks = append(ticks, roundSig(math.Pow(10, float64(e))))
	}
	return ticks
}

// roundSig rounds v to 12 significant digits, dropping floating-point dust.
func roundSig(v float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
	return r
}

// tickLabel writes a tick compactly: 0, 0.01, 2.5, 500, 50k, 1.5M.
func tickLabel(v float64) string {
	suffix := ""
	switch {
	case v >= 1e6:
		v, suffix = v/1e6, "M"
	case v >= 1e3:
		v, suffix = v/1e3, "k"
	}
	s := strconv.FormatFloat(roundSig(v), 'f', -1, 64)
	if strings.Contains(s, ".") && len(s) > 6 {
		s = strconv.FormatFloat(v, 'g', 3, 64)
	}
	return s + suffix
}
