package scan

import (
	"image"
	"math"
)

// strip is the green channel of a band of columns of a frame, every
// second row: what on-the-fly registration compares between neighbours.
type strip struct {
	x0, w, h int // first column in the frame, width, rows kept
	g        []uint8
}

// cutStrip copies columns [x0, x0+w) of img (clamped) into s.
func cutStrip(s *strip, img *image.RGBA, x0, w int) {
	b := img.Bounds()
	x0 = max(0, min(x0, b.Dx()-1))
	w = max(0, min(w, b.Dx()-x0))
	h := b.Dy() / 2
	s.x0, s.w, s.h = x0, w, h
	if cap(s.g) < w*h {
		s.g = make([]uint8, w*h)
	}
	s.g = s.g[:w*h]
	for y := range h {
		row := img.Pix[(2*y)*img.Stride:]
		for x := range w {
			s.g[y*w+x] = row[(x0+x)*4+1]
		}
	}
}

// registerStrips finds the column shift d (pixels, |d| <= maxShift) that
// best aligns b onto a (b's column c shows what a's column c+d shows), by
// the sum of absolute differences over their common columns, refined to
// sub-pixel by a parabola. ok is false when the match is not distinct (a
// blank field): its best SAD is not clearly below the typical one.
func registerStrips(a, b *strip, maxShift int) (d float64, ok bool) {
	if a.h != b.h || a.w == 0 || b.w == 0 {
		return 0, false
	}
	sads := make([]float64, 2*maxShift+1)
	for k := range sads {
		s := k - maxShift
		var sum, n float64
		for y := 0; y < a.h; y += 2 {
			ra, rb := a.g[y*a.w:][:a.w], b.g[y*b.w:][:b.w]
			for x := range rb {
				xa := x + b.x0 - a.x0 + s
				if xa < 0 || xa >= a.w {
					continue
				}
				v := int(ra[xa]) - int(rb[x])
				if v < 0 {
					v = -v
				}
				sum += float64(v)
				n++
			}
		}
		if n < float64(a.h) {
			sads[k] = math.Inf(1)
			continue
		}
		sads[k] = sum / n
	}
	best := 0
	for k, v := range sads {
		if v < sads[best] {
			best = k
		}
	}
	fin := make([]float64, 0, len(sads))
	for _, v := range sads {
		if !math.IsInf(v, 1) {
			fin = append(fin, v)
		}
	}
	if len(fin) < 3 || !(sads[best] < 0.6*median(fin)) {
		return 0, false
	}
	d = float64(best - maxShift)
	if best > 0 && best < len(sads)-1 && !math.IsInf(sads[best-1], 1) && !math.IsInf(sads[best+1], 1) {
		l, c, r := sads[best-1], sads[best], sads[best+1]
		if den := l - 2*c + r; den > 0 {
			d += 0.5 * (l - r) / den
		}
	}
	return d, true
}
