package classify

import (
	"math"
	"math/rand"
	"testing"
)

// TestConv3x3 compares the im2col convolution with a direct reference.
func TestConv3x3(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	const h, w, cin, cout = 5, 6, 3, 4
	in := make([]float32, h*w*cin)
	for i := range in {
		in[i] = float32(rng.NormFloat64())
	}
	wt := make([]float32, cout*9*cin)
	for i := range wt {
		wt[i] = float32(rng.NormFloat64())
	}
	bias := []float32{0.1, -0.2, 0.3, 0}
	out := make([]float32, h*w*cout)
	Conv3x3(out, in, h, w, cin, cout, wt, bias, make([]float32, 9*cin), false)
	for y := range h {
		for x := range w {
			for c := range cout {
				s := float64(bias[c])
				for ky := range 3 {
					for kx := range 3 {
						yy, xx := y+ky-1, x+kx-1
						if yy < 0 || yy >= h || xx < 0 || xx >= w {
							continue
						}
						for i := range cin {
							s += float64(wt[((c*3+ky)*3+kx)*cin+i]) * float64(in[(yy*w+xx)*cin+i])
						}
					}
				}
				if got := out[(y*w+x)*cout+c]; math.Abs(float64(got)-s) > 1e-4 {
					t.Fatalf("(%d,%d,%d): %v, want %v", y, x, c, got, s)
				}
			}
		}
	}
}

func TestCNNParamsCheck(t *testing.T) {
	p := &CNNParams{InStd: [3]float64{1, 1, 1}}
	if err := p.Check(); err == nil {
		t.Fatal("empty CNN accepted")
	}
	for l := range 4 {
		p.Conv[l] = make([]float32, CNNLayerSize(l))
		p.Bias[l] = make([]float32, CNNLayerOut(l))
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	p.InStd[1] = 0
	if err := p.Check(); err == nil {
		t.Fatal("zero in_std accepted")
	}
	p.InStd[1] = 1
	p.Conv[2][3] = float32(math.NaN())
	if err := p.Check(); err == nil {
		t.Fatal("NaN weight accepted")
	}
}
