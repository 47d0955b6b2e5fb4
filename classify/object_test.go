package classify

import (
	"encoding/json"
	"math"
	"testing"
)

// areaFilter is an object filter with known weights: a logistic regression
// on the log area alone that keeps components larger than about 30 µm².
func areaFilter(t *testing.T) *ObjectFilter {
	t.Helper()
	p := ObjectParams{Version: "test-area", Features: ObjectFeatureNames, Threshold: 0.5}
	p.Mean = make([]float64, NumObjectFeatures)
	p.Std = make([]float64, NumObjectFeatures)
	for i := range p.Std {
		p.Std[i] = 1
	}
	p.Mean[0] = math.Log(30) // score 0.5 at 30 µm²
	p.Weights = make([]float64, NumObjectFeatures+1)
	p.Weights[0] = 10 // log_area_um2
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := LoadObjectFilter(b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestObjectFilterKnownWeights: with a filter that keeps only components
// above 30 µm², a tile with a large (≈78 µm²) and a small (≈20 µm²) nucleus
// keeps the large one and drops the small one; without the filter both are
// detected.
func TestObjectFilterKnownWeights(t *testing.T) {
	img := synthTile(400, 300, []blob{{x: 100, y: 150, rx: 20, ry: 20}, {x: 300, y: 150, rx: 10, ry: 10}}, 31)
	// 0.25 µm/px: r 20 px = 5 µm (78.5 µm²), r 10 px = 2.5 µm (19.6 µm²).
	off := NewDetector(DetectOptions{NoObjectFilter: true})
	ns := off.Detect(img)
	if near(ns, 100, 150, 5) == nil || near(ns, 300, 150, 5) == nil {
		t.Fatalf("without the filter both nuclei should be detected: %+v", ns)
	}
	var v ObjectVector
	for i := range ns {
		off.ObjectFeatures(&ns[i], &v)
		if got, want := v[0], math.Log(ns[i].AreaUM2); math.Abs(got-want) > 1e-9 {
			t.Errorf("log area %v, want %v", got, want)
		}
	}
	f := areaFilter(t)
	on := NewDetector(DetectOptions{ObjectFilter: f})
	if on.ObjectFilter() != f {
		t.Fatal("the detector does not use the given filter")
	}
	ns = on.Detect(img)
	if near(ns, 100, 150, 5) == nil {
		t.Errorf("the large nucleus was dropped: %+v", ns)
	}
	if near(ns, 300, 150, 5) != nil {
		t.Errorf("the small nucleus was kept: %+v", ns)
	}
	// Off with the fold test (as cell-model training pins it).
	if NewDetector(DetectOptions{FoldRingOD: -1}).ObjectFilter() != nil {
		t.Error("a negative FoldRingOD should turn the object filter off")
	}
}

// TestObjectFilterHeldOut: an image a fold held out is scored by that fold,
// any other by the final model.
func TestObjectFilterHeldOut(t *testing.T) {
	base := areaFilter(t).Params()
	keepAll := base.ObjectHead
	keepAll.Weights = make([]float64, NumObjectFeatures+1)
	keepAll.Weights[NumObjectFeatures] = 10
	p := base
	p.Folds = []ObjectFold{{ObjectHead: keepAll, Fields: []string{"cric/b.png"}}, {ObjectHead: base.ObjectHead, Fields: []string{"cric/a.png"}}}
	f, err := NewObjectFilter(p)
	if err != nil {
		t.Fatal(err)
	}
	img := synthTile(400, 300, []blob{{x: 100, y: 150, rx: 20, ry: 20}, {x: 300, y: 150, rx: 10, ry: 10}}, 31)
	d := NewDetector(DetectOptions{ObjectFilter: f})
	for _, c := range []struct {
		field     string
		fold, n   int
		trainedOn bool
	}{{"cric/a.png", 0, 2, true}, {"cric/b.png", 1, 1, true}, {"cric/new.png", -1, 1, false}} {
		ns, k := d.DetectHeldOut(img, c.field)
		if k != c.fold || len(ns) != c.n || f.TrainedOn(c.field) != c.trainedOn {
			t.Errorf("%s: fold %d, %d nuclei, trained %v; want %d, %d, %v", c.field, k, len(ns), f.TrainedOn(c.field), c.fold, c.n, c.trainedOn)
		}
	}
}

func TestObjectFilterRejectsBadParams(t *testing.T) {
	good := areaFilter(t).Params()
	for name, mut := range map[string]func(p *ObjectParams){
		"features":  func(p *ObjectParams) { p.Features = p.Features[:3] },
		"threshold": func(p *ObjectParams) { p.Threshold = 2 },
		"weights":   func(p *ObjectParams) { p.Weights = p.Weights[:2] },
		"std":       func(p *ObjectParams) { p.Std = append([]float64{0}, p.Std[1:]...) },
		"hidden":    func(p *ObjectParams) { p.Hidden = [][]float64{{1}} },
	} {
		p := good
		p.ObjectHead.Std = append([]float64(nil), good.Std...)
		mut(&p)
		if _, err := NewObjectFilter(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := LoadObjectFilter([]byte("{")); err == nil {
		t.Error("bad JSON: no error")
	}
}

// TestDefaultObjectFilter: the embedded weights load, name a version and
// carry their cross-validation folds.
func TestDefaultObjectFilter(t *testing.T) {
	f, err := DefaultObjectFilter()
	if err != nil {
		t.Fatal(err)
	}
	if f.Version == "" || len(f.SHA256) != 64 || len(f.Params().Folds) < 2 {
		t.Fatalf("embedded object filter: version %q sha %q, %d folds", f.Version, f.SHA256, len(f.Params().Folds))
	}
	if NewDetector(DetectOptions{}).ObjectFilter() != f {
		t.Error("the default detector does not use the embedded filter")
	}
	// The robot's Analyzer (scan) uses it with the same defaults.
	if NewAnalyzer(DetectOptions{PixelUM: 0.5, MinAreaUM2: 10}, nil).Detector.ObjectFilter() != f {
		t.Error("the Analyzer's detector does not use the embedded filter")
	}
}

func FuzzLoadObjectFilter(f *testing.F) {
	f.Add(defaultObjectWeights)
	f.Add([]byte(`{"features":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = LoadObjectFilter(b)
	})
}
