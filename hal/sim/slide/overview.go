package slide

import (
	"image"
	"math"
)

// RenderOverview renders the whole slide, 75x25 mm, into a w x h image (a
// low-magnification overview: x scales by WidthUM/w, y by HeightUM/h): the
// label with its ID and barcode on the left, clean glass, and the cell spot
// as a faint disc (tinted, and each synthetic cell darkens the pixel it falls in; a CRIC
// spot is a uniform faint tint). There is no noise and no blur.
func (s *Slide) RenderOverview(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, max(w, 0), max(h, 0)))
	if w <= 0 || h <= 0 {
		return img
	}
	s.overviewInto(img, 0, 0, WidthUM/float64(w), HeightUM/float64(h))
	return img
}

// Holder is the grey of the slide holder around the slide, as the
// overview camera sees it.
const Holder = 70

// RenderOverviewAt renders what a low-magnification overview camera sees
// into dst: pixel (i, j) shows slide point (x0 + (i+0.5)·umPerPx,
// y0 + (j+0.5)·umPerPx), which may lie off the slide (the holder, grey
// Holder). A nil s renders an empty holder. Like RenderOverview it has no
// noise and no blur.
func RenderOverviewAt(s *Slide, dst *image.RGBA, x0, y0, umPerPx float64) {
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	for j := range h {
		row := dst.Pix[j*dst.Stride:]
		for i := range w {
			o := i * 4
			row[o], row[o+1], row[o+2], row[o+3] = Holder, Holder, Holder, 255
		}
	}
	if s == nil || !(umPerPx > 0) {
		return
	}
	// The part of dst the slide covers.
	i0 := max(0, int(math.Ceil(-x0/umPerPx-0.5)))
	i1 := min(w, int(math.Floor((WidthUM-x0)/umPerPx-0.5))+1)
	j0 := max(0, int(math.Ceil(-y0/umPerPx-0.5)))
	j1 := min(h, int(math.Floor((HeightUM-y0)/umPerPx-0.5))+1)
	if i0 >= i1 || j0 >= j1 {
		return
	}
	sub := dst.SubImage(image.Rect(dst.Rect.Min.X+i0, dst.Rect.Min.Y+j0, dst.Rect.Min.X+i1, dst.Rect.Min.Y+j1)).(*image.RGBA)
	s.overviewInto(sub, x0+float64(i0)*umPerPx, y0+float64(j0)*umPerPx, umPerPx, umPerPx)
}

// overviewInto renders the slide into img, whose pixel (i, j) covers the
// slide rectangle starting at (ox + i·sx, oy + j·sy) of size sx x sy µm.
func (s *Slide) overviewInto(img *image.RGBA, ox, oy, sx, sy float64) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	l := s.labelRaster()
	cx, cy, r := s.Spot()
	for j := range h {
		y := oy + (float64(j)+0.5)*sy
		row := img.Pix[j*img.Stride:]
		for i := range w {
			x := ox + (float64(i)+0.5)*sx
			o := i * 4
			row[o+3] = 255
			if x < LabelWidthUM {
				// Box-average the label raster over the pixel, so bars and
				// text stay legible at low resolution.
				g := l.average(x-sx/2, y-sy/2, x+sx/2, y+sy/2)
				row[o], row[o+1], row[o+2] = g, g, uint8(uint32(g)*250>>8)
				continue
			}
			g := s.glass
			row[o], row[o+1], row[o+2] = g[0], g[1], g[2]
			if math.Hypot(x-cx, y-cy) <= r { // the thin film of a liquid-based preparation
				row[o], row[o+1], row[o+2] = g[0]-4, g[1]-4, g[2]-2
			}
		}
	}
	pixel := func(x, y float64) (int, bool) {
		i, j := int(math.Floor((x-ox)/sx)), int(math.Floor((y-oy)/sy))
		if i < 0 || i >= w || j < 0 || j >= h {
			return 0, false
		}
		return j*img.Stride + i*4, true
	}
	if s.cric == nil {
		// Each cell darkens its pixel by the fraction of the pixel it covers.
		for k := range s.shapes {
			sh := &s.shapes[k]
			o, ok := pixel(sh.cx, sh.cy)
			if !ok {
				continue
			}
			cover := math.Min(1, math.Pi*sh.extent*sh.extent*0.6/(sx*sy))
			for ch := range 3 {
				t := float64(sh.cytoT[ch]) / 256
				f := uint32(256 * (1 - cover*(1-t*0.9)))
				img.Pix[o+ch] = mul(img.Pix[o+ch], f)
			}
		}
	}
	if c := s.cric; c != nil {
		// Each piece of a field darkens the pixels its box covers, by the
		// fraction covered.
		const p = 0.5
		for k := range c.pieces {
			pc := &c.pieces[k]
			bx0, by0 := pc.x0, pc.y0
			bx1, by1 := bx0+float64(pc.w)*p, by0+float64(pc.h)*p
			i0, i1 := int(math.Floor((bx0-ox)/sx)), int(math.Floor((bx1-ox)/sx))
			j0, j1 := int(math.Floor((by0-oy)/sy)), int(math.Floor((by1-oy)/sy))
			for j := max(j0, 0); j <= min(j1, h-1); j++ {
				py0, py1 := oy+float64(j)*sy, oy+float64(j+1)*sy
				fy := (math.Min(py1, by1) - math.Max(py0, by0)) / sy
				for i := max(i0, 0); i <= min(i1, w-1); i++ {
					px0, px1 := ox+float64(i)*sx, ox+float64(i+1)*sx
					fx := (math.Min(px1, bx1) - math.Max(px0, bx0)) / sx
					if fx <= 0 || fy <= 0 {
						continue
					}
					o := j*img.Stride + i*4
					f := uint32(256 * (1 - 0.3*fx*fy))
					img.Pix[o], img.Pix[o+1], img.Pix[o+2] = mul(img.Pix[o], f), mul(img.Pix[o+1], f), mul(img.Pix[o+2], f*9/10)
				}
			}
		}
	}
	for _, d := range s.dust {
		if o, ok := pixel(d.x, d.y); ok && d.r*2 > sx/4 {
			f := uint32(d.t)
			img.Pix[o], img.Pix[o+1], img.Pix[o+2] = mul(img.Pix[o], f), mul(img.Pix[o+1], f), mul(img.Pix[o+2], f)
		}
	}
}

// average is the mean grey level of the label over the rectangle (µm).
func (l *labelRaster) average(x0, y0, x1, y1 float64) uint8 {
	i0, i1 := max(0, int(x0/l.umPerPx)), min(l.w, int(math.Ceil(x1/l.umPerPx)))
	j0, j1 := max(0, int(y0/l.umPerPx)), min(l.h, int(math.Ceil(y1/l.umPerPx)))
	var sum, n int
	for j := j0; j < j1; j++ {
		for i := i0; i < i1; i++ {
			sum += int(l.pix[j*l.w+i])
			n++
		}
	}
	if n == 0 {
		return labelPaper
	}
	return uint8(sum / n)
}
