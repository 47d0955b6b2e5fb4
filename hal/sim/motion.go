package sim

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
)

// MotionBlur writes into dst (same bounds as src) the scene src integrated
// along a straight motion of (dx, dy) pixels during the exposure: the mean
// of src shifted to evenly spaced points of the path (bilinear for the
// sub-pixel part, edges clamped). src is the scene at the path's middle.
func MotionBlur(dst, src *image.RGBA, dx, dy float64) {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	n := int(math.Ceil(math.Hypot(dx, dy)*2)) + 1 // two samples per pixel of travel
	acc := make([]uint32, w*h*3)
	for k := range n {
		f := float64(k)/float64(n-1) - 0.5
		if n == 1 {
			f = 0
		}
		sx, sy := f*dx, f*dy
		ix, iy := int(math.Floor(sx)), int(math.Floor(sy))
		fx, fy := sx-float64(ix), sy-float64(iy)
		w00 := uint32((1 - fx) * (1 - fy) * 256)
		w10 := uint32(fx * (1 - fy) * 256)
		w01 := uint32((1 - fx) * fy * 256)
		w11 := 256 - w00 - w10 - w01
		for y := range h {
			y0 := min(max(y+iy, 0), h-1)
			y1 := min(max(y+iy+1, 0), h-1)
			r0 := src.Pix[y0*src.Stride:]
			r1 := src.Pix[y1*src.Stride:]
			a := acc[y*w*3:]
			for x := range w {
				x0 := min(max(x+ix, 0), w-1) * 4
				x1 := min(max(x+ix+1, 0), w-1) * 4
				for c := range 3 {
					a[x*3+c] += w00*uint32(r0[x0+c]) + w10*uint32(r0[x1+c]) + w01*uint32(r1[x0+c]) + w11*uint32(r1[x1+c])
				}
			}
		}
	}
	div := uint32(n) * 256
	for y := range h {
		out := dst.Pix[y*dst.Stride:]
		a := acc[y*w*3:]
		for x := range w {
			for c := range 3 {
				out[x*4+c] = uint8((a[x*3+c] + div/2) / div)
			}
			out[x*4+3] = 255
		}
	}
}

// scaleLight scales the frame's intensities by light (the exposure's light
// over a nominal one), saturating at 255.
func scaleLight(img *image.RGBA, light float64) {
	f := uint32(math.Max(light, 0) * 256)
	for i := 0; i+3 < len(img.Pix); i += 4 {
		for c := range 3 {
			img.Pix[i+c] = uint8(min((uint32(img.Pix[i+c])*f+128)>>8, 255))
		}
	}
}

// EncodeMJPEG encodes src as one baseline JPEG (an MJPEG frame, as a UVC
// camera sends it) at quality q into dst, using buf as scratch.
func EncodeMJPEG(dst []byte, buf *bytes.Buffer, src *image.RGBA, q int) []byte {
	buf.Reset()
	// An RGBA image always encodes; the error comes only from the writer,
	// and a bytes.Buffer does not fail.
	_ = jpeg.Encode(buf, src, &jpeg.Options{Quality: q})
	return append(dst[:0], buf.Bytes()...)
}
