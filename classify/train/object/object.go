// Package object trains the detector's object filter (classify.ObjectFilter):
// a binary model on density-only component features that tells squamous-cell
// nuclei from neutrophils, debris and dense cytoplasm.
//
// Training data: the detections (filter off) on the ISBI 2014 images,
// labelled by matching to their exhaustive nucleus points (positives and
// negatives), and the detections on the CRIC fields that cover a labelled
// nucleus (positives only: CRIC labels are not exhaustive), abnormal ones
// weighted heavily. Cross-validation is grouped by image; the threshold is
// chosen on the pooled out-of-fold scores (best ISBI F1 with the CRIC
// abnormal-nucleus recall held at or above a floor) and never per fold.
package object

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/rand"
	"path/filepath"
	"sort"

	"papscan/classify"
	"papscan/classify/eval"
)

// Sample is one detection with its features.
type Sample struct {
	V      classify.ObjectVector
	Label  bool    // squamous nucleus (ISBI match or CRIC labelled point)
	Weight float64 // training weight
	Image  int     // index into Data.Images
}

// Image is one training image and its detections.
type Image struct {
	Field  string // classify.ObjectField name
	ISBI   bool
	Dets   []classify.Nucleus
	First  int // index of its first sample in Data.Samples (ISBI: all detections)
	GT     []eval.Point
	Points []Point // CRIC labelled points
}

// Point is a CRIC labelled nucleus and the samples (detections) covering it.
type Point struct {
	Abnormal bool
	Class    string
	Covers   []int
}

// Data is a labelled training set.
type Data struct {
	Images  []Image
	Samples []Sample
}

// Options configure a training run.
type Options struct {
	Seed  int64
	Folds int
	// PixelUM, MinAreaUM2, MaxAreaUM2: detector settings (those of papscan
	// eval and the robot's default profile).
	PixelUM, MinAreaUM2, MaxAreaUM2 float64
	// AbnormalWeight and NILMWeight weight the CRIC positives; ISBI samples
	// weigh 1.
	AbnormalWeight, NILMWeight float64
	// ISBIPositiveWeight weights an ISBI positive (negatives weigh 1 before
	// the class balancing of Fit).
	ISBIPositiveWeight float64
	// MinAbnormalRecall is the floor on the pooled out-of-fold CRIC
	// abnormal-nucleus recall (detection and filter together) the threshold
	// must keep.
	MinAbnormalRecall float64
	Fit               FitOptions
	Version           string
}

// DefaultOptions are the shipped training settings.
func DefaultOptions() Options {
	return Options{Seed: 1, Folds: 5, PixelUM: 0.5, MinAreaUM2: 10, MaxAreaUM2: 900,
		AbnormalWeight: 3, NILMWeight: 1, ISBIPositiveWeight: 3, MinAbnormalRecall: 0.955, Fit: DefaultFit(), Version: "object-2"}
}

func (o Options) detectOptions() classify.DetectOptions {
	return classify.DetectOptions{PixelUM: o.PixelUM, MinAreaUM2: o.MinAreaUM2, MaxAreaUM2: o.MaxAreaUM2, NoObjectFilter: true}
}

// Load detects and labels the ISBI images and CRIC fields under dataDir.
func Load(ctx context.Context, dataDir string, o Options) (*Data, error) {
	d := &Data{}
	det := classify.NewDetector(o.detectOptions())
	tol := eval.MatchTolUM / o.PixelUM
	// ISBI.
	dir := filepath.Join(dataDir, "isbi2014")
	by, names, err := eval.ReadPoints(filepath.Join(dir, "nuclei.csv"), "image", "x", "y", "")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if _, err := eval.EachField(ctx, dir, by, names, eval.ISBIPixelUM, o.PixelUM, func(f eval.Field) error {
		ns := det.Detect(f.Image)
		_, gm := eval.MatchPoints(f.Points, ns, tol)
		pos := make([]bool, len(ns))
		for _, m := range gm {
			if m >= 0 {
				pos[m] = true
			}
		}
		im := Image{Field: classify.ObjectField("isbi2014", f.Name), ISBI: true, Dets: append([]classify.Nucleus(nil), ns...), First: len(d.Samples), GT: f.Points}
		for i := range ns {
			s := Sample{Label: pos[i], Weight: 1, Image: len(d.Images)}
			if pos[i] {
				s.Weight = o.ISBIPositiveWeight
			}
			det.ObjectFeatures(&ns[i], &s.V)
			d.Samples = append(d.Samples, s)
		}
		d.Images = append(d.Images, im)
		return nil
	}); err != nil {
		return nil, err
	}
	// CRIC fields.
	dir = filepath.Join(dataDir, "cric", "fields")
	by, names, err = eval.ReadPoints(filepath.Join(dir, "nuclei.csv"), "image_filename", "x_img", "y_img", "bethesda_system")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if _, err := eval.EachField(ctx, dir, by, names, eval.CRICPixelUM, o.PixelUM, func(f eval.Field) error {
		ns := det.Detect(f.Image)
		im := Image{Field: classify.ObjectField("cric", f.Name), First: len(d.Samples)}
		sampleOf := make([]int, len(ns))
		for i := range sampleOf {
			sampleOf[i] = -1
		}
		for _, q := range f.Points {
			ab := q.Class != classify.NILM.String()
			pt := Point{Abnormal: ab, Class: q.Class}
			for i := range ns {
				if !eval.Covered(q, ns[i:i+1], tol) {
					continue
				}
				if sampleOf[i] < 0 {
					sampleOf[i] = len(d.Samples)
					s := Sample{Label: true, Weight: o.NILMWeight, Image: len(d.Images)}
					det.ObjectFeatures(&ns[i], &s.V)
					d.Samples = append(d.Samples, s)
				}
				if ab {
					d.Samples[sampleOf[i]].Weight = o.AbnormalWeight
				}
				pt.Covers = append(pt.Covers, sampleOf[i])
			}
			im.Points = append(im.Points, pt)
		}
		d.Images = append(d.Images, im)
		return nil
	}); err != nil {
		return nil, err
	}
	if len(d.Samples) == 0 {
		return nil, fmt.Errorf("object: no detections under %s (isbi2014, cric/fields)", dataDir)
	}
	return d, nil
}

// AssignFolds gives every image a fold: the ISBI images and the CRIC fields
// are each shuffled (seeded) and dealt round-robin, so every fold holds
// about 1/k of each source.
func AssignFolds(d *Data, k int, seed int64) []int {
	rng := rand.New(rand.NewSource(seed))
	fold := make([]int, len(d.Images))
	for _, isbi := range []bool{true, false} {
		var idx []int
		for i, im := range d.Images {
			if im.ISBI == isbi {
				idx = append(idx, i)
			}
		}
		rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
		for j, i := range idx {
			fold[i] = j % k
		}
	}
	return fold
}

// Metrics are detection scores after the filter at one threshold.
type Metrics struct {
	Threshold                     float64
	Detections, TP, GT            int
	Precision, Recall, F1         float64
	CRICLabelled, CRICFound       int
	AbnormalLabelled, AbnormalFnd int
	CRICRecall, AbnormalRecall    float64
	Labelled, Found               map[string]int
}

// Evaluate scores the filter with per-sample scores at threshold th: ISBI
// detections kept are matched afresh to the ground truth (as papscan eval
// does), and a CRIC point is found when a kept detection covers it.
func Evaluate(d *Data, score []float64, th float64) Metrics {
	m := Metrics{Threshold: th, Labelled: map[string]int{}, Found: map[string]int{}}
	for _, im := range d.Images {
		if im.ISBI {
			var kept []classify.Nucleus
			for i := range im.Dets {
				if score[im.First+i] >= th {
					kept = append(kept, im.Dets[i])
				}
			}
			tp, _ := eval.MatchPoints(im.GT, kept, eval.MatchTolUM/im.Dets0PixelUM())
			m.TP += tp
			m.GT += len(im.GT)
			m.Detections += len(kept)
			continue
		}
		for _, p := range im.Points {
			found := false
			for _, s := range p.Covers {
				if score[s] >= th {
					found = true
					break
				}
			}
			m.Labelled[p.Class]++
			m.CRICLabelled++
			if p.Abnormal {
				m.AbnormalLabelled++
			}
			if found {
				m.Found[p.Class]++
				m.CRICFound++
				if p.Abnormal {
					m.AbnormalFnd++
				}
			}
		}
	}
	m.Precision = ratio(m.TP, m.Detections)
	m.Recall = ratio(m.TP, m.GT)
	if m.Precision+m.Recall > 0 {
		m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
	}
	m.CRICRecall = ratio(m.CRICFound, m.CRICLabelled)
	m.AbnormalRecall = ratio(m.AbnormalFnd, m.AbnormalLabelled)
	return m
}

// Dets0PixelUM is the pixel size of the image's detections.
func (im *Image) Dets0PixelUM() float64 {
	if len(im.Dets) > 0 {
		return im.Dets[0].PixelUM
	}
	return 1
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// ChooseThreshold returns the threshold (on a 0.001 grid) with the best
// ISBI F1 among those keeping the CRIC abnormal recall >= minAbnormal
// (ties: the lower threshold), and its metrics.
func ChooseThreshold(d *Data, score []float64, minAbnormal float64) Metrics {
	best := Evaluate(d, score, 0)
	for i := 1; i < 1000; i++ {
		m := Evaluate(d, score, float64(i)/1000)
		if m.AbnormalLabelled > 0 && m.AbnormalRecall < minAbnormal {
			break
		}
		if m.F1 > best.F1+1e-12 {
			best = m
		}
	}
	return best
}

// Result is a training run's outcome.
type Result struct {
	Params   classify.ObjectParams
	Before   Metrics // filter off
	OOF      Metrics // pooled out-of-fold at the chosen threshold
	Samples  int
	Positive int
	// Curve is the out-of-fold trade-off at a few thresholds.
	Curve []Metrics
}

// Train loads the data, cross-validates, picks the threshold and fits the
// final model.
func Train(ctx context.Context, dataDir string, o Options) (*Result, error) {
	d, err := Load(ctx, dataDir, o)
	if err != nil {
		return nil, err
	}
	return TrainData(ctx, d, o)
}

// TrainData is Train on loaded data.
func TrainData(ctx context.Context, d *Data, o Options) (*Result, error) {
	if o.Folds < 2 {
		return nil, fmt.Errorf("object: folds %d must be >= 2", o.Folds)
	}
	if n := max(o.Fit.Ensemble, 1) * o.Fit.Hidden; o.Fit.Hidden < 0 || n > classify.MaxObjectHidden {
		return nil, fmt.Errorf("object: ensemble × hidden = %d units; the filter holds 0..%d", n, classify.MaxObjectHidden)
	}
	fold := AssignFolds(d, o.Folds, o.Seed)
	oof := make([]float64, len(d.Samples))
	p := classify.ObjectParams{Version: o.Version, Features: classify.ObjectFeatureNames}
	for k := 0; k < o.Folds; k++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var tr []Sample
		var fields []string
		for i, im := range d.Images {
			if fold[i] != k {
				fields = append(fields, im.Field)
			}
		}
		for _, s := range d.Samples {
			if fold[s.Image] != k {
				tr = append(tr, s)
			}
		}
		fo := o.Fit
		fo.Seed = o.Seed + int64(k) + 1
		h := Fit(tr, fo)
		for i := range d.Samples {
			if fold[d.Samples[i].Image] == k {
				oof[i] = h.Score(&d.Samples[i].V)
			}
		}
		sort.Strings(fields)
		p.Folds = append(p.Folds, classify.ObjectFold{ObjectHead: h, Fields: fields})
	}
	r := &Result{Samples: len(d.Samples)}
	for _, s := range d.Samples {
		if s.Label {
			r.Positive++
		}
	}
	r.Before = Evaluate(d, oof, math.Inf(-1))
	r.OOF = ChooseThreshold(d, oof, o.MinAbnormalRecall)
	for _, th := range []float64{0.001, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5} {
		r.Curve = append(r.Curve, Evaluate(d, oof, th))
	}
	fo := o.Fit
	fo.Seed = o.Seed
	p.ObjectHead = Fit(d.Samples, fo)
	p.Threshold = r.OOF.Threshold
	p.Report = map[string]float64{
		"oof_isbi_precision": round4(r.OOF.Precision), "oof_isbi_recall": round4(r.OOF.Recall), "oof_isbi_f1": round4(r.OOF.F1),
		"oof_cric_recall": round4(r.OOF.CRICRecall), "oof_cric_abnormal_recall": round4(r.OOF.AbnormalRecall),
		"samples": float64(r.Samples), "positives": float64(r.Positive),
	}
	r.Params = p
	return r, nil
}

func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// Print writes a summary.
func (r *Result) Print(w io.Writer) {
	pr := func(name string, m Metrics) {
		fmt.Fprintf(w, "%s: ISBI detections %d TP %d GT %d P %.3f R %.3f F1 %.3f; CRIC recall %.3f (%d/%d), abnormal %.3f (%d/%d)\n",
			name, m.Detections, m.TP, m.GT, m.Precision, m.Recall, m.F1, m.CRICRecall, m.CRICFound, m.CRICLabelled, m.AbnormalRecall, m.AbnormalFnd, m.AbnormalLabelled)
		var cls []string
		for c := range m.Labelled {
			cls = append(cls, c)
		}
		sort.Strings(cls)
		for _, c := range cls {
			fmt.Fprintf(w, "    %-8s %d/%d\n", c, m.Found[c], m.Labelled[c])
		}
	}
	fmt.Fprintf(w, "samples %d (positives %d)\n", r.Samples, r.Positive)
	pr("filter off", r.Before)
	pr(fmt.Sprintf("out-of-fold, threshold %.3f", r.OOF.Threshold), r.OOF)
	for _, m := range r.Curve {
		fmt.Fprintf(w, "  oof at %.3f: ISBI P %.3f R %.3f F1 %.3f; CRIC recall %.3f abnormal %.3f (%d/%d)\n",
			m.Threshold, m.Precision, m.Recall, m.F1, m.CRICRecall, m.AbnormalRecall, m.AbnormalFnd, m.AbnormalLabelled)
	}
}
