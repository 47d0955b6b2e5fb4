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
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if w <= 0 || h <= 0 {
		return img
	}
	sx, sy := WidthUM/float64(w), HeightUM/float64(h)
	l := s.labelRaster()
	cx, cy, r := s.Spot()
	for j := range h {
		y := (float64(j) + 0.5) * sy
		row := img.Pix[j*img.Stride:]
		for i := range w {
			x := (float64(i) + 0.5) * sx
			o := i * 4
			row[o+3] = 255
			if x < LabelWidthUM {
				// Box-average the label raster over the pixel, so bars and
				// text stay legible at low resolution.
				g := l.average(x-sx/2, y-sy/2, x+sx/2, y+sy/2)
				row[o], row[o+1], row[o+2] = g, g, uint8(uint32(g)*250>>8)
				continue
			}
			row[o], row[o+1], row[o+2] = GlassR, GlassG, GlassB
			if math.Hypot(x-cx, y-cy) <= r {
				if s.cric != nil {
					row[o], row[o+1], row[o+2] = 222, 214, 224
				} else { // the thin film of a liquid-based preparation
					row[o], row[o+1], row[o+2] = GlassR-4, GlassG-4, GlassB-2
				}
			}
		}
	}
	if s.cric == nil {
		// Each cell darkens its pixel by the fraction of the pixel it covers.
		for k := range s.shapes {
			sh := &s.shapes[k]
			i, j := int(sh.cx/sx), int(sh.cy/sy)
			if i < 0 || i >= w || j < 0 || j >= h {
				continue
			}
			cover := math.Min(1, math.Pi*sh.extent*sh.extent*0.6/(sx*sy))
			o := j*img.Stride + i*4
			for ch := range 3 {
				t := float64(sh.cytoT[ch]) / 256
				f := uint32(256 * (1 - cover*(1-t*0.9)))
				img.Pix[o+ch] = mul(img.Pix[o+ch], f)
			}
		}
	}
	for _, d := range s.dust {
		i, j := int(d.x/sx), int(d.y/sy)
		if i >= 0 && i < w && j >= 0 && j < h && d.r*2 > sx/4 {
			o := j*img.Stride + i*4
			f := uint32(d.t)
			img.Pix[o], img.Pix[o+1], img.Pix[o+2] = mul(img.Pix[o], f), mul(img.Pix[o+1], f), mul(img.Pix[o+2], f)
		}
	}
	return img
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
