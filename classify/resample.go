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
