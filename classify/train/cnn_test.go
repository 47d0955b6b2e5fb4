package train

import (
	"fmt"
	"math"
	"math/rand"
	"strings"
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

// TestCNNGradientAbnormal checks backwardAbnormal (loss −w·log(P(low) +
// P(high))) against central finite differences on the final layer and the
// first convolution.
func TestCNNGradientAbnormal(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
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
	const w = 0.7
	loss := func() float64 {
		p := n.forward(sc)
		return -w * math.Log(float64(p[1]+p[2]))
	}
	sc.grad.zero()
	n.backwardAbnormal(sc, n.forward(sc), w)
	bad, checked := 0, 0
	for _, l := range []int{0, classify.CNNLayers} {
		for range 12 {
			i := rng.Intn(len(n.w[l]))
			old := n.w[l][i]
			const eps = 1e-2
			n.w[l][i] = old + eps
			lp := loss()
			n.w[l][i] = old - eps
			lm := loss()
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
	if bad > 2 {
		t.Fatalf("%d of %d gradient checks failed", bad, checked)
	}
}

// TestFitCNNNormLearnsAcrossStains: with a per-crop normalisation the CNN
// trained on one stain separates the toy classes (big irregular dark
// blob vs small round one) on crops whose OD is scaled per channel as
// another lab's stain would be, and the weights carry the normalisation.
func TestFitCNNNormLearnsAcrossStains(t *testing.T) {
	for _, norm := range []string{classify.CNNNormCropStd, classify.CNNNormCropGain} {
		t.Run(norm, func(t *testing.T) {
			rng := rand.New(rand.NewSource(5))
			mk := func(high bool, gain [3]float64) *Crop {
				c := new(Crop)
				r := 3.0 + rng.Float64()
				if high {
					r = 8.0 + rng.Float64()*2
				}
				for j := range CropSide {
					for i := range CropSide {
						d := math.Hypot(float64(i)-CropSide/2+0.5, float64(j)-CropSide/2+0.5)
						od := [3]float64{0.1, 0.08, 0.05}
						if d < r {
							od = [3]float64{0.6, 0.5, 0.3}
						}
						k := (j*CropSide + i) * 3
						for ch := range 3 {
							v := od[ch]*gain[ch] + 0.01*rng.Float64()
							c[k+ch] = uint8(math.Max(0, math.Min(255, 256*math.Pow(10, -v)-1)))
						}
					}
				}
				return c
			}
			one := [3]float64{1, 1, 1}
			var tr []Sample
			for i := range 60 {
				cl := classify.NILM
				if i%2 == 0 {
					cl = classify.HSIL
				}
				tr = append(tr, Sample{Class: cl, Crop: mk(cl == classify.HSIL, one)})
			}
			o := DefaultCNN()
			o.Epochs, o.Norm = 6, norm
			p, err := fitCNN(t.Context(), tr, o)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Check(); err != nil {
				t.Fatal(err)
			}
			if p.InputNorm != norm {
				t.Fatalf("input_norm %q, want %q", p.InputNorm, norm)
			}
			other := [3]float64{1.6, 0.7, 1.4}
			hi := predictCNN(p, []*Crop{mk(true, other), mk(true, other)})
			lo := predictCNN(p, []*Crop{mk(false, other), mk(false, other)})
			if min(hi[0][2], hi[1][2]) <= max(lo[0][2], lo[1][2]) {
				t.Fatalf("restained: P(high) of big blobs %v not above small blobs %v", hi, lo)
			}
		})
	}
	o := DefaultCNN()
	o.Norm = "bogus"
	if _, err := fitCNN(t.Context(), []Sample{{Crop: new(Crop)}}, o); err == nil || !strings.Contains(err.Error(), "norm") {
		t.Fatalf("unknown norm: %v", err)
	}
}

// TestAssignFoldsOtherLabs: adding another lab's groups leaves every CRIC
// field in its fold, and each group stays whole in one fold.
func TestAssignFoldsOtherLabs(t *testing.T) {
	var cric []Sample
	for i := range 40 {
		cric = append(cric, Sample{Field: fmt.Sprintf("f%02d.png", i)})
	}
	base := AssignFolds(cric, 5, 1)
	all := append([]Sample(nil), cric...)
	for i := range 30 {
		all = append(all, Sample{Field: fmt.Sprintf("sipakmed/g%02d", i), Other: true})
	}
	got := AssignFolds(all, 5, 1)
	for f, k := range base {
		if got[f] != k {
			t.Fatalf("field %s moved from fold %d to %d", f, k, got[f])
		}
	}
	var per [5]int
	for i := range 30 {
		k, ok := got[fmt.Sprintf("sipakmed/g%02d", i)]
		if !ok {
			t.Fatalf("group %d has no fold", i)
		}
		per[k]++
	}
	for k, n := range per {
		if n != 6 {
			t.Fatalf("fold %d holds %d of 30 other-lab groups: %v", k, n, per)
		}
	}
}

// TestBlurCrop checks the augmentation's blur keeps a flat crop flat,
// keeps the light of a line and spreads it along the asked axis only.
func TestBlurCrop(t *testing.T) {
	var c, out Crop
	for i := range c {
		c[i] = 100
	}
	for j := range CropSide {
		c[(j*CropSide+CropSide/2)*3] = 200 // a vertical line in red
	}
	BlurCrop(&out, &c, 0, 1)
	if out != c {
		t.Fatal("a blur along y changed a vertical line")
	}
	BlurCrop(&out, &c, 1, 0)
	var mass float64
	for i := range CropSide {
		mass += float64(out[(5*CropSide+i)*3]) - 100
	}
	if mass < 97 || mass > 103 || out[(5*CropSide+CropSide/2)*3] > 145 || out[(5*CropSide+CropSide/2+1)*3] < 120 {
		t.Fatalf("line after a 1 px blur along x: mass %.0f (want 100), centre %d, neighbour %d", mass, out[(5*CropSide+CropSide/2)*3], out[(5*CropSide+CropSide/2+1)*3])
	}
	if out[1] != 100 || out[2] != 100 {
		t.Fatal("flat channels changed")
	}
}

// TestBalanceFields: at α 1 every field's high-grade cells weigh the same
// in total, the group's total is kept, and other samples are untouched.
func TestBalanceFields(t *testing.T) {
	var samples []Sample
	for range 9 {
		samples = append(samples, Sample{Field: "big", Class: classify.HSIL})
	}
	samples = append(samples, Sample{Field: "small", Class: classify.SCC},
		Sample{Field: "big", Class: classify.NILM}, Sample{Field: "neg", Class: classify.NILM, Extra: true})
	wts := make([]float32, len(samples))
	for i := range wts {
		wts[i] = 0.1
	}
	balanceFields(samples, wts, 1)
	var big, small float64
	for i, s := range samples[:10] {
		if s.Field == "big" {
			big += float64(wts[i])
		} else {
			small += float64(wts[i])
		}
	}
	if math.Abs(big-small) > 1e-6 || math.Abs(big+small-1.0) > 1e-6 {
		t.Errorf("field totals %.4f and %.4f, want 0.5 each (group total 1)", big, small)
	}
	if wts[10] != 0.1 || wts[11] != 0.1 {
		t.Errorf("NILM and field-negative weights changed: %v %v", wts[10], wts[11])
	}
	// α 0.5: the big field still weighs more, but less than 9:1.
	for i := range wts {
		wts[i] = 0.1
	}
	balanceFields(samples, wts, 0.5)
	if r := float64(wts[0]*9) / float64(wts[9]); r < 2.9 || r > 3.1 {
		t.Errorf("α 0.5: big/small field weight %.2f, want 3 (sqrt 9)", r)
	}
}
