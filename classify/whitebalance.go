package classify

import (
	"image"
	"math"
)

// White balance. The optical densities the cell model reads are
// -log10(I/256): relative to a white of 255 in every channel, not to the
// glass the light actually came through. A lamp, a camera's white balance
// or another lab's glass tints the clear glass (neutral, yellowish, grey or
// bluish between CRIC's fields and other labs' sets; README, "White
// balance"), and that tint shifts every cell's colour with it. A model with ModelParams.WhiteBalance reads each image
// divided by its glass colour per channel (transmittance), so that the
// glass is white wherever the image came from.

// Glass estimation: the glass is the mean colour of the brightest
// GlassFraction of the image's pixels (by R+G+B); it counts only when every
// channel is at least MinGlass (else the image shows no clear glass, e.g. a
// tile covered by a dense sheet, and is left as it is).
const (
	GlassFraction = 0.02
	MinGlass      = 180
)

// EstimateGlass returns the colour of img's clear glass (see GlassFraction)
// and whether img shows any.
func EstimateGlass(img *image.RGBA) (glass [3]float64, ok bool) {
	b := img.Bounds()
	n := b.Dx() * b.Dy()
	if n == 0 {
		return glass, false
	}
	var hist [766]int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := img.Pix[img.PixOffset(b.Min.X, y):]
		for x := range b.Dx() {
			p := row[4*x : 4*x+3 : 4*x+3]
			hist[int(p[0])+int(p[1])+int(p[2])]++
		}
	}
	want := max(1, int(math.Ceil(GlassFraction*float64(n))))
	level, got := 765, 0
	for ; level > 0; level-- {
		got += hist[level]
		if got >= want {
			break
		}
	}
	var sum [3]float64
	cnt := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		row := img.Pix[img.PixOffset(b.Min.X, y):]
		for x := range b.Dx() {
			p := row[4*x : 4*x+3 : 4*x+3]
			if int(p[0])+int(p[1])+int(p[2]) >= level {
				sum[0] += float64(p[0])
				sum[1] += float64(p[1])
				sum[2] += float64(p[2])
				cnt++
			}
		}
	}
	ok = true
	for c := range glass {
		glass[c] = sum[c] / float64(cnt)
		if glass[c] < MinGlass {
			ok = false
		}
	}
	return glass, ok
}

// BalanceLUT returns per-channel tables mapping an 8-bit value v to
// v·255/glass (rounded, at most 255): the glass becomes white.
func BalanceLUT(glass [3]float64) (lut [3][256]uint8) {
	for c := range lut {
		g := glass[c]
		if g <= 0 || g > 255 {
			g = 255
		}
		for v := range lut[c] {
			lut[c][v] = uint8(min(255, math.Round(float64(v)*255/g)))
		}
	}
	return lut
}

// WhiteBalance writes src divided by its glass colour into dst (resized to
// src's bounds when needed; nil allocates) and returns dst. Alpha is
// copied.
func WhiteBalance(dst, src *image.RGBA, glass [3]float64) *image.RGBA {
	b := src.Bounds()
	if dst == nil || dst.Bounds() != b {
		if dst != nil && cap(dst.Pix) >= 4*b.Dx()*b.Dy() {
			dst = &image.RGBA{Pix: dst.Pix[:4*b.Dx()*b.Dy()], Stride: 4 * b.Dx(), Rect: b}
		} else {
			dst = image.NewRGBA(b)
		}
	}
	lut := BalanceLUT(glass)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		s := src.Pix[src.PixOffset(b.Min.X, y):][:4*b.Dx()]
		d := dst.Pix[dst.PixOffset(b.Min.X, y):][:4*b.Dx()]
		for i := 0; i < len(s); i += 4 {
			d[i], d[i+1], d[i+2], d[i+3] = lut[0][s[i]], lut[1][s[i+1]], lut[2][s[i+2]], s[i+3]
		}
	}
	return dst
}

// WhiteBalances reports whether the model reads images divided by their
// glass colour (ModelParams.WhiteBalance): callers then pass Measure,
// Features and Classify the image ForModel returns.
func (m *Model) WhiteBalances() bool { return m.p.WhiteBalance }

// ForModel returns what m reads of img given its glass colour: img itself
// when m does not white-balance or no glass is known (ok false), else img
// balanced into a new image, or into *buf when buf is not nil (reused when
// large enough, see WhiteBalance; *buf then holds the result).
func (m *Model) ForModel(img *image.RGBA, glass [3]float64, ok bool, buf **image.RGBA) *image.RGBA {
	if !m.p.WhiteBalance || !ok {
		return img
	}
	if buf == nil {
		return WhiteBalance(nil, img, glass)
	}
	*buf = WhiteBalance(*buf, img, glass)
	return *buf
}

// ForModelOwnGlass is ForModel with img's own glass (EstimateGlass): what
// m reads of a whole tile or field. The glass is estimated only when m
// white-balances.
func (m *Model) ForModelOwnGlass(img *image.RGBA, buf **image.RGBA) *image.RGBA {
	if !m.p.WhiteBalance {
		return img
	}
	g, ok := EstimateGlass(img)
	return m.ForModel(img, g, ok, buf)
}
