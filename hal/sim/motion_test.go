package sim

import (
	"image"
	"math"
	"testing"
)

// edgeImage is a vertical step: dark left of column x0, bright from it.
func edgeImage(w, h, x0 int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			v := uint8(40)
			if x >= x0 {
				v = 200
			}
			i := y*img.Stride + x*4
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = v, v, v, 255
		}
	}
	return img
}

// rowSpread is the width (σ, px) of the derivative of row y's red channel:
// the blur an edge shows.
func rowSpread(img *image.RGBA, y int) (mean, sigma float64) {
	var s0, s1, s2 float64
	for x := 1; x < img.Rect.Dx(); x++ {
		d := float64(img.Pix[y*img.Stride+x*4]) - float64(img.Pix[y*img.Stride+(x-1)*4])
		s0 += d
		s1 += d * float64(x)
		s2 += d * float64(x) * float64(x)
	}
	mean = s1 / s0
	return mean, math.Sqrt(math.Max(s2/s0-mean*mean, 0))
}

// TestMotionBlurKernel: a path shorter than a pixel leaves the frame as
// rendered (no interpolation blur: bilinear sampling had spread a sharp
// edge by σ 0.42 px for a 0.35 px path), and a longer path spreads an edge
// like a box of its length, centred on the path's middle.
func TestMotionBlurKernel(t *testing.T) {
	src := edgeImage(64, 4, 32)
	dst := image.NewRGBA(src.Rect)
	for _, l := range []float64{0.07, 0.35, 0.9} {
		MotionBlur(dst, src, l, 0)
		if _, s := rowSpread(dst, 1); s != 0 {
			t.Errorf("%.2f px path: edge spread σ %.3f px, want 0 (as rendered)", l, s)
		}
	}
	for _, l := range []float64{2, 4, 8.5} {
		MotionBlur(dst, src, l, 0)
		m, s := rowSpread(dst, 2)
		want := l / math.Sqrt(12)
		// On the pixel grid a box spreads a little more than its σ
		// (2 px: [5, 7, 5]/17, σ 0.77 against 0.58), never less.
		if s < want-0.01 || s > want+0.25 {
			t.Errorf("%.1f px path: edge spread σ %.2f px, want %.2f to %.2f (a box of its length)", l, s, want, want+0.25)
		}
		if math.Abs(m-32) > 0.05 { // the unblurred edge's own place
			t.Errorf("%.1f px path: edge at %.2f px, want 32 (the path's middle)", l, m)
		}
		// Along y nothing moves.
		MotionBlur(dst, src, 0, l)
		if _, s := rowSpread(dst, 2); s != 0 {
			t.Errorf("%.1f px path along y: a vertical edge spread by σ %.2f px", l, s)
		}
	}
}
