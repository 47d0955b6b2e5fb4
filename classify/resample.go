package classify

import (
	"image"
	"math"
)

// resampleWindow fills dst with the side×side window of img centred on
// (cx, cy) (tile pixel coordinates) resampled from pixel size srcUM to dstUM:
// each output pixel is the mean of the source pixels it covers when
// downsampling (dstUM > srcUM) and a bilinear interpolation when upsampling.
// Parts outside img are white. dst is reused when it has the right size.
func resampleWindow(dst *image.RGBA, img *image.RGBA, cx, cy, srcUM, dstUM float64, side int) *image.RGBA {
	if dst == nil || dst.Bounds().Dx() != side || dst.Bounds().Dy() != side {
		dst = image.NewRGBA(image.Rect(0, 0, side, side))
	}
	b := img.Bounds()
	s := dstUM / srcUM // source px per output px
	// Output pixel (i, j) has its centre at source coordinate
	// cx + (i + 0.5 - side/2)·s (pixel centres at integer coordinates).
	x0 := cx + (0.5-float64(side)/2)*s
	y0 := cy + (0.5-float64(side)/2)*s
	at := func(x, y int) (r, g, bb uint32, ok bool) {
		if x < b.Min.X || y < b.Min.Y || x >= b.Max.X || y >= b.Max.Y {
			return 255, 255, 255, false
		}
		o := img.PixOffset(x, y)
		return uint32(img.Pix[o]), uint32(img.Pix[o+1]), uint32(img.Pix[o+2]), true
	}
	if s > 1 {
		// Box filter over the covered source pixels (integer footprint).
		k := int(math.Round(s))
		if k < 1 {
			k = 1
		}
		for j := 0; j < side; j++ {
			sy := int(math.Floor(y0 + float64(j)*s - float64(k-1)/2 + 0.5))
			for i := 0; i < side; i++ {
				sx := int(math.Floor(x0 + float64(i)*s - float64(k-1)/2 + 0.5))
				var sr, sg, sb uint32
				for yy := sy; yy < sy+k; yy++ {
					for xx := sx; xx < sx+k; xx++ {
						r, g, bb, _ := at(xx, yy)
						sr, sg, sb = sr+r, sg+g, sb+bb
					}
				}
				n := uint32(k * k)
				o := dst.PixOffset(i, j)
				dst.Pix[o] = uint8((sr + n/2) / n)
				dst.Pix[o+1] = uint8((sg + n/2) / n)
				dst.Pix[o+2] = uint8((sb + n/2) / n)
				dst.Pix[o+3] = 255
			}
		}
		return dst
	}
	for j := 0; j < side; j++ {
		fy := y0 + float64(j)*s
		iy := int(math.Floor(fy))
		wy := fy - float64(iy)
		for i := 0; i < side; i++ {
			fx := x0 + float64(i)*s
			ix := int(math.Floor(fx))
			wx := fx - float64(ix)
			r00, g00, b00, _ := at(ix, iy)
			r10, g10, b10, _ := at(ix+1, iy)
			r01, g01, b01, _ := at(ix, iy+1)
			r11, g11, b11, _ := at(ix+1, iy+1)
			lerp := func(a, b, c, d uint32) uint8 {
				v := (float64(a)*(1-wx)+float64(b)*wx)*(1-wy) + (float64(c)*(1-wx)+float64(d)*wx)*wy
				return uint8(v + 0.5)
			}
			o := dst.PixOffset(i, j)
			dst.Pix[o] = lerp(r00, r10, r01, r11)
			dst.Pix[o+1] = lerp(g00, g10, g01, g11)
			dst.Pix[o+2] = lerp(b00, b10, b01, b11)
			dst.Pix[o+3] = 255
		}
	}
	return dst
}

// Rescale returns img resampled from pixel size srcUM to dstUM (both µm per
// pixel) with area-weighted averaging when shrinking and bilinear
// interpolation when enlarging. A source coordinate u maps to
// (u+0.5)·srcUM/dstUM − 0.5 in the result. It allocates the result.
func Rescale(img *image.RGBA, srcUM, dstUM float64) *image.RGBA {
	b := img.Bounds()
	s := dstUM / srcUM
	w := max(1, int(math.Round(float64(b.Dx())/s)))
	h := max(1, int(math.Round(float64(b.Dy())/s)))
	if s <= 1 {
		out := image.NewRGBA(image.Rect(0, 0, w, h))
		px := func(x, y int) []uint8 {
			x = min(max(x, 0), b.Dx()-1)
			y = min(max(y, 0), b.Dy()-1)
			return img.Pix[img.PixOffset(b.Min.X+x, b.Min.Y+y):]
		}
		for j := 0; j < h; j++ {
			fy := (float64(j)+0.5)*s - 0.5
			iy := int(math.Floor(fy))
			wy := fy - float64(iy)
			for i := 0; i < w; i++ {
				fx := (float64(i)+0.5)*s - 0.5
				ix := int(math.Floor(fx))
				wx := fx - float64(ix)
				p00, p10, p01, p11 := px(ix, iy), px(ix+1, iy), px(ix, iy+1), px(ix+1, iy+1)
				o := out.PixOffset(i, j)
				for c := 0; c < 3; c++ {
					v := (float64(p00[c])*(1-wx)+float64(p10[c])*wx)*(1-wy) + (float64(p01[c])*(1-wx)+float64(p11[c])*wx)*wy
					out.Pix[o+c] = uint8(v + 0.5)
				}
				out.Pix[o+3] = 255
			}
		}
		return out
	}
	// Separable area weights: output index i covers source [i·s, (i+1)·s).
	type tap struct {
		i0 int
		w  []float32
	}
	taps := func(n, srcN int) []tap {
		out := make([]tap, n)
		for i := range out {
			a, e := float64(i)*s, float64(i+1)*s
			i0 := int(math.Floor(a))
			var ws []float32
			for k := i0; float64(k) < e && k < srcN; k++ {
				lo, hi := math.Max(a, float64(k)), math.Min(e, float64(k+1))
				ws = append(ws, float32((hi-lo)/s))
			}
			out[i] = tap{i0, ws}
		}
		return out
	}
	tx, ty := taps(w, b.Dx()), taps(h, b.Dy())
	// Horizontal pass into float rows.
	mid := make([]float32, 3*w*b.Dy())
	for y := 0; y < b.Dy(); y++ {
		row := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+y):]
		for i, t := range tx {
			var r, g, bb, sw float32
			for k, wt := range t.w {
				o := 4 * (t.i0 + k)
				r += wt * float32(row[o])
				g += wt * float32(row[o+1])
				bb += wt * float32(row[o+2])
				sw += wt
			}
			if sw > 0 {
				r, g, bb = r/sw, g/sw, bb/sw
			}
			m := mid[3*(y*w+i):]
			m[0], m[1], m[2] = r, g, bb
		}
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for j, t := range ty {
		for i := 0; i < w; i++ {
			var r, g, bb, sw float32
			for k, wt := range t.w {
				m := mid[3*((t.i0+k)*w+i):]
				r += wt * m[0]
				g += wt * m[1]
				bb += wt * m[2]
				sw += wt
			}
			if sw > 0 {
				r, g, bb = r/sw, g/sw, bb/sw
			}
			o := out.PixOffset(i, j)
			out.Pix[o] = uint8(r + 0.5)
			out.Pix[o+1] = uint8(g + 0.5)
			out.Pix[o+2] = uint8(bb + 0.5)
			out.Pix[o+3] = 255
		}
	}
	return out
}

// ResampleWindow returns the side×side window of img centred on (cx, cy)
// resampled from pixel size srcUM to dstUM (white outside img), reusing dst
// when it has the right size. Training uses it to cut crops exactly as the
// model does on a tile.
func ResampleWindow(dst *image.RGBA, img *image.RGBA, cx, cy, srcUM, dstUM float64, side int) *image.RGBA {
	return resampleWindow(dst, img, cx, cy, srcUM, dstUM, side)
}
