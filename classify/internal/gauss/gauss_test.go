package gauss

import (
	"math"
	"testing"
)

// TestBlur: kernels are normalised and as wide as their reach; a blur of
// σ 0 copies the image, and a blurred step keeps its mean and spreads.
func TestBlur(t *testing.T) {
	for _, c := range []struct{ s, reach float64 }{{0.5, 2.5}, {0.8, 3}, {2, 3}} {
		k := Kernel(c.s, c.reach)
		var sum float32
		for _, v := range k {
			sum += v
		}
		if math.Abs(float64(sum)-1) > 1e-5 || len(k) != 2*int(math.Ceil(c.reach*c.s))+1 {
			t.Errorf("Kernel(%v, %v): %d taps summing to %v", c.s, c.reach, len(k), sum)
		}
	}
	const w, h, pix = 8, 3, 4
	src := make([]uint8, w*h*pix)
	for y := range h {
		for x := range w {
			for c := range 3 {
				src[(y*w+x)*pix+c] = uint8(40 + 160*(x/4))
			}
		}
	}
	dst := make([]uint8, len(src))
	tmp := make([]float32, w*h*3)
	Blur(dst, w*pix, src, w*pix, w, h, pix, Kernel(0, 3), Kernel(0, 3), tmp)
	for i := range src {
		if i%pix < 3 && dst[i] != src[i] {
			t.Fatalf("σ 0: byte %d is %d, want %d", i, dst[i], src[i])
		}
	}
	Blur(dst, w*pix, src, w*pix, w, h, pix, Kernel(1, 3), Kernel(1, 3), tmp)
	row := dst[w*pix : 2*w*pix]
	if row[0] != 40 || row[(w-1)*pix] != 200 || !(row[3*pix] > 40 && row[3*pix] < 120 && row[4*pix] > 120 && row[4*pix] < 200) {
		t.Errorf("σ 1 step: row %v", row)
	}
}
