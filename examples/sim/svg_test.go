package sim

import (
	"bytes"
	"fmt"
	"math"
	"slices"
)

// Hand-written SVG plots: a frame with axes, ticks and labels, and the
// data drawn in plot coordinates.

const (
	svgW, svgH = 720, 440
	padL, padR = 70, 20
	padT, padB = 40, 60
)

// plot maps data coordinates to the SVG canvas.
type plot struct {
	b                      bytes.Buffer
	x0, x1, y0, y1         float64 // data range (already log10 on log axes)
	title, xlabel, ylabel  string
	xTicks, yTicks         []float64
	xTickLabel, yTickLabel func(float64) string
}

func (p *plot) px(x float64) float64 {
	return padL + (x-p.x0)/(p.x1-p.x0)*float64(svgW-padL-padR)
}

func (p *plot) py(y float64) float64 {
	return float64(svgH-padB) - (y-p.y0)/(p.y1-p.y0)*float64(svgH-padT-padB)
}

func (p *plot) begin() {
	fmt.Fprintf(&p.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&p.b, `<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	fmt.Fprintf(&p.b, `<text x="%d" y="24" text-anchor="middle" font-size="15">%s</text>`+"\n", svgW/2, esc(p.title))
	left, right := p.px(p.x0), p.px(p.x1)
	top, bottom := p.py(p.y1), p.py(p.y0)
	for _, x := range p.xTicks {
		fmt.Fprintf(&p.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", p.px(x), top, p.px(x), bottom)
		fmt.Fprintf(&p.b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", p.px(x), bottom+16, esc(p.xTickLabel(x)))
	}
	for _, y := range p.yTicks {
		fmt.Fprintf(&p.b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, p.py(y), right, p.py(y))
		fmt.Fprintf(&p.b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, p.py(y)+4, esc(p.yTickLabel(y)))
	}
	fmt.Fprintf(&p.b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="black"/>`+"\n", left, top, right-left, bottom-top)
	fmt.Fprintf(&p.b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", (left+right)/2, svgH-18, esc(p.xlabel))
	fmt.Fprintf(&p.b, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">%s</text>`+"\n", (top+bottom)/2, (top+bottom)/2, esc(p.ylabel))
}

func (p *plot) polyline(xs, ys []float64, color string, width float64, dash string) {
	if len(xs) == 0 {
		return
	}
	fmt.Fprintf(&p.b, `<polyline fill="none" stroke="%s" stroke-width="%.1f"`, color, width)
	if dash != "" {
		fmt.Fprintf(&p.b, ` stroke-dasharray="%s"`, dash)
	}
	p.b.WriteString(` points="`)
	for i := range xs {
		fmt.Fprintf(&p.b, "%.1f,%.1f ", p.px(clamp(xs[i], p.x0, p.x1)), p.py(clamp(ys[i], p.y0, p.y1)))
	}
	p.b.WriteString("\"/>\n")
}

func (p *plot) text(x, y float64, anchor, s string) {
	fmt.Fprintf(&p.b, `<text x="%.1f" y="%.1f" text-anchor="%s">%s</text>`+"\n", x, y, anchor, esc(s))
}

func (p *plot) end() []byte {
	p.b.WriteString("</svg>\n")
	return p.b.Bytes()
}

func clamp(v, lo, hi float64) float64 { return min(max(v, lo), hi) }

func esc(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// niceStep returns a round tick step giving about n ticks over span.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// coverageSVG plots, for every message, the fraction of the other peers
// that had delivered it against virtual time since its broadcast, as step
// curves on a logarithmic time axis (repairs after losses come orders of
// magnitude later than the flood), with the mean over messages in black.
func coverageSVG(rep *report) []byte {
	tmin, tmax := math.Inf(1), 1.0
	for _, c := range rep.curves {
		if len(c.t) > 0 {
			tmin = min(tmin, c.t[0])
			tmax = max(tmax, c.t[len(c.t)-1])
		}
	}
	if math.IsInf(tmin, 1) || tmin <= 0 {
		tmin = 1
	}
	lo := math.Floor(math.Log10(tmin))
	hi := math.Max(math.Ceil(math.Log10(tmax*1.05)), lo+1)
	p := &plot{
		x0: lo, x1: hi, y0: 0, y1: 1,
		title:  fmt.Sprintf("Coverage over virtual time: n=%d, loss=%g, %d messages", rep.Params.N, rep.Params.Loss, rep.Messages),
		xlabel: "virtual time since broadcast (ms, log scale)",
		ylabel: "fraction of peers that delivered",
		yTicks: []float64{0, 0.25, 0.5, 0.75, 1},
		xTickLabel: func(v float64) string {
			// Over many decades, label only the powers of ten.
			if hi-lo > 3 && math.Abs(v-math.Round(v)) > 1e-9 {
				return ""
			}
			return fmt.Sprintf("%g", math.Round(math.Pow(10, v)*1000)/1000)
		},
		yTickLabel: func(v float64) string { return fmt.Sprintf("%g", v) },
	}
	for d := lo; d <= hi; d++ {
		for _, m := range []float64{1, 2, 5} {
			if v := d + math.Log10(m); v <= hi+1e-9 {
				p.xTicks = append(p.xTicks, v)
			}
		}
	}
	logs := func(xs []float64) []float64 {
		out := make([]float64, len(xs))
		for i, x := range xs {
			out[i] = math.Log10(math.Max(x, math.Pow(10, lo)))
		}
		return out
	}
	p.begin()
	for i, c := range rep.curves {
		xs, ys := stepCurve(c, math.Pow(10, hi))
		p.polyline(logs(xs), ys, palette[i%len(palette)], 1, "")
	}
	// Mean coverage over messages on a common logarithmic grid.
	const grid = 400
	var mx, my []float64
	for g := 0; g <= grid; g++ {
		lx := lo + (hi-lo)*float64(g)/grid
		x := math.Pow(10, lx)
		sum := 0.0
		for _, c := range rep.curves {
			k, _ := slices.BinarySearch(c.t, x+1e-9)
			if k > 0 {
				sum += c.cov[k-1]
			}
		}
		mx = append(mx, lx)
		my = append(my, sum/float64(max(1, len(rep.curves))))
	}
	p.polyline(mx, my, "black", 2.5, "")
	// Right-aligned below the middle, where the curves have long since
	// risen (or stay flat below full coverage).
	y := p.py(0.45)
	for _, line := range []string{
		"black: mean over messages",
		fmt.Sprintf("full coverage p50 %.0f ms, max %.0f ms", rep.TimeToFullP50MS, rep.TimeToFullMaxMS),
		fmt.Sprintf("coverage min %.4f", rep.CoverageMin),
	} {
		p.text(float64(svgW-padR-8), y, "end", line)
		y += 15
	}
	return p.end()
}

// maxCurvePoints bounds the steps drawn per curve, so that the file stays
// small for large networks; the steps kept are spread evenly.
const maxCurvePoints = 400

func stepCurve(c curve, tmax float64) (xs, ys []float64) {
	xs, ys = []float64{0}, []float64{0}
	prev := 0.0
	step := max(1, len(c.t)/maxCurvePoints)
	for i := range c.t {
		if i%step != 0 && i != len(c.t)-1 {
			continue
		}
		xs = append(xs, c.t[i], c.t[i])
		ys = append(ys, prev, c.cov[i])
		prev = c.cov[i]
	}
	return append(xs, tmax), append(ys, prev)
}

// degreeSVG plots the degree distribution P(k) on log-log axes, with the
// fitted power law k^-γ as a dashed reference line.
func degreeSVG(rep *report) []byte {
	n := float64(len(rep.degrees))
	var ks []int
	for k, c := range rep.DegreeHist {
		if k > 0 && c > 0 {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	kmax := 2.0
	pmin := 1.0
	if len(ks) > 0 {
		kmax = float64(ks[len(ks)-1])
	}
	for _, k := range ks {
		pmin = min(pmin, float64(rep.DegreeHist[k])/n)
	}
	kmin := 1.0
	if len(ks) > 0 {
		kmin = float64(ks[0])
	}
	p := &plot{
		x0: math.Floor(math.Log10(kmin)), x1: math.Max(math.Ceil(math.Log10(kmax*1.01)), math.Floor(math.Log10(kmin))+1),
		y0: math.Floor(math.Log10(pmin)), y1: 0,
		title:  fmt.Sprintf("Degree distribution: n=%d, mean %.2f, max %d, fitted γ=%.2f", rep.Params.N, rep.MeanDegree, rep.MaxDegreeSeen, rep.FittedExponent),
		xlabel: "degree k (log scale)", ylabel: "P(k), fraction of peers (log scale)",
		xTickLabel: func(v float64) string { return fmt.Sprintf("%g", math.Round(math.Pow(10, v)*1000)/1000) },
		yTickLabel: func(v float64) string { return fmt.Sprintf("%g", math.Pow(10, v)) },
	}
	if p.y0 == p.y1 {
		p.y0 = -1
	}
	for d := p.x0; d <= p.x1; d++ {
		for _, m := range []float64{1, 2, 5} {
			if v := d + math.Log10(m); v <= p.x1+1e-9 {
				p.xTicks = append(p.xTicks, v)
			}
		}
	}
	for d := p.y0; d <= p.y1; d++ {
		p.yTicks = append(p.yTicks, d)
	}
	p.begin()
	if g := rep.FittedExponent; g > 1 && len(ks) > 0 {
		// P(k) = k^-γ / ζ(γ, kmin), normalised over [kmin, ∞) numerically.
		z := 0.0
		for k := kmin; k < 1e5; k++ {
			z += math.Pow(k, -g)
		}
		var xs, ys []float64
		for i := 0; i <= 50; i++ {
			lk := math.Log10(kmin) + (math.Log10(kmax)-math.Log10(kmin))*float64(i)/50
			xs = append(xs, lk)
			ys = append(ys, math.Log10(math.Pow(10, -g*lk)/z))
		}
		p.polyline(xs, ys, "#d62728", 1.5, "6 4")
	}
	for _, k := range ks {
		x, y := p.px(math.Log10(float64(k))), p.py(math.Log10(float64(rep.DegreeHist[k])/n))
		fmt.Fprintf(&p.b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#1f77b4"><title>k=%d: %d peers</title></circle>`+"\n", x, y, k, rep.DegreeHist[k])
	}
	p.text(float64(svgW-padR-8), float64(padT+16), "end", "dots: measured; dashed: fitted power law")
	return p.end()
}
