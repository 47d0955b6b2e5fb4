// Package train fits the per-cell model of package classify on the CRIC cell
// crops and writes the weights file embedded by classify (model_weights.json).
//
// Data: dataDir/cric/cells/labels.csv and the 100x100 crops it names. Each
// crop is centred on an annotated nucleus; the detector is run on the crop
// (at the CRIC pixel size) and the nucleus nearest the centre is measured by
// the model, which resamples the window to its own pixel size (PixelUM, the
// robot camera's 0.5 µm/px by default), as it does on a robot tile.
//
// Validation: grouped k-fold cross-validation by source field
// (image_filename), folds drawn with a fixed seed, never by crop (cells of a
// field are correlated). Metrics are pooled over the out-of-fold
// predictions, and the high-grade operating threshold is chosen on them
// (the lowest threshold whose out-of-fold NILM false-positive rate is at
// most TargetFPR). The fold models are stored in the weights file (see
// classify.Fold) so that package classify/eval can score any cell with a
// model that never saw its field; the shipped model is refitted on all crops.
package train

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"

	"papscan/classify"
	"papscan/classify/eval"
	"papscan/classify/internal/dataset"
)

// Version is the version string of models produced by this package.
const Version = "mlp-features-3"

// VersionCNN is the version string of models with a CNN head.
const VersionCNN = "mlp-cnn-2"

// CRICPixelUM is the pixel size of the stored CRIC images (see
// classify.DefaultPixelUM).
const CRICPixelUM = classify.DefaultPixelUM

// DefaultPixelUM is the pixel size the shipped model measures features at:
// the robot camera's 0.5 µm/px at 20x (CRIC crops are downsampled 2x).
const DefaultPixelUM = 0.5

// WindowUM is the analysis window side: 100 px crops at CRICPixelUM.
const WindowUM = 25.0

// Folds is the number of grouped cross-validation folds.
const Folds = 5

// DefaultTargetFPR is the out-of-fold NILM false-positive rate the
// high-grade threshold is chosen for (below the 0.10 target, for margin).
const DefaultTargetFPR = 0.09

// detectOptions are the detector settings training uses to find the
// nucleus of each crop and the field negatives, at pixel size px. They are
// pinned (Otsu scale 1, local offset 0.04 OD: the defaults the shipped
// model was fitted with) so that retraining reproduces the shipped weights
// whatever later tuning changes the detector's defaults to.
//
// The fold filter and the fragment rescue added later are off here
// (FoldRingOD -1, FragmentGapUM -1) for the same reason.
func detectOptions(px float64) classify.DetectOptions {
	return classify.DetectOptions{PixelUM: px, OtsuScale: 1, LocalOffsetOD: 0.04, FoldRingOD: -1, FragmentGapUM: -1}
}

// Options configure a training run. Zero values select defaults.
type Options struct {
	Seed      int64
	PixelUM   float64
	Fit       FitOptions
	TargetFPR float64
	// MaxCells, when > 0, keeps only the first MaxCells crops of labels.csv
	// (tests).
	MaxCells int
	// FieldNegatives is the number of field negatives per CRIC field
	// (default DefaultFieldNegatives; negative: none).
	FieldNegatives int
	// CNN, when not nil, also trains the convolutional head (see
	// classify.CNNParams) and fuses it with weight CNNWeight.
	CNN       *CNNOptions
	CNNWeight float64
}

// DefaultFieldNegatives is the number of unlabelled detected objects per CRIC
// field added to training as NILM.
const DefaultFieldNegatives = 30

func (o Options) withDefaults() Options {
	if o.PixelUM <= 0 {
		o.PixelUM = DefaultPixelUM
	}
	if o.Fit.Iters == 0 {
		f := DefaultFit()
		f.Seed = o.Seed
		o.Fit = f
	}
	if o.TargetFPR <= 0 {
		o.TargetFPR = DefaultTargetFPR
	}
	if o.FieldNegatives == 0 {
		o.FieldNegatives = DefaultFieldNegatives
	}
	return o
}

// Sample is one labelled crop with its features.
type Sample struct {
	ID    string
	Field string
	Class classify.Class
	F     classify.Features
	// Extra marks a field negative: a detected object of a CRIC field far
	// from every labelled nucleus, trained as NILM (see LoadFieldNegatives)
	// but not scored in the cell metrics.
	Extra bool
	// Crop is the window the CNN sees (nil when not loaded).
	Crop *Crop
}

// LoadFieldNegatives runs the detector at the model's pixel size on the
// CRIC fields (dataDir/cric/fields) and returns up to perField detected
// objects per field lying farther than 6 µm from every labelled nucleus
// (any class), drawn with seed, labelled NILM. CRIC labels every abnormal
// cell of a field it annotates but only some normal ones, so these are
// normal nuclei, inflammatory cells, debris and overlaps: the objects a
// whole slide is full of and the labelled crops lack.
func LoadFieldNegatives(ctx context.Context, dataDir string, fm *classify.Model, perField int, seed int64) ([]Sample, error) {
	dir := filepath.Join(dataDir, "cric", "fields")
	rows, names, err := eval.ReadPoints(filepath.Join(dir, "nuclei.csv"), "image_filename", "x_img", "y_img", "")
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	px := fm.Params().PixelUM
	det := classify.NewDetector(detectOptions(px))
	rng := rand.New(rand.NewSource(seed))
	var out []Sample
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := dataset.LoadRGBA(filepath.Join(dir, "images", name))
		if err != nil {
			return nil, err
		}
		k := CRICPixelUM / px
		img = classify.Rescale(img, CRICPixelUM, px)
		var cand []classify.Nucleus
		for _, n := range det.Detect(img) {
			if n.Edge {
				continue
			}
			far := true
			for _, p := range rows[name] {
				if math.Hypot((p.X+0.5)*k-0.5-n.X, (p.Y+0.5)*k-0.5-n.Y)*px < 6 {
					far = false
					break
				}
			}
			if far {
				cand = append(cand, n)
			}
		}
		rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
		for i, n := range cand[:min(perField, len(cand))] {
			f, ok := fm.Features(img, n)
			if !ok {
				continue
			}
			out = append(out, Sample{ID: fmt.Sprintf("%s#%d", name, i), Field: name, Class: classify.NILM, F: f, Extra: true,
				Crop: cutCrop(img, n.X, n.Y, px, CNNPixelUM)})
		}
	}
	return out, nil
}

// Report holds validation metrics (pooled out-of-fold predictions).
type Report struct {
	Seed     int64   `json:"seed"`
	PixelUM  float64 `json:"pixel_um"`
	Hidden   int     `json:"hidden"`
	Samples  int     `json:"samples"`
	Skipped  int     `json:"skipped"`
	Fields   int     `json:"fields"`
	Folds    int     `json:"folds"`
	Detected int     `json:"detected_nucleus_near_centre"`
	// TargetFPR and the threshold chosen for it on the out-of-fold NILM cells.
	TargetFPR float64          `json:"target_fpr"`
	Cells     eval.CellMetrics `json:"cells"`
	// FieldNegatives and the out-of-fold fraction of them flagged high
	// grade at the threshold: the per-object false-positive rate to expect
	// on whole slides.
	FieldNegatives        int     `json:"field_negatives"`
	FieldNegativesFlagged float64 `json:"field_negatives_flagged_high"`
}

// LoadSamples reads the crops of dataDir/cric/cells and measures them with
// the feature extractor of fm (a model whose pixel size sets the scale).
// It returns the samples, the number of crops skipped (no nucleus) and the
// number where the detector found a nucleus near the centre.
func LoadSamples(ctx context.Context, dataDir string, fm *classify.Model, maxCells int) ([]Sample, int, int, error) {
	rows, err := ReadLabels(dataDir)
	if err != nil {
		return nil, 0, 0, err
	}
	if maxCells > 0 && len(rows) > maxCells {
		rows = rows[:maxCells]
	}
	det := classify.NewDetector(detectOptions(CRICPixelUM))
	cells := filepath.Join(dataDir, "cric", "cells")
	var out []Sample
	skipped, detected := 0, 0
	for _, r := range rows {
		if err := ctx.Err(); err != nil {
			return nil, 0, 0, err
		}
		img, err := dataset.LoadRGBA(filepath.Join(cells, r.File))
		if err != nil {
			return nil, 0, 0, err
		}
		n, found := eval.CentreNucleus(det, img)
		if found {
			detected++
		}
		fv, ok := fm.Features(img, n)
		if !ok {
			skipped++
			continue
		}
		out = append(out, Sample{ID: r.ID, Field: r.Field, Class: r.Class, F: fv,
			Crop: cutCrop(img, n.X, n.Y, CRICPixelUM, CNNPixelUM)})
	}
	return out, skipped, detected, nil
}

// ReadLabels reads dataDir/cric/cells/labels.csv.
func ReadLabels(dataDir string) ([]eval.CellLabel, error) {
	return eval.ReadCellLabels(filepath.Join(dataDir, "cric", "cells", "labels.csv"))
}

// AssignFolds maps each field to a fold in [0, k): fields sorted, shuffled
// with seed, dealt round-robin.
func AssignFolds(samples []Sample, k int, seed int64) map[string]int {
	set := map[string]bool{}
	for _, s := range samples {
		set[s.Field] = true
	}
	fields := make([]string, 0, len(set))
	for f := range set {
		fields = append(fields, f)
	}
	sort.Strings(fields)
	rng := rand.New(rand.NewSource(seed))
	rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
	fold := make(map[string]int, len(fields))
	for i, f := range fields {
		fold[f] = i % k
	}
	return fold
}

// CrossValidate fits one head per fold on the other folds' samples and
// returns the fold models (with the fields each was trained on) and the
// out-of-fold probabilities of every sample.
func CrossValidate(ctx context.Context, samples []Sample, fold map[string]int, k int, fo FitOptions) ([]classify.Fold, [][classify.NumClasses]float32, error) {
	probs := make([][classify.NumClasses]float32, len(samples))
	var folds []classify.Fold
	for f := range k {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		var tr []Sample
		fieldSet := map[string]bool{}
		for _, s := range samples {
			if fold[s.Field] != f {
				tr = append(tr, s)
				fieldSet[s.Field] = true
			}
		}
		h := fit(tr, fo)
		high := fitHigh(tr, fo)
		fields := make([]string, 0, len(fieldSet))
		for name := range fieldSet {
			fields = append(fields, name)
		}
		sort.Strings(fields)
		fp := params(DefaultPixelUM, h)
		fp.High = high
		m, err := classify.NewModel(fp)
		if err != nil {
			return nil, nil, err
		}
		for i, s := range samples {
			if fold[s.Field] == f {
				probs[i] = m.Predict(s.F)
			}
		}
		folds = append(folds, classify.Fold{Head: h, High: high, Fields: fields})
	}
	return folds, probs, nil
}

func params(pixelUM float64, h classify.Head) classify.ModelParams {
	p := classify.ModelParams{
		Version:  Version,
		PixelUM:  pixelUM,
		WindowUM: WindowUM,
		Stain:    classify.DefaultStain,
		Head:     h,
	}
	for c := range classify.NumClasses {
		p.Classes = append(p.Classes, classify.Class(c).String())
	}
	p.Features = classify.FeatureNames[:]
	return p
}

// Train fits the model on dataDir with grouped cross-validation and returns
// the final parameters (fitted on all crops, carrying the fold models) and
// the validation report.
func Train(ctx context.Context, dataDir string, o Options) (classify.ModelParams, *Report, error) {
	o = o.withDefaults()
	fm, err := classify.NewModel(classify.ModelParams{PixelUM: o.PixelUM, WindowUM: WindowUM, Stain: classify.DefaultStain})
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	samples, skipped, detected, err := LoadSamples(ctx, dataDir, fm, o.MaxCells)
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	if len(samples) < 2*Folds {
		return classify.ModelParams{}, nil, fmt.Errorf("train: only %d samples", len(samples))
	}
	nLabelled := len(samples)
	if o.FieldNegatives > 0 {
		neg, err := LoadFieldNegatives(ctx, dataDir, fm, o.FieldNegatives, o.Seed)
		if err != nil {
			return classify.ModelParams{}, nil, err
		}
		samples = append(samples, neg...)
	}
	fold := AssignFolds(samples, Folds, o.Seed)
	folds, probs, err := CrossValidate(ctx, samples, fold, Folds, o.Fit)
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	var cnnNets []*classify.CNNParams
	if o.CNN != nil {
		var oof []float32
		cnnNets, oof, err = crossValidateCNN(ctx, samples, fold, Folds, *o.CNN)
		if err != nil {
			return classify.ModelParams{}, nil, err
		}
		for _, w := range []float64{0, 0.3, 0.5, 0.7, 1} {
			var pos, neg []float64
			for i, s := range samples[:nLabelled] {
				v := (1-w)*float64(classify.HighGradeProb(probs[i])) + w*float64(oof[i])
				if s.Class == classify.NILM {
					neg = append(neg, v)
				} else if s.Class.HighGrade() {
					pos = append(pos, v)
				}
			}
			th := eval.ThresholdAtFPR(neg, 0.10)
			rec := 0
			for _, v := range pos {
				if v >= th {
					rec++
				}
			}
			fmt.Fprintf(os.Stderr, "cnn weight %.1f: AUC %.3f recall@FPR0.10 %.3f\n", w, eval.AUC(pos, neg), float64(rec)/float64(len(pos)))
		}
		for i := range probs {
			ph := (1-o.CNNWeight)*float64(classify.HighGradeProb(probs[i])) + o.CNNWeight*float64(oof[i])
			probs[i] = classify.SetHighGrade(probs[i], float32(ph))
		}
	}
	truth := make([]classify.Class, nLabelled)
	var nilm []float64
	for i, s := range samples[:nLabelled] {
		truth[i] = s.Class
		if s.Class == classify.NILM {
			nilm = append(nilm, float64(classify.HighGradeProb(probs[i])))
		}
	}
	th := eval.ThresholdAtFPR(nilm, o.TargetFPR)
	th = math.Round(th*1000) / 1000
	negFlag := 0
	for i := nLabelled; i < len(samples); i++ {
		if float64(classify.HighGradeProb(probs[i])) >= th {
			negFlag++
		}
	}
	rep := &Report{
		Seed: o.Seed, PixelUM: o.PixelUM, Hidden: o.Fit.Hidden, Samples: len(samples), Skipped: skipped,
		Fields: len(fold), Folds: Folds, Detected: detected, TargetFPR: o.TargetFPR,
		Cells:          eval.Cells(truth, probs[:nLabelled], nil, th),
		FieldNegatives: len(samples) - nLabelled,
	}
	if rep.FieldNegatives > 0 {
		rep.FieldNegativesFlagged = float64(negFlag) / float64(rep.FieldNegatives)
	}
	p := params(o.PixelUM, fit(samples, o.Fit))
	p.High = fitHigh(samples, o.Fit)
	if cnnNets != nil {
		p.CNN, p.CNNWeight = cnnNets[Folds], o.CNNWeight
		for f := range folds {
			folds[f].CNN = cnnNets[f]
		}
		p.Version = VersionCNN
	}
	p.Folds = folds
	meta, err := json.Marshal(map[string]any{
		"data":                             "CRIC cervix cell crops (cric/cells/labels.csv)",
		"validation":                       fmt.Sprintf("%d-fold cross-validation grouped by image_filename, seed %d; final fit on all crops", Folds, o.Seed),
		"fit":                              o.Fit,
		"cnn":                              o.CNN,
		"cnn_weight":                       o.CNNWeight,
		"recommended_high_grade_threshold": th,
		"report":                           rep,
	})
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	p.Training = meta
	return p, rep, nil
}

// Print writes the report in human-readable form.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "samples %d (skipped %d, nucleus detected near centre %d) from %d fields; %d-fold CV grouped by field, seed %d; features at %.2f µm/px; hidden %d\n",
		r.Samples, r.Skipped, r.Detected, r.Fields, r.Folds, r.Seed, r.PixelUM, r.Hidden)
	eval.PrintCells(w, &r.Cells)
	fmt.Fprintf(w, "threshold %.3f chosen for out-of-fold NILM FPR <= %.2f; field negatives %d, flagged high %.4f\n", r.Cells.Threshold, r.TargetFPR, r.FieldNegatives, r.FieldNegativesFlagged)
}

// Run trains on dataDir, prints the validation report to w and writes the
// weights file (JSON classify.ModelParams) to outPath.
func Run(ctx context.Context, dataDir, outPath string, o Options, w io.Writer) error {
	p, rep, err := Train(ctx, dataDir, o)
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
