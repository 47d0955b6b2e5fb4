package train

import (
	"math"
	"math/rand"
	"testing"

	"papscan/classify"
)

// loss returns the weighted cross-entropy of the sample in sc.x.
func (n *cnnNet) loss(sc *trainScratch, y int, w float32) float64 {
	p := n.forward(sc)
	return -float64(w) * math.Log(float64(p[y]))
}

// TestCNNGradient checks backward against central finite differences on a
// few weights of every layer.
func TestCNNGradient(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	n := newNet()
	for l := range classify.CNNLayers + 1 {
		for i := range n.w[l] {
			n.w[l][i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range n.b[l] {
			n.b[l][i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	sc := newTrainScratch()
	for i := range sc.x {
		sc.x[i] = float32(rng.NormFloat64())
	}
	const y, w = 2, 1.3
	sc.grad.zero()
	p := n.forward(sc)
	n.backward(sc, p, y, w)
	bad, checked := 0, 0
	for l := range classify.CNNLayers + 1 {
		for range 12 {
			i := rng.Intn(len(n.w[l]))
			old := n.w[l][i]
			const eps = 1e-2
			n.w[l][i] = old + eps
			lp := n.loss(sc, y, w)
			n.w[l][i] = old - eps
			lm := n.loss(sc, y, w)
			n.w[l][i] = old
			num := (lp - lm) / (2 * eps)
			got := float64(sc.grad.w[l][i])
			checked++
			if math.Abs(num-got) > 0.02+0.1*math.Abs(num) {
				bad++
				t.Logf("layer %d weight %d: backward %.5f, numeric %.5f", l, i, got, num)
			}
		}
	}
	// A ReLU or max-pool switching inside ±eps may spoil a rare check.
	if bad > 2 {
		t.Fatalf("%d of %d gradient checks failed", bad, checked)
	}
}

// TestFitCNNLearns trains on a toy problem (dark big blob = high grade,
// small pale blob = NILM) and checks the CNN separates held-out crops.
func TestFitCNNLearns(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	mk := func(high bool) *Crop {
		c := new(Crop)
		r, od := 4.0+rng.Float64(), 0.35
		if high {
			r, od = 8.0+rng.Float64()*2, 0.8
		}
		for j := range CropSide {
			for i := range CropSide {
				d := math.Hypot(float64(i)-CropSide/2+0.5, float64(j)-CropSide/2+0.5)
				v := 0.05 + 0.02*rng.Float64()
				if d < r {
					v = od
				}
				px := uint8(math.Max(0, math.Min(255, 256*math.Pow(10, -v)-1)))
				k := (j*CropSide + i) * 3
				c[k], c[k+1], c[k+2] = px, px, uint8(math.Min(255, float64(px)+20))
			}
		}
		return c
	}
	var tr []Sample
	for i := range 60 {
		cl := classify.NILM
		if i%2 == 0 {
			cl = classify.HSIL
		}
		tr = append(tr, Sample{Class: cl, Crop: mk(cl == classify.HSIL)})
	}
	o := DefaultCNN()
	o.Epochs = 6
	p, err := fitCNN(t.Context(), tr, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	hi := predictCNN(p, []*Crop{mk(true), mk(true)})
	lo := predictCNN(p, []*Crop{mk(false), mk(false)})
	if min(hi[0][2], hi[1][2]) <= max(lo[0][2], lo[1][2]) {
		t.Fatalf("P(high) of dark big blobs %v not above pale small blobs %v", hi, lo)
	}
}
