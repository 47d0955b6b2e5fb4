package eval

import (
	"image"

	"papscan/classify/internal/gauss"
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
	gauss.Blur(out.Pix, out.Stride, img.Pix, img.Stride, w, h, 4, gauss.Kernel(sx, 3), gauss.Kernel(sy, 3), make([]float32, w*h*3))
	for i := 3; i < len(out.Pix); i += 4 {
		out.Pix[i] = 255
	}
	return out
}
