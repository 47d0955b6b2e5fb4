package train

import (
	"context"
	"encoding/json"
	"math/rand"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// synthSamples draws separable samples: feature 0 shifts with the class.
func synthSamples(n int, seed int64) []Sample {
	rng := rand.New(rand.NewSource(seed))
	out := make([]Sample, n)
	for i := range out {
		c := classify.Class(i % classify.NumClasses)
		var f classify.Features
		for j := range f {
			f[j] = float32(rng.NormFloat64())
		}
		f[0] += 3 * float32(c)
		f[1] += 2 * float32(c%2)
		out[i] = Sample{ID: string(rune('a' + i%26)), Field: string(rune('A' + i%12)), Class: c, F: f}
	}
	return out
}

func TestFitDeterministicAndLearns(t *testing.T) {
	s := synthSamples(240, 1)
	for _, hidden := range []int{0, 8} {
		fo := FitOptions{Hidden: hidden, Iters: 150, LR: 0.03, Lambda: 1e-3, HighGradeWeight: 1.5, Seed: 7}
		h1, h2 := fit(s, fo), fit(s, fo)
		if !reflect.DeepEqual(h1, h2) {
			t.Fatalf("hidden %d: two fits with the same seed differ", hidden)
		}
		m, err := classify.NewModel(params(DefaultPixelUM, h1))
		if err != nil {
			t.Fatal(err)
		}
		correct := 0
		for _, x := range s {
			p := m.Predict(x.F)
			best := 0
			for c := range p {
				if p[c] > p[best] {
					best = c
				}
			}
			if classify.Class(best) == x.Class {
				correct++
			}
		}
		if acc := float64(correct) / float64(len(s)); acc < 0.8 {
			t.Errorf("hidden %d: training accuracy %.2f on separable data", hidden, acc)
		}
	}
}

func TestCrossValidateHoldsOutFields(t *testing.T) {
	s := synthSamples(120, 2)
	fold := AssignFolds(s, 3, 1)
	folds, probs, err := CrossValidate(context.Background(), s, fold, 3, FitOptions{Hidden: 0, Iters: 50, LR: 0.05, Lambda: 1e-3, HighGradeWeight: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(folds) != 3 || len(probs) != len(s) {
		t.Fatalf("%d folds %d probs", len(folds), len(probs))
	}
	for k, f := range folds {
		for _, name := range f.Fields {
			if fold[name] == k {
				t.Errorf("fold %d trained on its own held-out field %s", k, name)
			}
		}
	}
	p := params(DefaultPixelUM, folds[0].Head)
	p.Folds = folds
	m, err := classify.NewModel(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range s[:12] {
		if _, k := m.PredictHeldOut(x.Field, x.F); k != fold[x.Field] {
			t.Errorf("field %s predicted by fold %d, held out by %d", x.Field, k, fold[x.Field])
		}
	}
	if _, k := m.PredictHeldOut("never-seen.png", s[0].F); k != -1 {
		t.Errorf("unseen field used fold %d", k)
	}
}

// TestTrainSmallReal trains on the first crops of the real data twice: same
// weights (reproducible), loadable, version and folds present.
func TestTrainSmallReal(t *testing.T) {
	dir := dataset.Dir()
	if dir == "" {
		t.Skip("shared data not found")
	}
	o := Options{Seed: 1, MaxCells: 120, FieldNegatives: -1, Fit: FitOptions{Hidden: 4, Iters: 40, LR: 0.02, Lambda: 1e-3, HighGradeWeight: 1.5, Seed: 1}}
	p1, rep, err := Train(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	p2, _, err := Train(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := json.Marshal(p1)
	b2, _ := json.Marshal(p2)
	if string(b1) != string(b2) {
		t.Fatal("two runs with the same seed give different weights")
	}
	m, err := classify.LoadModel(b1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != Version || len(p1.Folds) != Folds || rep.Samples < 100 {
		t.Fatalf("version %s folds %d samples %d", m.Version, len(p1.Folds), rep.Samples)
	}
}

func TestEmbeddedModelIsCurrent(t *testing.T) {
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	p := m.Params()
	if m.Version != VersionCNN || p.CNN == nil || p.Folds[0].CNN == nil || p.CNNWeight != DefaultCNNWeight || p.CNNNILMWeight != DefaultCNNNILMWeight || !(p.Temperature > 0) || p.PixelUM != DefaultPixelUM || len(p.Folds) != Folds || len(p.Hidden) != DefaultFit().Hidden {
		t.Fatalf("embedded model %s px %.2f folds %d hidden %d", m.Version, p.PixelUM, len(p.Folds), len(p.Hidden))
	}
}

// TestFitTemperature: over-confident predictions that are often wrong are
// softened (T > 1), well-calibrated ones are left near 1.
func TestFitTemperature(t *testing.T) {
	var samples []Sample
	var probs [][classify.NumClasses]float32
	var idx []int
	for i := range 200 {
		c := classify.Class(i % 2)
		p := [classify.NumClasses]float32{0.01, 0.01, 0.01, 0.01, 0.01, 0.01}
		// Right 70 % of the time with confidence 0.95.
		pred := c
		if i%10 < 3 {
			pred = 1 - c
		}
		p[pred] = 0.95
		samples = append(samples, Sample{Class: c})
		probs = append(probs, p)
		idx = append(idx, i)
	}
	if T := fitTemperature(samples, probs, idx); !(T > 1.2 && T <= 4) {
		t.Fatalf("over-confident: T = %v, want > 1.2", T)
	}
}

// TestLoadCellSetSIPaKMeD loads the shared SIPaKMeD half as training
// samples (skipped without the data or in -short mode): keyed by source
// image, classes mapped, padding glass-filled.
func TestLoadCellSetSIPaKMeD(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 2,193 crops")
	}
	dir := dataset.Dir()
	if dir == "" {
		t.Skip("shared data not found")
	}
	fm, err := classify.NewModel(classify.ModelParams{PixelUM: DefaultPixelUM, WindowUM: WindowUM, Stain: classify.DefaultStain})
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadCellSet(context.Background(), filepath.Join(dir, "sipakmed"), fm)
	if err != nil {
		t.Fatal(err)
	}
	by := map[classify.Class]int{}
	for _, x := range s {
		if !x.Other || !x.Aux || x.Crop == nil || !strings.HasPrefix(x.Field, "sipakmed/") {
			t.Fatalf("sample %+v", x.ID)
		}
		by[x.Class]++
	}
	if len(s) < 2100 || by[classify.LSIL] < 400 || by[classify.HSIL] < 400 || by[classify.NILM] < 1200 {
		t.Fatalf("%d samples, by class %v", len(s), by)
	}
}
