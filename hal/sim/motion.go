package sim

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
)

// MotionBlur writes into dst (same bounds as src) the scene src integrated
// along a straight motion of (dx, dy) pixels during the exposure, src being
// the scene at the path's middle. The kernel is the share of the path that
// falls in each pixel cell: evenly spaced points along the path, each taken
// from the nearest pixel (edges clamped). A path shorter than a pixel leaves
// the frame as rendered: its true spread, a box of σ = length/√12 (0.1 px
// for 0.35 px), is below what a sampled image can show without
// interpolating, and interpolating (bilinear) would blur by far more
// (σ 0.42 px for a 0.35 px path) than the motion does.
func MotionBlur(dst, src *image.RGBA, dx, dy float64) {
	w, h := src.Rect.Dx(), src.Rect.Dy()
	// Eight points per pixel of travel, an odd count so that the path's
	// middle is one of them and the kernel stays symmetric.
	n := 2*int(math.Ceil(math.Hypot(dx, dy)*4)) + 1
	type shift struct{ x, y int }
	weights := map[shift]uint32{}
	for k := range n {
		f := float64(k)/float64(n-1) - 0.5
		weights[shift{int(math.Round(f * dx)), int(math.Round(f * dy))}]++
	}
	if weights[shift{}] == uint32(n) { // every point in the middle pixel
		copy(dst.Pix, src.Pix)
		return
	}
	acc := make([]uint32, w*h*3)
	for sh, wt := range weights {
		for y := range h {
			ys := min(max(y+sh.y, 0), h-1)
			row := src.Pix[ys*src.Stride:]
			a := acc[y*w*3:]
			for x := range w {
				xs := min(max(x+sh.x, 0), w-1) * 4
				for c := range 3 {
					a[x*3+c] += wt * uint32(row[xs+c])
				}
			}
		}
	}
	div := uint32(n)
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
