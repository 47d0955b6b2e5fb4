package eval

import (
	"image"
	"math"
	"testing"
)

// TestBlur checks the blur keeps a flat image, spreads a line with the
// asked variance along the asked axis only, and leaves the other axis.
func TestBlur(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 41, 41))
	for i := range img.Pix {
		img.Pix[i] = 50
	}
	for y := range 41 {
		img.Pix[img.PixOffset(20, y)] = 250 // a vertical line in red
	}
	out := Blur(img, 1.5, 0)
	var m0, m2 float64
	for x := range 41 {
		v := float64(out.Pix[out.PixOffset(x, 7)]) - 50
		m0 += v
		m2 += v * float64((x-20)*(x-20))
	}
	if math.Abs(m0-200) > 3 || math.Abs(math.Sqrt(m2/m0)-1.5) > 0.1 {
		t.Fatalf("line spread: mass %.1f (want 200), sigma %.2f (want 1.5)", m0, math.Sqrt(m2/m0))
	}
	if g := out.Pix[out.PixOffset(3, 3)+1]; g != 50 {
		t.Fatalf("flat green channel changed to %d", g)
	}
	same := Blur(img, 0, 2)
	for y := range 41 {
		if v := same.Pix[same.PixOffset(20, y)]; v != 250 {
			t.Fatalf("blur along y moved a vertical line: %d at y %d", v, y)
		}
	}
}
