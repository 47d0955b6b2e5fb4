package eval

import (
	"image"
	"math"
)

// Blur returns img blurred by a Gaussian of standard deviation sx pixels
// along x and sy along y (0: none along that axis), edges clamped: a
// camera's defocus (sx = sy) or a stage motion during the exposure (one
// axis). CellOptions.BlurUM applies it to the labelled crops before they
// are scored, to measure how the cell model holds up under the robot's
// focus and motion blur.
func Blur(img *image.RGBA, sx, sy float64) *image.RGBA {
	b := img.Rect
	w, h := b.Dx(), b.Dy()
	out := image.NewRGBA(b)
	tmp := make([]float32, w*h*3)
	kx, ky := gaussKernel(sx), gaussKernel(sy)
	rx, ry := len(kx)/2, len(ky)/2
	for y := range h {
		row := img.Pix[y*img.Stride:]
		for x := range w {
			for c := range 3 {
				var v float32
				for d, k := range kx {
					xx := min(max(x+d-rx, 0), w-1)
					v += k * float32(row[xx*4+c])
				}
				tmp[(y*w+x)*3+c] = v
			}
		}
	}
	for y := range h {
		o := out.Pix[y*out.Stride:]
		for x := range w {
			for c := range 3 {
				var v float32
				for d, k := range ky {
					yy := min(max(y+d-ry, 0), h-1)
					v += k * tmp[(yy*w+x)*3+c]
				}
				o[x*4+c] = uint8(min(max(v+0.5, 0), 255))
			}
			o[x*4+3] = 255
		}
	}
	return out
}

// gaussKernel is the normalised Gaussian of standard deviation s pixels
// sampled out to ⌈3 s⌉ ({1} for s ≤ 0).
func gaussKernel(s float64) []float32 {
	if s <= 0 {
		return []float32{1}
	}
	r := int(math.Ceil(3 * s))
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
