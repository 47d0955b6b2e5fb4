// Package train fits the per-cell model of package classify on the CRIC cell
// crops and writes the weights file embedded by classify (model_weights.json).
//
// Data: dataDir/cric/cells/labels.csv and the 100x100 crops it names. Each
// crop is centred on an annotated nucleus; the detector is run on the crop and
// the nucleus nearest the centre is measured, as the Analyzer does on a tile.
//
// Validation: grouped k-fold cross-validation by source field
// (image_filename), folds drawn with a fixed seed, never by crop (cells of a
// field are correlated). Metrics are pooled over the out-of-fold predictions;
// the shipped model is then refitted on all crops.
package train

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// Version is the version string of models produced by this package.
const Version = "lr-features-1"

// CRICPixelUM is the pixel size assumed for the stored CRIC images (see
// classify.DefaultPixelUM).
const CRICPixelUM = classify.DefaultPixelUM

// WindowUM is the analysis window side: 100 px crops at CRICPixelUM.
const WindowUM = 25.0

// Folds is the number of grouped cross-validation folds.
const Folds = 5

// Sample is one labelled crop with its features.
type Sample struct {
	ID    string
	Field string
	Class classify.Class
	F     classify.Features
}

// Report holds validation metrics (pooled out-of-fold predictions).
type Report struct {
	Seed      int64                                         `json:"seed"`
	Samples   int                                           `json:"samples"`
	Skipped   int                                           `json:"skipped"`
	Fields    int                                           `json:"fields"`
	Folds     int                                           `json:"folds"`
	Detected  int                                           `json:"detected_nucleus_near_centre"`
	Confusion [classify.NumClasses][classify.NumClasses]int `json:"confusion"` // [true][pred]
	Recall    [classify.NumClasses]float64                  `json:"recall"`
	Accuracy  float64                                       `json:"accuracy"`
	// At Threshold: high grade = P(ASC-H+HSIL+SCC) >= Threshold.
	Threshold       float64 `json:"threshold"`
	HighGradeRecall float64 `json:"high_grade_recall"`
	HSILPlusRecall  float64 `json:"hsil_scc_recall"`
	NILMHighFPR     float64 `json:"nilm_high_grade_fpr"`
	NILMAbnormalFPR float64 `json:"nilm_abnormal_fpr"` // high or low grade flagged
	LowGradeRecall  float64 `json:"low_grade_recall"`  // low-grade cells flagged high or low
	HighGradeAUC    float64 `json:"high_grade_auc"`    // P(high): high vs rest
	AbnormalAUC     float64 `json:"abnormal_auc"`      // Score: abnormal vs NILM
}

// loadSamples reads the crops and extracts features.
func loadSamples(ctx context.Context, dataDir string, fm *classify.Model) ([]Sample, int, int, error) {
	cells := filepath.Join(dataDir, "cric", "cells")
	f, err := os.Open(filepath.Join(cells, "labels.csv"))
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, 0, 0, err
	}
	col := map[string]int{}
	for i, k := range recs[0] {
		col[k] = i
	}
	for _, k := range []string{"file", "class", "cell_id", "image_filename"} {
		if _, ok := col[k]; !ok {
			return nil, 0, 0, fmt.Errorf("labels.csv: no column %q", k)
		}
	}
	det := classify.NewDetector(classify.DetectOptions{PixelUM: CRICPixelUM})
	var out []Sample
	skipped, detected := 0, 0
	for _, r := range recs[1:] {
		if err := ctx.Err(); err != nil {
			return nil, 0, 0, err
		}
		cls, err := classify.ParseClass(r[col["class"]])
		if err != nil {
			return nil, 0, 0, err
		}
		img, err := dataset.LoadRGBA(filepath.Join(cells, r[col["file"]]))
		if err != nil {
			return nil, 0, 0, err
		}
		b := img.Bounds()
		cx, cy := float64(b.Min.X+b.Dx()/2), float64(b.Min.Y+b.Dy()/2)
		n := classify.Nucleus{X: cx, Y: cy, PixelUM: CRICPixelUM}
		best := 25.0
		for _, d := range det.Detect(img) {
			if dd := math.Hypot(d.X-cx, d.Y-cy); dd < best {
				best, n = dd, d
			}
		}
		if n.AreaPx > 0 {
			detected++
		}
		fv, ok := fm.Features(img, n)
		if !ok {
			skipped++
			continue
		}
		out = append(out, Sample{ID: r[col["cell_id"]], Field: r[col["image_filename"]], Class: cls, F: fv})
	}
	return out, skipped, detected, nil
}

// fit trains a class-weighted softmax regression on samples and returns
// standardisation and weights.
func fit(samples []Sample) (mean, std []float64, w [][]float64) {
	const nf = classify.NumFeatures
	mean, std = make([]float64, nf), make([]float64, nf)
	for _, s := range samples {
		for j := range nf {
			mean[j] += float64(s.F[j])
		}
	}
	for j := range nf {
		mean[j] /= float64(len(samples))
	}
	for _, s := range samples {
		for j := range nf {
			d := float64(s.F[j]) - mean[j]
			std[j] += d * d
		}
	}
	for j := range nf {
		std[j] = math.Sqrt(std[j] / float64(len(samples)))
		if std[j] < 1e-9 {
			std[j] = 1
		}
	}
	X := make([][nf + 1]float64, len(samples))
	for i, s := range samples {
		for j := range nf {
			X[i][j] = (float64(s.F[j]) - mean[j]) / std[j]
		}
		X[i][nf] = 1
	}
	// Class-balanced weights, high grade up-weighted: missing HSIL+ costs most.
	var cnt [classify.NumClasses]float64
	for _, s := range samples {
		cnt[s.Class]++
	}
	var cw [classify.NumClasses]float64
	present := 0.0
	for _, c := range cnt {
		if c > 0 {
			present++
		}
	}
	for c := range cw {
		if cnt[c] > 0 {
			cw[c] = float64(len(samples)) / (present * cnt[c])
			if classify.Class(c).HighGrade() {
				cw[c] *= 1.5
			}
		}
	}
	const (
		iters  = 1500
		lr     = 0.05
		lambda = 1e-3
		b1, b2 = 0.9, 0.999
	)
	K := classify.NumClasses
	W := make([][nf + 1]float64, K)
	m := make([][nf + 1]float64, K)
	v := make([][nf + 1]float64, K)
	g := make([][nf + 1]float64, K)
	var norm float64
	for _, s := range samples {
		norm += cw[s.Class]
	}
	p := make([]float64, K)
	for it := 1; it <= iters; it++ {
		for c := range g {
			g[c] = [nf + 1]float64{}
		}
		for i, s := range samples {
			mx := math.Inf(-1)
			for c := range K {
				z := 0.0
				for j, x := range X[i] {
					z += W[c][j] * x
				}
				p[c] = z
				mx = math.Max(mx, z)
			}
			sum := 0.0
			for c := range K {
				p[c] = math.Exp(p[c] - mx)
				sum += p[c]
			}
			wi := cw[s.Class] / norm
			for c := range K {
				d := p[c] / sum
				if classify.Class(c) == s.Class {
					d--
				}
				d *= wi
				for j, x := range X[i] {
					g[c][j] += d * x
				}
			}
		}
		for c := range K {
			for j := range nf + 1 {
				gr := g[c][j]
				if j < nf {
					gr += lambda * W[c][j]
				}
				m[c][j] = b1*m[c][j] + (1-b1)*gr
				v[c][j] = b2*v[c][j] + (1-b2)*gr*gr
				mh := m[c][j] / (1 - math.Pow(b1, float64(it)))
				vh := v[c][j] / (1 - math.Pow(b2, float64(it)))
				W[c][j] -= lr * mh / (math.Sqrt(vh) + 1e-8)
			}
		}
	}
	w = make([][]float64, K)
	for c := range K {
		w[c] = append([]float64(nil), W[c][:]...)
	}
	return mean, std, w
}

func params(mean, std []float64, w [][]float64) classify.ModelParams {
	p := classify.ModelParams{
		Version:  Version,
		PixelUM:  CRICPixelUM,
		WindowUM: WindowUM,
		Stain:    classify.DefaultStain,
		Mean:     mean,
		Std:      std,
		Weights:  w,
	}
	for c := range classify.NumClasses {
		p.Classes = append(p.Classes, classify.Class(c).String())
	}
	p.Features = classify.FeatureNames[:]
	return p
}

// Train fits the model on dataDir with grouped cross-validation (seed fixes
// the folds) and returns the final parameters (fitted on all crops) and the
// validation report.
func Train(dataDir string, seed int64) (classify.ModelParams, *Report, error) {
	return train(context.Background(), dataDir, seed)
}

func train(ctx context.Context, dataDir string, seed int64) (classify.ModelParams, *Report, error) {
	fm, err := classify.NewModel(classify.ModelParams{PixelUM: CRICPixelUM, WindowUM: WindowUM, Stain: classify.DefaultStain})
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	samples, skipped, detected, err := loadSamples(ctx, dataDir, fm)
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	if len(samples) < 50 {
		return classify.ModelParams{}, nil, fmt.Errorf("train: only %d samples", len(samples))
	}
	// Folds by field.
	fieldSet := map[string]bool{}
	for _, s := range samples {
		fieldSet[s.Field] = true
	}
	fields := make([]string, 0, len(fieldSet))
	for f := range fieldSet {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	rng := rand.New(rand.NewSource(seed))
	rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	fold := map[string]int{}
	for i, f := range fields {
		fold[f] = i % Folds
	}
	probs := make([][classify.NumClasses]float32, len(samples))
	for k := range Folds {
		if err := ctx.Err(); err != nil {
			return classify.ModelParams{}, nil, err
		}
		var tr []Sample
		for _, s := range samples {
			if fold[s.Field] != k {
				tr = append(tr, s)
			}
		}
		mean, std, w := fit(tr)
		m, err := classify.NewModel(params(mean, std, w))
		if err != nil {
			return classify.ModelParams{}, nil, err
		}
		for i, s := range samples {
			if fold[s.Field] == k {
				probs[i] = m.Predict(s.F)
			}
		}
	}
	rep := evaluate(samples, probs, 0.5)
	rep.Seed, rep.Skipped, rep.Fields, rep.Folds, rep.Detected = seed, skipped, len(fields), Folds, detected
	mean, std, w := fit(samples)
	p := params(mean, std, w)
	meta, _ := json.Marshal(map[string]any{
		"data":       "CRIC cervix cell crops (cric/cells/labels.csv)",
		"validation": fmt.Sprintf("%d-fold cross-validation grouped by image_filename, seed %d; final fit on all crops", Folds, seed),
		"report":     rep,
	})
	p.Training = meta
	return p, rep, nil
}

func evaluate(samples []Sample, probs [][classify.NumClasses]float32, th float64) *Report {
	r := &Report{Samples: len(samples), Threshold: th}
	var hiN, hiTP, hsN, hsTP, nilN, nilHi, nilAb, lowN, lowTP, correct int
	var hiScores, restScores, abScores, nilScores []float64
	for i, s := range samples {
		p := probs[i]
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		r.Confusion[s.Class][best]++
		if best == int(s.Class) {
			correct++
		}
		ph, pl := float64(classify.HighGradeProb(p)), float64(classify.LowGradeProb(p))
		flagHi, flagAb := ph >= th, ph >= th || pl >= th
		switch {
		case s.Class.HighGrade():
			hiN++
			if flagHi {
				hiTP++
			}
			if s.Class != classify.ASCH {
				hsN++
				if flagHi {
					hsTP++
				}
			}
			hiScores = append(hiScores, ph)
			abScores = append(abScores, float64(classify.SuspicionScore(p)))
		case s.Class.LowGrade():
			lowN++
			if flagAb {
				lowTP++
			}
			restScores = append(restScores, ph)
			abScores = append(abScores, float64(classify.SuspicionScore(p)))
		default:
			nilN++
			if flagHi {
				nilHi++
			}
			if flagAb {
				nilAb++
			}
			restScores = append(restScores, ph)
			nilScores = append(nilScores, float64(classify.SuspicionScore(p)))
		}
	}
	for c := range classify.NumClasses {
		n := 0
		for _, v := range r.Confusion[c] {
			n += v
		}
		if n > 0 {
			r.Recall[c] = float64(r.Confusion[c][c]) / float64(n)
		}
	}
	div := func(a, b int) float64 {
		if b == 0 {
			return 0
		}
		return float64(a) / float64(b)
	}
	r.Accuracy = div(correct, len(samples))
	r.HighGradeRecall = div(hiTP, hiN)
	r.HSILPlusRecall = div(hsTP, hsN)
	r.NILMHighFPR = div(nilHi, nilN)
	r.NILMAbnormalFPR = div(nilAb, nilN)
	r.LowGradeRecall = div(lowTP, lowN)
	r.HighGradeAUC = auc(hiScores, restScores)
	r.AbnormalAUC = auc(abScores, nilScores)
	return r
}

// auc is the Mann-Whitney AUC of pos scoring above neg.
func auc(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return 0
	}
	var s float64
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				s++
			case p == n:
				s += 0.5
			}
		}
	}
	return s / float64(len(pos)*len(neg))
}

// Print writes the report in human-readable form.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "samples %d (skipped %d, nucleus detected near centre %d) from %d fields; %d-fold CV grouped by field, seed %d\n",
		r.Samples, r.Skipped, r.Detected, r.Fields, r.Folds, r.Seed)
	fmt.Fprintf(w, "confusion (rows true, cols predicted):\n%8s", "")
	for c := range classify.NumClasses {
		fmt.Fprintf(w, "%7s", classify.Class(c))
	}
	fmt.Fprintf(w, "%8s\n", "recall")
	for t := range classify.NumClasses {
		fmt.Fprintf(w, "%8s", classify.Class(t))
		for p := range classify.NumClasses {
			fmt.Fprintf(w, "%7d", r.Confusion[t][p])
		}
		fmt.Fprintf(w, "%8.3f\n", r.Recall[t])
	}
	fmt.Fprintf(w, "accuracy (6 classes) %.3f\n", r.Accuracy)
	fmt.Fprintf(w, "at P(high)>=%.2f: high-grade recall %.3f (HSIL+SCC %.3f), NILM flagged high %.3f\n",
		r.Threshold, r.HighGradeRecall, r.HSILPlusRecall, r.NILMHighFPR)
	fmt.Fprintf(w, "at P(high)>=%.2f or P(low)>=%.2f: low-grade cells flagged %.3f, NILM flagged abnormal %.3f\n",
		r.Threshold, r.Threshold, r.LowGradeRecall, r.NILMAbnormalFPR)
	fmt.Fprintf(w, "AUC high vs rest %.3f; abnormal vs NILM (score) %.3f\n", r.HighGradeAUC, r.AbnormalAUC)
}

// Run trains on dataDir, prints the validation report to w and writes the
// weights file (JSON classify.ModelParams) to outPath.
func Run(ctx context.Context, dataDir, outPath string, seed int64, w io.Writer) error {
	p, rep, err := train(ctx, dataDir, seed)
	if err != nil {
		return err
	}
	rep.Print(w)
	b, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	m, err := classify.LoadModel(b)
	if err != nil {
		return err
	}
	if err := os.WriteFile(outPath, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s: version %s sha256 %s\n", outPath, m.Version, m.SHA256)
	return nil
}
