package train

import (
	"context"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"papscan/classify"
	"papscan/classify/eval"
	"papscan/classify/internal/dataset"
)

// TestExperiment scores out-of-fold variants of the shipped model's heads
// on the training samples (README, "The cell model": the table of
// candidates). It runs only when PAPSCAN_XP names a cache file (the
// samples as LoadAll loads them with the training command's defaults,
// written on the first run, ~2 min, and read after):
//
//	PAPSCAN_XP=/tmp/samples.gob go test ./classify/train -run TestExperiment -v -timeout 60m
//
// Every sample is scored by the fold of classify/model_weights.json that
// never saw its field (its perceptron and CNN) and by heads fitted here on
// the same folds; each line gives the CRIC crops' figures with intervals
// over fields and the paired bootstrap difference to the shipped fusion
// (same resampled fields for both). PAPSCAN_XP_REL=1 (reference: the
// field's unlabelled objects), =all (every sample of the field) or
// =variants compares heads given features relative to the median of the
// field instead; PAPSCAN_XP_TREES sets TreeOptions (JSON);
// PAPSCAN_XP_DUMP=FILE writes the out-of-fold probabilities and features
// (JSON lines) and stops.
func TestExperiment(t *testing.T) {
	cache := os.Getenv("PAPSCAN_XP")
	if cache == "" {
		t.Skip("PAPSCAN_XP not set")
	}
	var ld Loaded
	if f, err := os.Open(cache); err == nil {
		if err := gob.NewDecoder(f).Decode(&ld); err != nil {
			t.Fatal(err)
		}
		f.Close()
	} else {
		o := Options{Seed: 1, MoreFields: true, MorePerField: 30, MoreAllCap: 200}
		l, err := LoadAll(context.Background(), dataset.Dir(), o)
		if err != nil {
			t.Fatal(err)
		}
		ld = *l
		for i := range ld.Samples {
			ld.Samples[i].Wide = nil
		}
		f, err := os.Create(cache)
		if err != nil {
			t.Fatal(err)
		}
		if err := gob.NewEncoder(f).Encode(&ld); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	samples := ld.Samples
	raw, err := os.ReadFile("../model_weights.json")
	if err != nil {
		t.Fatal(err)
	}
	var p classify.ModelParams
	if err := json.Unmarshal(raw, &p); err != nil {
		t.Fatal(err)
	}
	m, err := classify.LoadModel(raw)
	if err != nil {
		t.Fatal(err)
	}
	fold := map[string]int{}
	af := AssignFolds(samples, Folds, 1)
	for _, s := range samples {
		fold[s.Field] = m.HeldOutFold(s.Field)
		if fold[s.Field] != af[s.Field] {
			t.Fatalf("field %s: model fold %d, AssignFolds %d", s.Field, fold[s.Field], af[s.Field])
		}
	}
	n := len(samples)
	mlp := make([][classify.NumClasses]float32, n)
	cnn := make([][classify.CNNGroups]float32, n)
	tta := make([][classify.CNNGroups]float32, n)
	trees := make([][classify.NumClasses]float32, n)
	to := DefaultTrees()
	if v := os.Getenv("PAPSCAN_XP_TREES"); v != "" {
		if err := json.Unmarshal([]byte(v), &to); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("tree options %+v", to)
	for f := range Folds {
		fm, err := classify.NewModel(params(0.5, p.Folds[f].Head))
		if err != nil {
			t.Fatal(err)
		}
		var idx []int
		var crops []*Crop
		var fs []classify.Features
		var tr []Sample
		for i, s := range samples {
			if fold[s.Field] == f {
				idx = append(idx, i)
				crops = append(crops, s.Crop)
				fs = append(fs, s.F)
				mlp[i] = fm.Predict(s.F)
			} else {
				tr = append(tr, s)
			}
		}
		for j, g := range predictCNN(p.Folds[f].CNN, crops) {
			cnn[idx[j]] = g
		}
		for j, g := range predictCNNTTA(p.Folds[f].CNN, crops) {
			tta[idx[j]] = g
		}
		th := fitTrees(tr, DefaultFit(), to)
		pt, err := PredictTrees(th, fs)
		if err != nil {
			t.Fatal(err)
		}
		for j, q := range pt {
			trees[idx[j]] = q
		}
	}
	var cal []int
	for i, s := range samples {
		if !s.Extra && !s.Other {
			cal = append(cal, i)
		}
	}
	var base [][classify.NumClasses]float32
	var paired func(string, [][classify.NumClasses]float32)
	report := func(name string, probs [][classify.NumClasses]float32) {
		temp := fitTemperature(samples, probs, cal)
		nl := ld.NLabelled
		truth := make([]classify.Class, nl)
		fields := make([]string, nl)
		pp := make([][classify.NumClasses]float32, nl)
		for i, s := range samples[:nl] {
			truth[i], fields[i], pp[i] = s.Class, s.Field, classify.Temper(probs[i], 1/temp)
		}
		c := eval.Cells(truth, pp, fields, 0.32)
		if base == nil {
			base = pp
		} else {
			paired(name, pp)
		}
		fmt.Printf("%-28s T %.3f  AUC high %.3f %v  rec@.05 %.3f %v  AUC low %.3f %v  macroF1 %.3f %v\n", name, temp,
			c.AUCHighVsNILM, c.AUCHighVsNILMCI, c.HighGradeRecallAt05, c.HighGradeRecallAt05CI, c.AUCLowVsNILM, c.AUCLowVsNILMCI, c.MacroF1, c.MacroF1CI)
	}
	fused := func(head [][classify.NumClasses]float32, g [][classify.CNNGroups]float32, wh, wn float64) [][classify.NumClasses]float32 {
		out := make([][classify.NumClasses]float32, n)
		for i := range out {
			out[i] = fuse(head[i], g[i], wh, wn)
		}
		return out
	}
	avg := func(a, b [][classify.NumClasses]float32, wb float32) [][classify.NumClasses]float32 {
		out := make([][classify.NumClasses]float32, n)
		for i := range out {
			for c := range out[i] {
				out[i][c] = (1-wb)*a[i][c] + wb*b[i][c]
			}
		}
		return out
	}
	paired = func(name string, probs [][classify.NumClasses]float32) {
		nl := ld.NLabelled
		fields := make([]string, nl)
		for i, s := range samples[:nl] {
			fields[i] = s.Field
		}
		by := eval.FieldGroups(fields)
		stat := func(gs []int, pr [][classify.NumClasses]float32) [4]float64 {
			var hi, nilm, low, nilmAb []float64
			var conf [classify.NumClasses][classify.NumClasses]int
			for _, g := range gs {
				for _, i := range by[g] {
					p := pr[i]
					best := 0
					for c := range p {
						if p[c] > p[best] {
							best = c
						}
					}
					tc := samples[i].Class
					conf[tc][best]++
					ph := float64(classify.HighGradeProb(p))
					switch {
					case tc.HighGrade():
						hi = append(hi, ph)
					case tc.LowGrade():
						low = append(low, 1-float64(p[classify.NILM]))
					default:
						nilm = append(nilm, ph)
						nilmAb = append(nilmAb, 1-float64(p[classify.NILM]))
					}
				}
			}
			t05 := eval.ThresholdAtFPR(nilm, 0.05)
			k := 0
			for _, v := range hi {
				if v >= t05 {
					k++
				}
			}
			return [4]float64{eval.AUC(hi, nilm), float64(k) / float64(len(hi)), eval.AUC(low, nilmAb), eval.MacroF1(&conf)}
		}
		all := make([]int, len(by))
		for i := range all {
			all[i] = i
		}
		d0a, d0b := stat(all, probs), stat(all, base)
		rng := rand.New(rand.NewSource(1))
		var diffs [4][]float64
		gs := make([]int, len(by))
		for range 1000 {
			for i := range gs {
				gs[i] = rng.Intn(len(by))
			}
			a, b := stat(gs, probs), stat(gs, base)
			for k := range 4 {
				diffs[k] = append(diffs[k], a[k]-b[k])
			}
		}
		fmt.Printf("  %-26s paired diff vs shipped:", name)
		for k, nm := range []string{"AUC high", "rec@.05", "AUC low", "macroF1"} {
			sort.Float64s(diffs[k])
			fmt.Printf("  %s %+.3f [%+.3f, %+.3f]", nm, d0a[k]-d0b[k], diffs[k][25], diffs[k][974])
		}
		fmt.Println()
	}
	report("mlp+cnn (shipped)", fused(mlp, cnn, 0.7, 0.5))
	if d := os.Getenv("PAPSCAN_XP_DUMP"); d != "" {
		f, err := os.Create(d)
		if err != nil {
			t.Fatal(err)
		}
		enc := json.NewEncoder(f)
		for i, s := range samples {
			enc.Encode(map[string]any{"id": s.ID, "field": s.Field, "class": int(s.Class), "extra": s.Extra, "aux": s.Aux, "other": s.Other, "mlp": mlp[i], "cnn": cnn[i], "trees": trees[i], "f": s.F})
		}
		f.Close()
		return
	}
	if os.Getenv("PAPSCAN_XP_REL") != "" {
		if os.Getenv("PAPSCAN_XP_REL") == "field" {
			refs := fieldMedians(t, cache+".refs.json")
			var other *otherSet
			if os.Getenv("PAPSCAN_XP_SIPAKMED") != "" {
				other = loadOther(t, cache+".sipakmed.gob", &p)
			}
			relScreenRefOther(t, samples, fold, cnn, to, report, fused, "field median", []int{0, 4, 5, 6, 7, 12, 13, 18, 19, 20, 24}, refs, other)
			return
		}
		if os.Getenv("PAPSCAN_XP_REL") == "variants" {
			relScreen(t, samples, fold, cnn, to, report, fused, "3 features", []int{0, 4, 13}, true, 0)
			relScreen(t, samples, fold, cnn, to, report, fused, "ref of 15", []int{0, 4, 5, 6, 7, 12, 13, 18, 19, 20, 24}, true, 15)
			return
		}
		relScreen(t, samples, fold, cnn, to, report, fused, "relative", []int{0, 4, 5, 6, 7, 12, 13, 18, 19, 20, 24}, os.Getenv("PAPSCAN_XP_REL") == "all", 0)
		return
	}
	report("mlp alone", mlp)
	report("trees alone", trees)
	report("cnn alone", fused(mlp, cnn, 1, 1))
	report("cnn tta8 alone", fused(mlp, tta, 1, 1))
	report("mlp+cnn tta8", fused(mlp, tta, 0.7, 0.5))
	report("trees+cnn", fused(trees, cnn, 0.7, 0.5))
	report("trees+cnn tta8", fused(trees, tta, 0.7, 0.5))
	for _, wb := range []float32{0.3, 0.5, 0.7} {
		report(fmt.Sprintf("mlp/trees %.1f +cnn", wb), fused(avg(mlp, trees, wb), cnn, 0.7, 0.5))
		report(fmt.Sprintf("mlp/trees %.1f +cnn tta8", wb), fused(avg(mlp, trees, wb), tta, 0.7, 0.5))
	}
	// Stacking: a logistic regression on the log-probabilities of the
	// heads, fitted per fold on the other folds' out-of-fold predictions.
	stack := func(name string, heads func(i int) []float32, hidden int) {
		z := make([]Sample, n)
		for i, s := range samples {
			z[i] = s
			z[i].F = classify.Features{}
			for j, v := range heads(i) {
				z[i].F[j] = v
			}
		}
		out := make([][classify.NumClasses]float32, n)
		for f := range Folds {
			var tr []Sample
			for i, s := range z {
				if fold[samples[i].Field] != f {
					tr = append(tr, s)
				}
			}
			fo := DefaultFit()
			fo.Hidden = hidden
			sm, err := classify.NewModel(params(0.5, fit(tr, fo)))
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range z {
				if fold[samples[i].Field] == f {
					out[i] = sm.Predict(s.F)
				}
			}
		}
		report(name, out)
	}
	lg := func(v float32) float32 { return float32(math.Log(math.Max(float64(v), 1e-4))) }
	stack("stack LR mlp+cnn", func(i int) []float32 {
		var v []float32
		for _, q := range mlp[i] {
			v = append(v, lg(q))
		}
		for _, q := range cnn[i] {
			v = append(v, lg(q))
		}
		return v
	}, 0)
	stack("stack LR mlp+trees+cnn", func(i int) []float32 {
		var v []float32
		for _, q := range mlp[i] {
			v = append(v, lg(q))
		}
		for _, q := range trees[i] {
			v = append(v, lg(q))
		}
		for _, q := range cnn[i] {
			v = append(v, lg(q))
		}
		return v
	}, 0)
	// Trees on the features with the CNN's out-of-fold group
	// probabilities in place of two redundant features.
	{
		z := make([]Sample, n)
		for i, s := range samples {
			z[i] = s
			z[i].F[15] = lg(cnn[i][2])
			z[i].F[16] = lg(cnn[i][0])
		}
		out := make([][classify.NumClasses]float32, n)
		for f := range Folds {
			var tr []Sample
			var idx []int
			var fs []classify.Features
			for i, s := range z {
				if fold[samples[i].Field] != f {
					tr = append(tr, s)
				} else {
					idx = append(idx, i)
					fs = append(fs, s.F)
				}
			}
			pt, err := PredictTrees(fitTrees(tr, DefaultFit(), to), fs)
			if err != nil {
				t.Fatal(err)
			}
			for j, q := range pt {
				out[idx[j]] = q
			}
		}
		report("stack trees feat+cnn", out)
		report("stack trees feat+cnn, cnn fused", fused(out, cnn, 0.7, 0.5))
		report("stack trees feat+cnn/mlp+cnn", avg(out, fused(mlp, cnn, 0.7, 0.5), 0.5))
	}
	for _, wh := range []float64{0.5, 0.6, 0.8} {
		report(fmt.Sprintf("mlp/trees .5 +cnn %.1f tta8", wh), fused(avg(mlp, trees, 0.5), tta, wh, 0.5))
	}
}

// predictCNNTTA is predictCNN averaged over the eight dihedral transforms.
func predictCNNTTA(p *classify.CNNParams, crops []*Crop) [][classify.CNNGroups]float32 {
	lut := classify.ODLUT()
	var m32, inv32 [3]float32
	for c := range 3 {
		m32[c], inv32[c] = float32(p.InMean[c]), float32(1/p.InStd[c])
	}
	net := &cnnNet{w: p.Conv, b: p.Bias}
	out := make([][classify.CNNGroups]float32, len(crops))
	sc := newTrainScratch()
	for i, c := range crops {
		for tr := range 8 {
			fillInput(sc.x[:], c, tr, 0, 0, [3]float32{1, 1, 1}, &lut, m32, inv32)
			g := net.forward(sc)
			for k := range g {
				out[i][k] += g[k] / 8
			}
		}
	}
	return out
}

// relScreen compares the heads on the raw features with heads whose
// features include each feature relative to the median of the field's
// unlabelled objects (the field negatives).
func relScreen(t *testing.T, samples []Sample, fold map[string]int, cnn [][classify.CNNGroups]float32, to TreeOptions,
	report func(string, [][classify.NumClasses]float32),
	fused func([][classify.NumClasses]float32, [][classify.CNNGroups]float32, float64, float64) [][classify.NumClasses]float32,
	label string, src []int, allObjects bool, capRef int) {
	byField := map[string][]int{}
	for i, s := range samples {
		if s.Extra || (allObjects && !s.Other) {
			byField[s.Field] = append(byField[s.Field], i)
		}
	}
	med := func(idx []int, j int) float32 {
		v := make([]float64, len(idx))
		for k, i := range idx {
			v[k] = float64(samples[i].F[j])
		}
		sort.Float64s(v)
		return float32(v[len(v)/2])
	}
	ref := map[string][]float32{}
	nref := 0
	for f, idx := range byField {
		if len(idx) < 3 {
			continue
		}
		if capRef > 0 && len(idx) > capRef {
			idx = append([]int(nil), idx...)
			rng := rand.New(rand.NewSource(int64(len(f))))
			rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
			idx = idx[:capRef]
		}
		nref++
		r := make([]float32, len(src))
		for k, j := range src {
			r[k] = med(idx, j)
		}
		ref[f] = r
	}
	fmt.Printf("fields with a reference: %d\n", nref)
	relScreenRef(t, samples, fold, cnn, to, report, fused, label, src, ref)
}

// relScreenRef is relScreen with the per-field references ref (feature
// medians, indexed like src; fields without one use the median of all
// references).
func relScreenRef(t *testing.T, samples []Sample, fold map[string]int, cnn [][classify.CNNGroups]float32, to TreeOptions,
	report func(string, [][classify.NumClasses]float32),
	fused func([][classify.NumClasses]float32, [][classify.CNNGroups]float32, float64, float64) [][classify.NumClasses]float32,
	label string, src []int, ref map[string][]float32) {
	relScreenRefOther(t, samples, fold, cnn, to, report, fused, label, src, ref, nil)
}

// otherSet is another laboratory's labelled cells (SIPaKMeD, padding
// glass-filled) scored by heads that never saw a cell of it: grades, the
// mean over the shipped fold CNNs, the mean over the fold perceptrons.
type otherSet struct {
	S     []Sample
	Grade []eval.CellGrade
	CNN   [][classify.CNNGroups]float32
	MLP   [][classify.NumClasses]float32
}

func loadOther(t *testing.T, cache string, p *classify.ModelParams) *otherSet {
	var o otherSet
	if f, err := os.Open(cache); err == nil {
		defer f.Close()
		if err := gob.NewDecoder(f).Decode(&o); err != nil {
			t.Fatal(err)
		}
		return &o
	}
	dir := filepath.Join(dataset.Dir(), "sipakmed")
	fm, err := classify.NewModel(classify.ModelParams{PixelUM: DefaultPixelUM, WindowUM: WindowUM, Stain: classify.DefaultStain})
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadCellSet(context.Background(), dir, fm)
	if err != nil {
		t.Fatal(err)
	}
	m, _, err := eval.FindManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	cells, err := eval.ReadCellDir(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	grade := map[string]eval.CellGrade{}
	for _, c := range cells {
		grade[m.Name+"/"+c.File] = c.Grade
	}
	o.S = s
	crops := make([]*Crop, len(s))
	for i, x := range s {
		o.Grade = append(o.Grade, grade[x.ID])
		crops[i] = x.Crop
	}
	o.CNN = make([][classify.CNNGroups]float32, len(s))
	o.MLP = make([][classify.NumClasses]float32, len(s))
	for f := range p.Folds {
		for i, g := range predictCNN(p.Folds[f].CNN, crops) {
			for k := range g {
				o.CNN[i][k] += g[k] / float32(len(p.Folds))
			}
		}
		fm, err := classify.NewModel(params(0.5, p.Folds[f].Head))
		if err != nil {
			t.Fatal(err)
		}
		for i, x := range s {
			q := fm.Predict(x.F)
			for k := range q {
				o.MLP[i][k] += q[k] / float32(len(p.Folds))
			}
		}
	}
	f, err := os.Create(cache)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := gob.NewEncoder(f).Encode(&o); err != nil {
		t.Fatal(err)
	}
	return &o
}

// aucOther is the abnormal (low or high grade) vs normal AUC of 1 − P(NILM)
// on the other set.
func aucOther(o *otherSet, probs [][classify.NumClasses]float32) float64 {
	var pos, neg []float64
	for i, g := range o.Grade {
		v := 1 - float64(probs[i][classify.NILM])
		switch g {
		case eval.GradeNormal:
			neg = append(neg, v)
		case eval.GradeLow, eval.GradeHigh:
			pos = append(pos, v)
		}
	}
	return eval.AUC(pos, neg)
}

func relScreenRefOther(t *testing.T, samples []Sample, fold map[string]int, cnn [][classify.CNNGroups]float32, to TreeOptions,
	report func(string, [][classify.NumClasses]float32),
	fused func([][classify.NumClasses]float32, [][classify.CNNGroups]float32, float64, float64) [][classify.NumClasses]float32,
	label string, src []int, ref map[string][]float32, other *otherSet) {
	dst := []int{39, 40, 41, 42, 43, 44, 45, 46, 47, 15, 16}[:len(src)]
	glob := make([]float32, len(src))
	for k := range src {
		var v []float64
		for _, r := range ref {
			v = append(v, float64(r[k]))
		}
		sort.Float64s(v)
		glob[k] = float32(v[len(v)/2])
	}
	missing := map[string]bool{}
	zero := make([]Sample, len(samples))
	rel := make([]Sample, len(samples))
	for i, s := range samples {
		zero[i], rel[i] = s, s
		r, ok := ref[s.Field]
		if !ok {
			r = glob
			missing[s.Field] = true
		}
		for k, j := range src {
			zero[i].F[dst[k]] = 0
			rel[i].F[dst[k]] = s.F[j] - r[k]
		}
	}
	if len(missing) > 0 {
		fmt.Printf("%d fields without a reference (global median used)\n", len(missing))
	}
	// The other set: raw features, and relative to the median of the
	// whole set (a slide's reference) or of its source image.
	var oz, orelSet, orelImg []Sample
	if other != nil {
		fmt.Printf("other set: %d cells; shipped fusion (mean of folds) AUC abnormal vs normal %.3f\n", len(other.S), aucOther(other, fusedOther(other.MLP, other.CNN)))
		setRef := make([]float32, len(src))
		for k, j := range src {
			v := make([]float64, len(other.S))
			for i, x := range other.S {
				v[i] = float64(x.F[j])
			}
			sort.Float64s(v)
			setRef[k] = float32(v[len(v)/2])
		}
		byImg := map[string][]int{}
		for i, x := range other.S {
			byImg[x.Field] = append(byImg[x.Field], i)
		}
		for i, x := range other.S {
			a, b, c := x, x, x
			idx := byImg[x.Field]
			for k, j := range src {
				v := make([]float64, len(idx))
				for q, ii := range idx {
					v[q] = float64(other.S[ii].F[j])
				}
				sort.Float64s(v)
				a.F[dst[k]] = 0
				b.F[dst[k]] = x.F[j] - setRef[k]
				c.F[dst[k]] = x.F[j] - float32(v[len(v)/2])
			}
			_ = i
			oz, orelSet, orelImg = append(oz, a), append(orelSet, b), append(orelImg, c)
		}
	}
	run := func(name string, z []Sample) {
		n := len(z)
		tr6 := make([][classify.NumClasses]float32, n)
		ml6 := make([][classify.NumClasses]float32, n)
		var otr, oml [3][][classify.NumClasses]float32
		if other != nil {
			for v := range 3 {
				otr[v] = make([][classify.NumClasses]float32, len(other.S))
				oml[v] = make([][classify.NumClasses]float32, len(other.S))
			}
		}
		for f := range Folds {
			var tr []Sample
			var idx []int
			var fs []classify.Features
			for i, s := range z {
				if fold[s.Field] != f {
					tr = append(tr, s)
				} else {
					idx = append(idx, i)
					fs = append(fs, s.F)
				}
			}
			pt, err := PredictTrees(fitTrees(tr, DefaultFit(), to), fs)
			if err != nil {
				t.Fatal(err)
			}
			mm, err := classify.NewModel(params(0.5, fit(tr, DefaultFit())))
			if err != nil {
				t.Fatal(err)
			}
			for j, q := range pt {
				tr6[idx[j]] = q
				ml6[idx[j]] = mm.Predict(fs[j])
			}
			if other != nil {
				tt := fitTrees(tr, DefaultFit(), to)
				for v, set := range [3][]Sample{oz, orelSet, orelImg} {
					raw := name == "zeroed" || name == "raw"
					if raw && v > 0 {
						break
					}
					if !raw && v == 0 {
						continue
					}
					if name == "raw" {
						set = other.S
					}
					ofs := make([]classify.Features, len(set))
					for i, x := range set {
						ofs[i] = x.F
					}
					pt, err := PredictTrees(tt, ofs)
					if err != nil {
						t.Fatal(err)
					}
					for i := range set {
						q := mm.Predict(set[i].F)
						for k := range q {
							otr[v][i][k] += pt[i][k] / Folds
							oml[v][i][k] += q[k] / Folds
						}
					}
				}
			}
		}
		if other != nil {
			for v, nm := range []string{"own features", "relative to the set", "relative to the source image"} {
				if otr[v][0][0] == 0 && oml[v][0][0] == 0 {
					continue
				}
				fmt.Printf("  other set, %s %s: trees+cnn AUC %.3f, mlp+cnn AUC %.3f, trees %.3f, mlp %.3f\n", name, nm,
					aucOther(other, fusedOther(otr[v], other.CNN)), aucOther(other, fusedOther(oml[v], other.CNN)), aucOther(other, otr[v]), aucOther(other, oml[v]))
			}
		}
		report(name+" trees", tr6)
		report(name+" mlp", ml6)
		report(name+" trees+cnn", fused(tr6, cnn, 0.7, 0.5))
		report(name+" mlp+cnn", fused(ml6, cnn, 0.7, 0.5))
	}
	if label == "relative" {
		run("zeroed", zero)
	}
	if other != nil {
		run("raw", samples)
	}
	run(label, rel)
}

// fieldMedians returns, per field of cric/fields and cric/more-fields, the
// median of every feature over all objects the training detector finds in
// it away from the border (what a tile of the robot offers as a
// reference), for the features relScreen makes relative; cached in path.
func fieldMedians(t *testing.T, path string) map[string][]float32 {
	src := []int{0, 4, 5, 6, 7, 12, 13, 18, 19, 20, 24}
	out := map[string][]float32{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	fm, err := classify.NewModel(classify.ModelParams{PixelUM: DefaultPixelUM, WindowUM: WindowUM, Stain: classify.DefaultStain})
	if err != nil {
		t.Fatal(err)
	}
	px := DefaultPixelUM
	det := classify.NewDetector(detectOptions(px))
	nobj := 0
	for _, d := range []struct {
		dir string
		px  float64
	}{{"fields", CRICPixelUM}, {"more-fields", MoreFieldsPixelUM}} {
		dir := filepath.Join(dataset.Dir(), "cric", d.dir, "images")
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			img, err := dataset.LoadRGBA(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			img = classify.Rescale(img, d.px, px)
			var fs []classify.Features
			for _, n := range det.Detect(img) {
				if n.Edge {
					continue
				}
				if f, ok := fm.Features(img, n); ok {
					fs = append(fs, f)
				}
			}
			if len(fs) < 3 {
				continue
			}
			nobj += len(fs)
			r := make([]float32, len(src))
			for k, j := range src {
				v := make([]float64, len(fs))
				for i, f := range fs {
					v[i] = float64(f[j])
				}
				sort.Float64s(v)
				r[k] = float32(v[len(v)/2])
			}
			out[e.Name()] = r
		}
	}
	fmt.Printf("field references: %d fields, %d objects\n", len(out), nobj)
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// fusedOther is the shipped fusion (without temperature, which keeps the
// order of 1 − P(NILM) per cell only approximately; AUCs here are
// screening figures).
func fusedOther(head [][classify.NumClasses]float32, g [][classify.CNNGroups]float32) [][classify.NumClasses]float32 {
	out := make([][classify.NumClasses]float32, len(head))
	for i := range out {
		out[i] = fuse(head[i], g[i], DefaultCNNWeight, DefaultCNNNILMWeight)
	}
	return out
}
