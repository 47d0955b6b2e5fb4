// Package gauss blurs interleaved 8-bit images with a separable Gaussian:
// the one blur that the CNN's training augmentation (classify/train) and
// the evaluation's blurred crops (classify/eval) share.
package gauss

import "math"

// Kernel is the normalised Gaussian of standard deviation s pixels sampled
// out to ⌈reach·s⌉ pixels ({1} for s ≤ 0).
func Kernel(s, reach float64) []float32 {
	if s <= 0 {
		return []float32{1}
	}
	r := int(math.Ceil(reach * s))
	k := make([]float32, 2*r+1)
	var t float64
	for d := -r; d <= r; d++ {
		t += math.Exp(-float64(d*d) / (2 * s * s))
	}
	for d := -r; d <= r; d++ {
		k[d+r] = float32(math.Exp(-float64(d*d)/(2*s*s)) / t)
	}
	return k
}

// Blur writes into dst the first three channels of src, a w×h image of pix
// bytes per pixel and the given row strides, convolved with kx along x and
// then ky along y (odd-length kernels centred on the pixel), edges clamped,
// rounded to 8 bits. tmp holds at least w·h·3 values. Other channels of
// dst are left as they are.
func Blur(dst []uint8, dstStride int, src []uint8, srcStride, w, h, pix int, kx, ky, tmp []float32) {
	rx, ry := len(kx)/2, len(ky)/2
	for y := range h {
		row := src[y*srcStride:]
		for x := range w {
			for c := range 3 {
				var v float32
				for d, k := range kx {
					xx := min(max(x+d-rx, 0), w-1)
					v += k * float32(row[xx*pix+c])
				}
				tmp[(y*w+x)*3+c] = v
			}
		}
	}
	for y := range h {
		o := dst[y*dstStride:]
		for x := range w {
			for c := range 3 {
				var v float32
				for d, k := range ky {
					yy := min(max(y+d-ry, 0), h-1)
					v += k * tmp[(yy*w+x)*3+c]
				}
				o[x*pix+c] = uint8(min(max(v+0.5, 0), 255))
			}
		}
	}
}
