package classify

import (
	"image"
	"math"
	"math/rand"
	"testing"
)

func randomCascadeNet(rng *rand.Rand) *CascadeNet {
	p := &CascadeNet{InMean: [3]float64{0.2, 0.3, 0.1}, InStd: [3]float64{0.5, 0.4, 0.3}}
	for l := range CascadeLayers + 1 {
		p.Conv[l] = make([]float32, CascadeLayerSize(l))
		p.Bias[l] = make([]float32, CascadeLayerOut(l))
		for i := range p.Conv[l] {
			p.Conv[l][i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range p.Bias[l] {
			p.Bias[l][i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	return p
}

// TestCascadeForwardMatchesReference: the padded inference path of the
// second stage gives the logits of a plain Conv3x3 / MaxPool2 / GlobalAvg
// composition (the training path).
func TestCascadeForwardMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(5))
	p := randomCascadeNet(rng)
	r, err := NewCascadeRunner(p)
	if err != nil {
		t.Fatal(err)
	}
	var crop [CascadeInputLen]float32
	for i := range crop {
		crop[i] = float32(rng.Float64())
	}
	got := r.Logits(&crop)
	x := make([]float32, CascadeInputLen)
	for i, v := range crop {
		c := i % CNNChannels
		x[i] = float32((float64(v) - p.InMean[c]) / p.InStd[c])
	}
	patch := make([]float32, 9*64)
	for l := range CascadeLayers {
		s := CascadeLayerSide(l)
		a := make([]float32, s*s*CascadeWidths[l])
		Conv3x3(a, x, s, s, CascadeLayerIn(l), CascadeWidths[l], p.Conv[l], p.Bias[l], patch, true)
		if l < CascadeLayers-1 {
			x = make([]float32, s*s/4*CascadeWidths[l])
			MaxPool2(x, a, s, s, CascadeWidths[l])
		} else {
			x = a
		}
	}
	wl := CascadeWidths[CascadeLayers-1]
	last := CascadeLayerSide(CascadeLayers - 1)
	pooled := make([]float32, wl)
	GlobalAvg(pooled, x, last*last, wl)
	for g := range NumClasses {
		want := p.Bias[CascadeLayers][g] + dot(p.Conv[CascadeLayers][g*wl:(g+1)*wl], pooled)
		if math.Abs(float64(got[g]-want)) > 1e-3*max(1, math.Abs(float64(want))) {
			t.Fatalf("class %d: forward %v, reference %v", g, got[g], want)
		}
	}
}

func TestCascadeParamsCheck(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	good := randomCascadeNet(rng)
	for name, p := range map[string]CascadeParams{
		"short layer": {Gate: 0.2, Weight: 0.5, Net: CascadeNet{InStd: good.InStd}},
		"gate":        {Gate: 1.5, Weight: 0.5, Net: *good},
		"weight":      {Gate: 0.2, Weight: -1, Net: *good},
		"temperature": {Gate: 0.2, Weight: 0.5, Temperature: 50, Net: *good},
	} {
		if _, err := compileCascade(&p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	nan := *good
	nan.Conv[1] = append([]float32(nil), good.Conv[1]...)
	nan.Conv[1][3] = float32(math.NaN())
	if _, err := compileCascade(&CascadeParams{Gate: 0.2, Weight: 0.5, Net: nan}); err == nil {
		t.Error("NaN weight accepted")
	}
}

// synthNucleus is a dark disc on a pale cytoplasm, on glass.
func synthNucleus(size int, dark uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	c := float64(size) / 2
	for y := range size {
		for x := range size {
			o := img.PixOffset(x, y)
			v := uint8(225)
			if d := math.Hypot(float64(x)-c, float64(y)-c+2); d < 14 {
				v = dark
			} else if d < 40 {
				v = 190
			}
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = v, v+10, v+20, 255
		}
	}
	return img
}

// withCascade returns the default model with a random second stage at
// gate, on the final model and every fold.
func withCascade(t testing.TB, gate float64) (*Model, *Model) {
	t.Helper()
	base, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	p := base.Params()
	if p.Cascade != nil {
		// The shipped model already has one: strip it for the base.
		p.Cascade = nil
		p.Folds = append([]Fold(nil), p.Folds...)
		for k := range p.Folds {
			p.Folds[k].Cascade = nil
		}
		if base, err = NewModel(p); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewSource(7))
	net := randomCascadeNet(rng)
	p.Cascade = &CascadeParams{Gate: gate, Weight: 0.5, Temperature: 1.3, Net: *net}
	p.Folds = append([]Fold(nil), p.Folds...)
	for k := range p.Folds {
		p.Folds[k].Cascade = randomCascadeNet(rng)
	}
	m, err := NewModel(p)
	if err != nil {
		t.Fatal(err)
	}
	return base, m
}

// TestCascadeGate: below the gate a cell keeps its first-stage
// probabilities; at or above it they are mixed with the second stage's,
// identically on the robot's path (Classify) and evaluation's
// (Measure + PredictInput).
func TestCascadeGate(t *testing.T) {
	img := synthNucleus(120, 70)
	n := Nucleus{X: 60, Y: 58, AreaPx: 600, PixelUM: 0.25}
	base, _ := withCascade(t, 0)
	c0 := base.Classify(img, n)
	// Gate above the cell's suspicion: unchanged.
	_, high := withCascade(t, math.Min(1, float64(c0.Score)+0.01))
	if c := high.Classify(img, n); c.Probs != c0.Probs {
		t.Fatalf("below the gate: %v, first stage %v", c.Probs, c0.Probs)
	}
	// Gate 0: every cell is re-scored.
	_, all := withCascade(t, 0)
	c := all.Classify(img, n)
	if c.Probs == c0.Probs {
		t.Fatal("the second stage had no effect at gate 0")
	}
	var s float32
	for _, v := range c.Probs {
		s += v
	}
	if math.Abs(float64(s)-1) > 1e-4 {
		t.Fatalf("probabilities sum to %v", s)
	}
	if c.Score != SuspicionScore(c.Probs) {
		t.Fatalf("score %v, suspicion of probs %v", c.Score, SuspicionScore(c.Probs))
	}
	var in Input
	if !all.Measure(img, n, &in) || !in.HasWide {
		t.Fatal("Measure gave no wide crop")
	}
	p := all.PredictInput(&in)
	for k := range p {
		if math.Abs(float64(p[k]-c.Probs[k])) > 1e-5 {
			t.Fatalf("Classify %v, Measure+PredictInput %v", c.Probs, p)
		}
	}
}

// TestHeldOutUsesFoldCascade: a field a fold held out is re-scored by that
// fold's second stage, not the final one.
func TestHeldOutUsesFoldCascade(t *testing.T) {
	_, m := withCascade(t, 0)
	p := m.Params()
	if len(p.Folds) == 0 || len(p.Folds[0].Fields) == 0 {
		t.Skip("model has no folds")
	}
	// A field of fold 1's training set that fold 0 did not see.
	in0 := map[string]bool{}
	for _, f := range p.Folds[0].Fields {
		in0[f] = true
	}
	field := ""
	for _, f := range p.Folds[1].Fields {
		if !in0[f] {
			field = f
			break
		}
	}
	if field == "" {
		t.Skip("no field held out by fold 0")
	}
	img := synthNucleus(120, 70)
	n := Nucleus{X: 60, Y: 58, AreaPx: 600, PixelUM: 0.25}
	var in Input
	if !m.Measure(img, n, &in) {
		t.Fatal("no measurement")
	}
	got, fold := m.PredictHeldOutInput(field, &in)
	if fold != 0 {
		t.Fatalf("fold %d, want 0", fold)
	}
	fp := p
	fp.Folds = nil
	fp.Head, fp.High, fp.CNN, fp.ClassBias = p.Folds[0].Head, p.Folds[0].High, p.Folds[0].CNN, p.Folds[0].ClassBias
	if fp.ClassBias == nil {
		fp.ClassBias = p.ClassBias
	}
	cp := *p.Cascade
	cp.Net = *p.Folds[0].Cascade
	fp.Cascade = &cp
	fm, err := NewModel(fp)
	if err != nil {
		t.Fatal(err)
	}
	want := fm.PredictInput(&in)
	if got != want {
		t.Fatalf("held out %v, fold 0 model %v", got, want)
	}
	if m.PredictInput(&in) == got {
		t.Fatal("final and fold second stage agree: test cannot tell them apart")
	}
}

// BenchmarkCascadeForward: one second-stage inference (per core).
func BenchmarkCascadeForward(b *testing.B) {
	rng := rand.New(rand.NewSource(1))
	c, err := compileCascade(&CascadeParams{Gate: 0.2, Weight: 0.5, Net: *randomCascadeNet(rng)})
	if err != nil {
		b.Fatal(err)
	}
	sc := newCascadeScratch()
	var crop [CascadeInputLen]float32
	for i := range crop {
		crop[i] = float32(rng.Float64())
	}
	b.ReportAllocs()
	for b.Loop() {
		c.probs(&crop, sc)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cells/s")
}
