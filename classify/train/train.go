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
//
// TrainCascade (cascade.go) adds the optional second stage of classify
// (classify.CascadeParams) on top of a weights file: one network per fold
// of the first stage (trained on that fold's training fields) and a final
// one, on every abnormal sample and the NILM samples the first stage finds
// suspicious out of fold, with its temperature and mixing weight fitted on
// the out-of-fold predictions of the CRIC crops.
package train

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"papscan/classify"
	"papscan/classify/eval"
	"papscan/classify/internal/dataset"
)

// Version is the version string of models produced by this package.
const Version = "mlp-features-3"

// VersionCNN is the version string of models with a CNN head.
const VersionCNN = "mlp-cnn-3"

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
	// FieldNegativesSkipHigh takes no field negatives from fields with a
	// high-grade label (their unlabelled objects, if CRIC missed any
	// abnormal cell there, would teach high grade as NILM).
	FieldNegativesSkipHigh bool
	// CNN, when not nil, also trains the convolutional head (see
	// classify.CNNParams) and fuses it with weight CNNWeight.
	CNN       *CNNOptions
	CNNWeight float64
	// CNNNILMWeight is the CNN's weight in P(NILM) (see
	// classify.ModelParams.CNNNILMWeight).
	CNNNILMWeight float64
	// MoreFields adds cric/more-fields: its labelled points and negatives
	// (see LoadMoreFields: MorePerField per field, MoreAllCap on NILM-only
	// fields).
	MoreFields   bool
	MorePerField int
	MoreAllCap   int
	// CellSets are labelled-cell directories of other laboratories (with a
	// manifest, see eval.FindManifest) trained on, grouped by source image.
	CellSets []string
	// EvalSets are labelled-cell directories only scored (by the mean of
	// the fold models, none of which saw them) in the report.
	EvalSets []string
	// CVOnly skips the final fit (experiments).
	CVOnly bool
	// DumpOOF, when set, names a file the out-of-fold feature-head and CNN
	// probabilities of every sample are written to (JSON lines; analysis).
	DumpOOF string
	// ClassBias fits a prior shift for the six-class decision
	// (classify.ModelParams.ClassBias) on the out-of-fold predictions of
	// the labelled CRIC cells, cross-fitted by fold.
	ClassBias bool
	// Calibrate fits a temperature (classify.ModelParams.Temperature) on
	// the out-of-fold predictions of the labelled CRIC cells.
	Calibrate bool
	// Cascade, when not nil, adds the second stage (see TrainCascade).
	Cascade *CascadeOptions
	// WhiteBalance trains a model that reads every image divided by its
	// clear glass's colour (classify.ModelParams.WhiteBalance): a field's
	// own glass for its objects and for the crops cut from it, a lab's
	// manifest glass for its labelled cells.
	WhiteBalance bool
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
	// Aux marks a labelled cell that is trained on but not scored with the
	// crops (more-fields points, other laboratories' cells).
	Aux bool
	// Other marks a cell of another laboratory (see FitOptions.OtherWeight).
	Other bool
	// Crop is the window the CNN sees (nil when not loaded).
	Crop *Crop
	// Wide is the second stage's window (nil when not loaded).
	Wide *Wide
	// cx, cy locate the nucleus in a labelled crop (crop pixels).
	cx, cy float64
}

// LoadFieldNegatives runs the detector at the model's pixel size on the
// CRIC fields (dataDir/cric/fields) and returns up to perField detected
// objects per field lying farther than 6 µm from every labelled nucleus
// (any class), drawn with seed, labelled NILM. CRIC labels every abnormal
// cell of a field it annotates but only some normal ones, so these are
// normal nuclei, inflammatory cells, debris and overlaps: the objects a
// whole slide is full of and the labelled crops lack.
//
// skipHigh leaves out the fields with a high-grade label.
func LoadFieldNegatives(ctx context.Context, dataDir string, fm *classify.Model, perField int, seed int64, skipHigh bool) ([]Sample, error) {
	dir := filepath.Join(dataDir, "cric", "fields")
	rows, names, err := eval.ReadPoints(filepath.Join(dir, "nuclei.csv"), "image_filename", "x_img", "y_img", "bethesda_system")
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
		high := false
		for _, p := range rows[name] {
			if c, _ := classify.ParseClass(p.Class); c.HighGrade() {
				high = true
			}
		}
		img, err := dataset.LoadRGBA(filepath.Join(dir, "images", name))
		if err != nil {
			return nil, err
		}
		if skipHigh && high {
			continue
		}
		k := CRICPixelUM / px
		img = classify.Rescale(img, CRICPixelUM, px)
		ns := det.Detect(img)
		img = fm.ForModelOwnGlass(img, nil)
		var cand []classify.Nucleus
		for _, n := range ns {
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
				Crop: cutCrop(img, n.X, n.Y, px, CNNPixelUM), Wide: cutWide(img, n.X, n.Y, px, CNNPixelUM)})
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
	// Temperature fitted on the out-of-fold predictions (0: none).
	Temperature float64 `json:"temperature,omitempty"`
	// MoreFieldPoints are the out-of-fold scores of the cric/more-fields
	// labelled points (when trained with them).
	MoreFieldPoints *eval.CellMetrics `json:"more_field_points,omitempty"`
	// CellSets are the scores on other laboratories' cells: out-of-fold
	// when trained on, else by the mean of the fold models.
	CellSets []*eval.CellSetResult `json:"cell_sets,omitempty"`
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
	var glass map[string][3]float64
	if fm.WhiteBalances() {
		if glass, err = eval.FieldGlass(ctx, dataDir, fm.Params().PixelUM); err != nil {
			return nil, 0, 0, err
		}
	}
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
		g, hasGlass := glass[r.Field]
		img = fm.ForModel(img, g, hasGlass, nil)
		fv, ok := fm.Features(img, n)
		if !ok {
			skipped++
			continue
		}
		out = append(out, Sample{ID: r.ID, Field: r.Field, Class: r.Class, F: fv,
			Crop: cutCrop(img, n.X, n.Y, CRICPixelUM, CNNPixelUM), cx: n.X, cy: n.Y})
	}
	if err := cutLabelledWide(ctx, dataDir, fm, glass, out); err != nil {
		return nil, 0, 0, err
	}
	return out, skipped, detected, nil
}

// cutLabelledWide cuts the second stage's window of each labelled crop
// from its whole field (cric/fields or cric/more-fields), loading each
// field once; crops whose field is absent keep Wide nil.
func cutLabelledWide(ctx context.Context, dataDir string, fm *classify.Model, glass map[string][3]float64, samples []Sample) error {
	lp := filepath.Join(dataDir, "cric", "cells", "labels.csv")
	centres, err := eval.ReadCellCentres(lp)
	if err != nil {
		return err
	}
	byField := map[string][]int{}
	var names []string
	for i, s := range samples {
		if _, ok := byField[s.Field]; !ok {
			names = append(names, s.Field)
		}
		byField[s.Field] = append(byField[s.Field], i)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		var img *image.RGBA
		for _, i := range byField[name] {
			s := &samples[i]
			c, ok := centres[s.ID]
			if !ok {
				continue
			}
			path, px, x, y, ok := eval.FieldOfCrop(dataDir, name, c, s.cx, s.cy)
			if !ok {
				break
			}
			if img == nil {
				if img, err = dataset.LoadRGBA(path); err != nil {
					return err
				}
				g, ok := glass[name]
				img = fm.ForModel(img, g, ok, nil)
			}
			s.Wide = cutWide(img, x, y, px, CNNPixelUM)
		}
	}
	return nil
}

// ReadLabels reads dataDir/cric/cells/labels.csv.
func ReadLabels(dataDir string) ([]eval.CellLabel, error) {
	return eval.ReadCellLabels(filepath.Join(dataDir, "cric", "cells", "labels.csv"))
}

// AssignFolds maps each field to a fold in [0, k): fields sorted, shuffled
// with seed, dealt round-robin. The groups of other laboratories' cells
// (Sample.Other) are dealt separately after the CRIC fields (sorted,
// shuffled with seed+1), so that adding another lab leaves every CRIC
// field in the fold it has without it: CRIC figures with and without the
// other lab compare the same splits.
func AssignFolds(samples []Sample, k int, seed int64) map[string]int {
	set := map[string]bool{}
	other := map[string]bool{}
	for _, s := range samples {
		if s.Other {
			other[s.Field] = true
		} else {
			set[s.Field] = true
		}
	}
	fold := make(map[string]int, len(set)+len(other))
	deal := func(set map[string]bool, seed int64) {
		fields := make([]string, 0, len(set))
		for f := range set {
			fields = append(fields, f)
		}
		sort.Strings(fields)
		rng := rand.New(rand.NewSource(seed))
		rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
		for i, f := range fields {
			if _, ok := fold[f]; !ok {
				fold[f] = i % k
			}
		}
	}
	deal(set, seed)
	deal(other, seed+1)
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
// the final parameters (fitted on all samples, carrying the fold models) and
// the validation report.
func Train(ctx context.Context, dataDir string, o Options) (classify.ModelParams, *Report, error) {
	p, rep, _, err := train(ctx, dataDir, o)
	return p, rep, err
}

// Loaded are the training samples of a run: the labelled CRIC crops first
// (NLabelled of them), then the field negatives, the more-fields samples
// and other laboratories' cells.
type Loaded struct {
	Samples           []Sample
	NLabelled, NMore  int
	Skipped, Detected int
	SetNames          []string
	featureModel      *classify.Model
}

// LoadAll loads the training samples of o (see Loaded).
func LoadAll(ctx context.Context, dataDir string, o Options) (*Loaded, error) {
	o = o.withDefaults()
	fm, err := classify.NewModel(classify.ModelParams{PixelUM: o.PixelUM, WindowUM: WindowUM, Stain: classify.DefaultStain, WhiteBalance: o.WhiteBalance})
	if err != nil {
		return nil, err
	}
	samples, skipped, detected, err := LoadSamples(ctx, dataDir, fm, o.MaxCells)
	if err != nil {
		return nil, err
	}
	if len(samples) < 2*Folds {
		return nil, fmt.Errorf("train: only %d samples", len(samples))
	}
	nLabelled := len(samples)
	if o.FieldNegatives > 0 {
		neg, err := LoadFieldNegatives(ctx, dataDir, fm, o.FieldNegatives, o.Seed, o.FieldNegativesSkipHigh)
		if err != nil {
			return nil, err
		}
		samples = append(samples, neg...)
	}
	nMore := 0
	if o.MoreFields {
		skip := map[string]bool{}
		for _, s := range samples[:nLabelled] {
			skip[s.ID] = true
		}
		lab, neg, err := LoadMoreFields(ctx, dataDir, fm, skip, o.MorePerField, o.MoreAllCap, o.Seed)
		if err != nil {
			return nil, err
		}
		nMore = len(lab)
		samples = append(samples, lab...)
		samples = append(samples, neg...)
	}
	var setNames []string
	for _, d := range o.CellSets {
		cs, err := LoadCellSet(ctx, d, fm)
		if err != nil {
			return nil, err
		}
		samples = append(samples, cs...)
		setNames = append(setNames, d)
	}
	return &Loaded{Samples: samples, NLabelled: nLabelled, NMore: nMore, Skipped: skipped, Detected: detected, SetNames: setNames, featureModel: fm}, nil
}

func train(ctx context.Context, dataDir string, o Options) (classify.ModelParams, *Report, *Loaded, error) {
	o = o.withDefaults()
	ld, err := LoadAll(ctx, dataDir, o)
	if err != nil {
		return classify.ModelParams{}, nil, nil, err
	}
	samples, nLabelled, nMore, skipped, detected, setNames, fm := ld.Samples, ld.NLabelled, ld.NMore, ld.Skipped, ld.Detected, ld.SetNames, ld.featureModel
	fold := AssignFolds(samples, Folds, o.Seed)
	folds, probs, err := CrossValidate(ctx, samples, fold, Folds, o.Fit)
	if err != nil {
		return classify.ModelParams{}, nil, nil, err
	}
	var cnnNets []*classify.CNNParams
	if o.CNN != nil {
		var oof [][classify.CNNGroups]float32
		cnnNets, oof, err = crossValidateCNN(ctx, samples, fold, Folds, *o.CNN, o.CVOnly)
		if err != nil {
			return classify.ModelParams{}, nil, nil, err
		}
		if o.DumpOOF != "" {
			if err := dumpOOF(o.DumpOOF, samples, probs, oof); err != nil {
				return classify.ModelParams{}, nil, nil, err
			}
		}
		for i := range probs {
			probs[i] = fuse(probs[i], oof[i], o.CNNWeight, o.CNNNILMWeight)
		}
	}
	temp := 0.0
	if o.Calibrate {
		var cal []int
		for i, s := range samples {
			if !s.Extra && !s.Other {
				cal = append(cal, i)
			}
		}
		temp = fitTemperature(samples, probs, cal)
		for i := range probs {
			probs[i] = classify.Temper(probs[i], 1/temp)
		}
	}
	var bias []float64
	if o.ClassBias {
		var all []int
		for i, s := range samples {
			if !s.Extra && !s.Other {
				all = append(all, i)
			}
		}
		bias = fitBias(samples, probs, all)
		// Each fold's cells get the bias fitted without them (the fold
		// model carries it), so the reported scores stay held out.
		cross := make([][classify.NumClasses]float32, len(probs))
		for f := range folds {
			var rest []int
			for _, i := range all {
				if fold[samples[i].Field] != f {
					rest = append(rest, i)
				}
			}
			b := fitBias(samples, probs, rest)
			folds[f].ClassBias = b
			var bb [classify.NumClasses]float64
			copy(bb[:], b)
			for i, s := range samples {
				if fold[s.Field] == f {
					cross[i] = classify.Calibrate(probs[i], 1, &bb)
				}
			}
		}
		probs = cross
	}
	truth := make([]classify.Class, nLabelled)
	fields := make([]string, nLabelled)
	var nilm []float64
	for i, s := range samples[:nLabelled] {
		truth[i], fields[i] = s.Class, s.Field
		if s.Class == classify.NILM {
			nilm = append(nilm, float64(classify.HighGradeProb(probs[i])))
		}
	}
	th := eval.ThresholdAtFPR(nilm, o.TargetFPR)
	th = math.Round(th*1000) / 1000
	negFlag, nNeg := 0, 0
	var moreTruth []classify.Class
	var moreProbs [][classify.NumClasses]float32
	var moreFields []string
	for i := nLabelled; i < len(samples); i++ {
		s := samples[i]
		switch {
		case s.Extra:
			nNeg++
			if float64(classify.HighGradeProb(probs[i])) >= th {
				negFlag++
			}
		case s.Aux && !s.Other:
			moreTruth, moreProbs, moreFields = append(moreTruth, s.Class), append(moreProbs, probs[i]), append(moreFields, s.Field)
		}
	}
	rep := &Report{
		Seed: o.Seed, PixelUM: o.PixelUM, Hidden: o.Fit.Hidden, Samples: len(samples), Skipped: skipped,
		Fields: len(fold), Folds: Folds, Detected: detected, TargetFPR: o.TargetFPR,
		Cells:          eval.Cells(truth, probs[:nLabelled], fields, th),
		FieldNegatives: nNeg, Temperature: temp,
	}
	if nNeg > 0 {
		rep.FieldNegativesFlagged = float64(negFlag) / float64(nNeg)
	}
	if nMore > 0 {
		m := eval.Cells(moreTruth, moreProbs, moreFields, th)
		rep.MoreFieldPoints = &m
	}
	for _, d := range o.CellSets {
		r, err := scoreSet(ctx, d, fm, samples, probs, nil, th)
		if err != nil {
			return classify.ModelParams{}, nil, nil, err
		}
		rep.CellSets = append(rep.CellSets, r)
	}
	if len(o.EvalSets) > 0 {
		var ms []*classify.Model
		for f := range folds {
			fp := params(o.PixelUM, folds[f].Head)
			fp.High, fp.WhiteBalance = folds[f].High, o.WhiteBalance
			if cnnNets != nil {
				fp.CNN, fp.CNNWeight, fp.CNNNILMWeight = cnnNets[f], o.CNNWeight, o.CNNNILMWeight
			}
			fp.Temperature, fp.ClassBias = temp, folds[f].ClassBias
			m, err := classify.NewModel(fp)
			if err != nil {
				return classify.ModelParams{}, nil, nil, err
			}
			ms = append(ms, m)
		}
		for _, d := range o.EvalSets {
			r, err := scoreSet(ctx, d, fm, nil, nil, ms, th)
			if err != nil {
				return classify.ModelParams{}, nil, nil, err
			}
			rep.CellSets = append(rep.CellSets, r)
		}
	}
	if o.CVOnly {
		return classify.ModelParams{}, rep, ld, nil
	}
	p := params(o.PixelUM, fit(samples, o.Fit))
	p.High, p.WhiteBalance = fitHigh(samples, o.Fit), o.WhiteBalance
	if cnnNets != nil {
		p.CNN, p.CNNWeight, p.CNNNILMWeight = cnnNets[Folds], o.CNNWeight, o.CNNNILMWeight
		for f := range folds {
			folds[f].CNN = cnnNets[f]
		}
		p.Version = VersionCNN
	}
	p.Folds = folds
	p.Temperature, p.ClassBias = temp, bias
	data := "CRIC cervix cell crops (cric/cells/labels.csv) and field negatives (cric/fields)"
	if o.MoreFields {
		data += "; cric/more-fields labelled points and negatives"
	}
	if o.FieldNegativesSkipHigh {
		data += "; no field negatives from fields with a high-grade label"
	}
	for _, d := range setNames {
		data += "; labelled cells of " + filepath.Base(d) + " (grouped by source image)"
	}
	meta, err := json.Marshal(map[string]any{
		"data":                             data,
		"validation":                       fmt.Sprintf("%d-fold cross-validation grouped by image_filename (other labs: by source image), seed %d; final fit on all samples", Folds, o.Seed),
		"fit":                              o.Fit,
		"cnn":                              o.CNN,
		"cnn_weight":                       o.CNNWeight,
		"cnn_nilm_weight":                  o.CNNNILMWeight,
		"temperature":                      temp,
		"recommended_high_grade_threshold": th,
		"report":                           rep,
	})
	if err != nil {
		return classify.ModelParams{}, nil, nil, err
	}
	p.Training = meta
	return p, rep, ld, nil
}

// fitTemperature returns the temperature T in [0.25, 4] minimising the
// mean negative log-likelihood of the true classes of samples idx under
// probs tempered by T (golden-section search on log T), rounded to 3
// decimals.
func fitTemperature(samples []Sample, probs [][classify.NumClasses]float32, idx []int) float64 {
	return fitTemperatureOf(samples, idx, func(i int, invT float64) [classify.NumClasses]float32 {
		return classify.Temper(probs[i], invT)
	})
}

// fitTemperatureOf is fitTemperature's search, for any tempering:
// tempered(i, 1/T) gives sample i's class probabilities at temperature T.
func fitTemperatureOf(samples []Sample, idx []int, tempered func(i int, invT float64) [classify.NumClasses]float32) float64 {
	nll := func(lt float64) float64 {
		var s float64
		for _, i := range idx {
			p := tempered(i, math.Exp(-lt))
			s -= math.Log(math.Max(float64(p[samples[i].Class]), 1e-7))
		}
		return s
	}
	a, b := math.Log(0.25), math.Log(4)
	g := (math.Sqrt(5) - 1) / 2
	c, d := b-g*(b-a), a+g*(b-a)
	fc, fd := nll(c), nll(d)
	for range 40 {
		if fc < fd {
			b, d, fd = d, c, fc
			c = b - g*(b-a)
			fc = nll(c)
		} else {
			a, c, fc = c, d, fd
			d = a + g*(b-a)
			fd = nll(d)
		}
	}
	return math.Round(math.Exp((a+b)/2)*1000) / 1000
}

func dumpOOF(path string, samples []Sample, probs [][classify.NumClasses]float32, oof [][classify.CNNGroups]float32) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for i, s := range samples {
		if err := enc.Encode(map[string]any{"id": s.ID, "field": s.Field, "class": int(s.Class), "extra": s.Extra, "aux": s.Aux, "other": s.Other, "p": probs[i], "g": oof[i]}); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// fitBias returns the class log-prior shift (NILM fixed at 0, others in
// [-2, 2] by steps of 0.1) that maximises the macro-F1 of the argmax
// decision on samples idx (coordinate ascent, three passes).
func fitBias(samples []Sample, probs [][classify.NumClasses]float32, idx []int) []float64 {
	lp := make([][classify.NumClasses]float64, len(idx))
	for k, i := range idx {
		for c, v := range probs[i] {
			lp[k][c] = math.Log(math.Max(float64(v), 1e-9))
		}
	}
	var b [classify.NumClasses]float64
	score := func() float64 {
		var conf [classify.NumClasses][classify.NumClasses]int
		for k, i := range idx {
			best := 0
			for c := range lp[k] {
				if lp[k][c]+b[c] > lp[k][best]+b[best] {
					best = c
				}
			}
			conf[samples[i].Class][best]++
		}
		return eval.MacroF1(&conf)
	}
	bestF := score()
	for range 3 {
		for c := 1; c < classify.NumClasses; c++ {
			keep := b[c]
			for v := -20; v <= 20; v++ {
				b[c] = float64(v) / 10
				if f := score(); f > bestF+1e-9 {
					bestF, keep = f, b[c]
				}
			}
			b[c] = keep
		}
	}
	return b[:]
}

// fuse combines the feature head's class probabilities with the CNN's
// group probabilities as classify's predictor does.
func fuse(p [classify.NumClasses]float32, g [classify.CNNGroups]float32, wHigh, wNILM float64) [classify.NumClasses]float32 {
	ph := (1-wHigh)*float64(classify.HighGradeProb(p)) + wHigh*float64(g[2])
	pn := (1-wNILM)*float64(p[classify.NILM]) + wNILM*float64(g[0])
	out := classify.SetHighGrade(p, float32(ph))
	if wNILM > 0 {
		out = classify.SetNILM(out, float32(pn))
	}
	return out
}

// scoreSet scores the labelled-cell directory dir: with the out-of-fold
// probabilities of its samples (when it was trained on), else with the mean
// of the models ms (none of which saw it), padding as stored and
// glass-filled.
func scoreSet(ctx context.Context, dir string, fm *classify.Model, samples []Sample, probs [][classify.NumClasses]float32, ms []*classify.Model, th float64) (*eval.CellSetResult, error) {
	var oof map[string][classify.NumClasses]float32
	if ms == nil {
		oof = map[string][classify.NumClasses]float32{}
		for i, s := range samples {
			if s.Other {
				oof[s.ID] = probs[i]
			}
		}
	}
	det := classify.DetectOptions{MinAreaUM2: 10, MaxAreaUM2: 900}
	r, err := eval.CellSetWith(ctx, dir, det, th, func(img *image.RGBA, n classify.Nucleus, set, file, group string, glass [3]float64, hasGlass bool) ([classify.NumClasses]float32, int, bool) {
		if ms == nil {
			p, ok := oof[set+"/"+file]
			return p, 0, ok
		}
		img = ms[0].ForModel(img, glass, hasGlass, nil)
		var in classify.Input
		if !ms[0].Measure(img, n, &in) {
			return [classify.NumClasses]float32{}, -1, false
		}
		var sum [classify.NumClasses]float32
		for _, m := range ms {
			p := m.PredictInput(&in)
			for c := range sum {
				sum[c] += p[c] / float32(len(ms))
			}
		}
		return sum, -1, true
	})
	if r != nil {
		// The weights file must not depend on where the data lives.
		r.Dir = filepath.Base(dir)
	}
	return r, err
}

// Print writes the report in human-readable form.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "samples %d (skipped %d, nucleus detected near centre %d) from %d fields; %d-fold CV grouped by field, seed %d; features at %.2f µm/px; hidden %d\n",
		r.Samples, r.Skipped, r.Detected, r.Fields, r.Folds, r.Seed, r.PixelUM, r.Hidden)
	eval.PrintCells(w, &r.Cells)
	fmt.Fprintf(w, "threshold %.3f chosen for out-of-fold NILM FPR <= %.2f; field negatives %d, flagged high %.4f\n", r.Cells.Threshold, r.TargetFPR, r.FieldNegatives, r.FieldNegativesFlagged)
	if r.Temperature != 0 {
		fmt.Fprintf(w, "temperature %.3f (fitted on the out-of-fold CRIC predictions)\n", r.Temperature)
	}
	if m := r.MoreFieldPoints; m != nil {
		fmt.Fprintf(w, "more-fields points (out of fold): %d cells, NILM %d; AUC low vs NILM %.3f %s; flagged high: NILM %.3f %s, low %.3f\n", m.N, m.NILMN, m.AUCLowVsNILM, m.AUCLowVsNILMCI, m.NILMFPR, m.NILMFPRCI, m.LowGradeFlagged)
	}
	for _, cs := range r.CellSets {
		eval.PrintCellSet(w, cs)
	}
}

// Run trains on dataDir, prints the validation report to w and writes the
// weights file (JSON classify.ModelParams) to outPath.
func Run(ctx context.Context, dataDir, outPath string, o Options, w io.Writer) error {
	p, rep, ld, err := train(ctx, dataDir, o)
	if err != nil {
		return err
	}
	rep.Print(w)
	if o.Cascade != nil {
		if p, _, err = TrainCascade(ctx, p, ld.Samples, ld.NLabelled, *o.Cascade, w); err != nil {
			return err
		}
	}
	return writeWeights(p, outPath, w)
}

// RunCascade adds (or replaces) the second stage of the weights file
// basePath, trained on dataDir's samples as o loads them, and writes the
// result to outPath.
func RunCascade(ctx context.Context, dataDir, basePath, outPath string, o Options, w io.Writer) error {
	data, err := os.ReadFile(basePath)
	if err != nil {
		return err
	}
	var base classify.ModelParams
	if err := json.Unmarshal(data, &base); err != nil {
		return fmt.Errorf("train: %s: %w", basePath, err)
	}
	if o.Cascade == nil {
		return fmt.Errorf("train: no cascade options")
	}
	// The version of a base that already carries a cascade.
	if v, ok := strings.CutSuffix(base.Version, "+"+VersionCascade); ok {
		base.Version = v
	}
	if len(base.Training) > 0 {
		var meta map[string]any
		if err := json.Unmarshal(base.Training, &meta); err != nil {
			return fmt.Errorf("train: %s: training: %w", basePath, err)
		}
		delete(meta, "cascade")
		if base.Training, err = json.Marshal(meta); err != nil {
			return err
		}
	}
	ld, err := LoadAll(ctx, dataDir, o)
	if err != nil {
		return err
	}
	p, _, err := TrainCascade(ctx, base, ld.Samples, ld.NLabelled, *o.Cascade, w)
	if err != nil {
		return err
	}
	return writeWeights(p, outPath, w)
}

func writeWeights(p classify.ModelParams, outPath string, w io.Writer) error {
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
