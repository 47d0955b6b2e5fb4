package train

import (
	"io"
	"math"
	"math/rand"
	"testing"

	"papscan/classify"
)

func (n *wideNet) loss(sc *wideScratch, y int, w float32) float64 {
	p := n.forward(sc)
	return -float64(w) * math.Log(float64(p[y]))
}

// TestWideGradient checks the second stage's backward against central
// finite differences on a few weights of every layer.
func TestWideGradient(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	n := newWideNet()
	for l := range classify.CascadeLayers + 1 {
		for i := range n.w[l] {
			n.w[l][i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range n.b[l] {
			n.b[l][i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	sc := newWideScratch()
	for i := range sc.x {
		sc.x[i] = float32(rng.NormFloat64())
	}
	const y, w = 4, 1.3
	sc.grad.zero()
	p := n.forward(sc)
	n.backward(sc, p, y, w)
	bad, checked := 0, 0
	for l := range classify.CascadeLayers + 1 {
		for range 10 {
			i := rng.Intn(len(n.w[l]))
			old := n.w[l][i]
			const eps = 3e-3
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
	if bad > 2 {
		t.Fatalf("%d of %d gradient checks failed", bad, checked)
	}
}

// TestFitWideLearns trains the second stage on a toy problem (dark big
// blob = HSIL, small pale blob = NILM) and checks that the inference path
// (classify.CascadeRunner on the centre crop) separates new crops, and
// that two fits with one seed are identical.
func TestFitWideLearns(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	mk := func(high bool) *Wide {
		c := new(Wide)
		r, od := 4.0+rng.Float64(), 0.35
		if high {
			r, od = 8.0+rng.Float64()*2, 0.8
		}
		for j := range WideSide {
			for i := range WideSide {
				d := math.Hypot(float64(i)-WideSide/2+0.5, float64(j)-WideSide/2+0.5)
				v := 0.05 + 0.02*rng.Float64()
				if d < r {
					v = od
				}
				px := uint8(math.Max(0, math.Min(255, 256*math.Pow(10, -v)-1)))
				k := (j*WideSide + i) * 3
				c[k], c[k+1], c[k+2] = px, px, uint8(math.Min(255, float64(px)+20))
			}
		}
		return c
	}
	var tr []Sample
	for i := range 40 {
		cl := classify.NILM
		if i%2 == 0 {
			cl = classify.HSIL
		}
		tr = append(tr, Sample{Class: cl, Wide: mk(cl == classify.HSIL)})
	}
	o := DefaultCascade()
	o.Epochs = 5
	p, err := fitWide(t.Context(), tr, o)
	if err != nil {
		t.Fatal(err)
	}
	q, err := fitWide(t.Context(), tr, o)
	if err != nil {
		t.Fatal(err)
	}
	for l := range p.Conv {
		for i := range p.Conv[l] {
			if p.Conv[l][i] != q.Conv[l][i] {
				t.Fatalf("two fits differ at layer %d weight %d", l, i)
			}
		}
	}
	r, err := classify.NewCascadeRunner(p)
	if err != nil {
		t.Fatal(err)
	}
	lut := classify.ODLUT()
	score := func(c *Wide) float32 {
		var x [classify.CascadeInputLen]float32
		centreWide(&x, c, &lut)
		pr := classify.CascadeProbs(r.Logits(&x), 1)
		return pr[classify.HSIL] - pr[classify.NILM]
	}
	hi := min(score(mk(true)), score(mk(true)))
	lo := max(score(mk(false)), score(mk(false)))
	if hi <= lo {
		t.Fatalf("P(HSIL)-P(NILM) of dark big blobs %v not above pale small blobs %v", hi, lo)
	}
}

// TestTrainCascadeSmall: the second stage trained on top of the embedded
// model (toy crops on real field names, so every sample has a held-out
// fold) loads, carries one network per fold, names its version and is
// reproducible.
func TestTrainCascadeSmall(t *testing.T) {
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	base := m.Params()
	if len(base.Folds) == 0 {
		t.Skip("embedded model has no folds")
	}
	rng := rand.New(rand.NewSource(9))
	// One field held out by each fold.
	var fields []string
	for k := range base.Folds {
		in := map[string]bool{}
		for _, f := range base.Folds[k].Fields {
			in[f] = true
		}
		for _, f := range base.Folds[(k+1)%len(base.Folds)].Fields {
			if !in[f] {
				fields = append(fields, f)
				break
			}
		}
	}
	var samples []Sample
	for i := range 30 {
		cl := classify.Class(i % classify.NumClasses)
		w := new(Wide)
		for j := range w {
			w[j] = uint8(200 - 20*int(cl) + rng.Intn(20))
		}
		c := new(Crop)
		copy(c[:], w[:len(c)])
		samples = append(samples, Sample{ID: "s", Field: fields[i%len(fields)], Class: cl, Wide: w, Crop: c})
	}
	o := DefaultCascade()
	o.Epochs, o.TrainGate = 2, 0
	run := func() classify.ModelParams {
		p, rep, err := TrainCascade(t.Context(), base, samples, len(samples), o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Train != len(samples) || !(rep.Temperature > 0) {
			t.Fatalf("report %+v", rep)
		}
		return p
	}
	p := run()
	if p.Version != base.Version+"+"+VersionCascade || p.Cascade == nil {
		t.Fatalf("version %s cascade %v", p.Version, p.Cascade != nil)
	}
	for k, f := range p.Folds {
		if f.Cascade == nil {
			t.Fatalf("fold %d has no cascade", k)
		}
	}
	if _, err := classify.NewModel(p); err != nil {
		t.Fatal(err)
	}
	q := run()
	for l := range p.Cascade.Net.Conv {
		for i, v := range p.Cascade.Net.Conv[l] {
			if q.Cascade.Net.Conv[l][i] != v {
				t.Fatalf("two runs differ at layer %d weight %d", l, i)
			}
		}
	}
}
