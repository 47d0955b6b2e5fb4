package eval

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"sort"
	"time"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// Pixel sizes of the development data sets (µm per stored pixel).
const (
	// CRICPixelUM: CRIC fields and crops (see classify.DefaultPixelUM).
	CRICPixelUM = classify.DefaultPixelUM
	// ISBIPixelUM: ISBI 2014 EDF images (nuclei 20–40 px across).
	ISBIPixelUM = 0.3
	// MatchTolUM is the distance (µm) within which a detection matches a
	// ground-truth nucleus point (10 px on the CRIC fields).
	MatchTolUM = 2.5
)

// Options configure an evaluation.
type Options struct {
	// DataDir is laid out like the shared data (cric/cells, cric/fields,
	// isbi2014); absent parts are skipped.
	DataDir string
	Model   *classify.Model
	// Threshold is the high-grade operating point (config
	// classify.high_grade_threshold).
	Threshold float64
	// Detect holds the detector settings. Detect.PixelUM is the robot
	// camera's pixel size: field images are resampled to it before
	// detection (0 keeps each data set's own pixel size).
	Detect classify.DetectOptions
	// Slides, when set, adds the slide-level evaluation (see Slides) of
	// the CRIC fields (cric/fields and cric/more-fields).
	Slides *SlideOptions
	// FieldNames, when set, limits AnalyseFields to these image files.
	FieldNames []string
	// FinalModel makes AnalyseFields score every field with the final
	// cell model and object filter, as the robot does, instead of the
	// fold that held the field out (for comparing with a simulated slide,
	// not for measuring).
	FinalModel bool
	// CellBlurUM, when non-zero, blurs every labelled CRIC crop by a
	// Gaussian of these standard deviations (µm along x and y, see Blur)
	// before it is detected, measured and scored: the cell figures under
	// the robot's defocus or motion blur.
	CellBlurUM [2]float64
}

// prepare returns img at the detection pixel size and the factor mapping a
// native coordinate u to the detection image: (u+0.5)·k − 0.5.
func prepare(img *image.RGBA, native, robot float64) (*image.RGBA, float64) {
	if robot <= 0 || math.Abs(robot/native-1) < 0.03 {
		return img, 1
	}
	return classify.Rescale(img, native, robot), native / robot
}

// DetMetrics are detection scores against exhaustive ground truth.
type DetMetrics struct {
	Images     int     `json:"images"`
	GT         int     `json:"gt"`
	Detections int     `json:"detections"`
	TP         int     `json:"tp"`
	Precision  float64 `json:"precision"`
	Recall     float64 `json:"recall"`
	F1         float64 `json:"f1"`
	// F1CI is the 95% bootstrap interval of F1 over the images.
	F1CI *Interval `json:"f1_ci95"`
}

// FieldRecall is the recall of labelled nuclei on the CRIC fields.
type FieldRecall struct {
	Images int `json:"images"`
	// Labelled and Found count labelled nuclei per class name.
	Labelled map[string]int `json:"labelled"`
	Found    map[string]int `json:"found"`
	// AbnormalRecall is over every non-NILM labelled nucleus. A point is
	// found when a detection's centre lies within MatchTolUM of it or its
	// bounding box contains it (see Covered); AbnormalByCentre counts only
	// the first kind (a stricter reading: a large nucleus's labelled point
	// is often farther than that from the detection's centroid).
	AbnormalRecall   float64 `json:"abnormal_recall"`
	AbnormalByCentre float64 `json:"abnormal_by_centre"`
	// AbnormalRecallCI is the 95% bootstrap interval of AbnormalRecall
	// over the fields.
	AbnormalRecallCI *Interval `json:"abnormal_recall_ci95"`
	Recall           float64   `json:"recall"`
}

// CellSource says how the cell predictions were obtained.
type CellSource struct {
	// HeldOutFold counts cells of fields the shipped model was trained on,
	// scored by the cross-validation fold that held the field out.
	HeldOutFold int `json:"held_out_fold"`
	// FinalModel counts cells of fields the model never saw.
	FinalModel int `json:"final_model"`
	Skipped    int `json:"skipped"`
}

// Result is the outcome of Run. Parts whose data is absent are nil.
type Result struct {
	Cells      *CellMetrics `json:"cells"`
	CellSource *CellSource  `json:"cell_source"`
	Detection  Detection    `json:"detection"`
	// CellSets are the labelled-cell directories of other labs found in
	// the data directory (see FindCellDirs), e.g. sipakmed.
	CellSets []*CellSetResult `json:"cell_sets"`
	Model    ModelID          `json:"model"`
	// ObjectFilter names the detector's object filter (null when off);
	// ObjectSource counts the detection images scored by a fold of the
	// filter that held them out and by its final model (images it never
	// saw).
	ObjectFilter *ModelID      `json:"object_filter"`
	ObjectSource *ObjectSource `json:"object_source"`
	// Slides is the slide-level evaluation (null when not asked for or
	// without CRIC fields); SlideFields are the analysed fields it was
	// composed from (for fitting the shipped rule; not serialised).
	Slides      *SlideMetrics `json:"slides"`
	SlideFields []SlideField  `json:"-"`
	Seconds     float64       `json:"seconds"`
	DataDir     string        `json:"data_dir"`
	Threshold   float64       `json:"threshold"`
	// PixelUM: native pixel sizes of the data sets and the detection pixel
	// size (the robot camera's) they are resampled to.
	PixelUM struct {
		CRIC   float64 `json:"cric"`
		ISBI   float64 `json:"isbi"`
		Detect float64 `json:"detect"`
	} `json:"pixel_um"`
}

// Detection groups the detection results.
type Detection struct {
	ISBI               *DetMetrics  `json:"isbi"`
	CRICAbnormalRecall *float64     `json:"cric_abnormal_recall"`
	CRIC               *FieldRecall `json:"cric"`
}

// ObjectSource says which object-filter model scored the detection images.
type ObjectSource struct {
	HeldOutFold int `json:"held_out_fold"`
	FinalModel  int `json:"final_model"`
}

func (s *ObjectSource) add(fold int) {
	if s == nil {
		return
	}
	if fold >= 0 {
		s.HeldOutFold++
	} else {
		s.FinalModel++
	}
}

// ModelID identifies the model evaluated.
type ModelID struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// Run evaluates opts.Model and the detector on opts.DataDir.
func Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	if opts.Model == nil {
		return nil, errors.New("eval: no model")
	}
	if st, err := os.Stat(opts.DataDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("eval: data directory %q not found", opts.DataDir)
	}
	r := &Result{Model: ModelID{opts.Model.Version, opts.Model.SHA256}, DataDir: opts.DataDir, Threshold: opts.Threshold}
	r.PixelUM.CRIC, r.PixelUM.ISBI, r.PixelUM.Detect = CRICPixelUM, ISBIPixelUM, opts.Detect.PixelUM
	if f := classify.NewDetector(opts.Detect).ObjectFilter(); f != nil {
		r.ObjectFilter = &ModelID{f.Version, f.SHA256}
		r.ObjectSource = &ObjectSource{}
	}
	var err error
	if r.Cells, r.CellSource, err = cells(ctx, opts); err != nil {
		return nil, err
	}
	if r.Detection.CRIC, err = cricFields(ctx, opts, r.ObjectSource); err != nil {
		return nil, err
	}
	if r.Detection.CRIC != nil {
		v := r.Detection.CRIC.AbnormalRecall
		r.Detection.CRICAbnormalRecall = &v
	}
	if r.Detection.ISBI, err = isbi(ctx, opts, r.ObjectSource); err != nil {
		return nil, err
	}
	for _, d := range FindCellDirs(opts.DataDir) {
		cs, err := CellSet(ctx, opts, d)
		if err != nil {
			return nil, err
		}
		r.CellSets = append(r.CellSets, cs)
	}
	if opts.Slides != nil {
		t := time.Now()
		if r.SlideFields, err = AnalyseFields(ctx, opts); err != nil {
			return nil, err
		}
		analysed := time.Since(t).Seconds()
		if len(r.SlideFields) > 0 {
			if r.Slides, err = Slides(ctx, r.SlideFields, *opts.Slides); err != nil {
				return nil, err
			}
			r.Slides.AnalyseSeconds = math.Round(analysed*100) / 100
		}
	}
	r.Seconds = math.Round(time.Since(start).Seconds()*100) / 100
	return r, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// CentreNucleus returns the detected nucleus nearest the centre of a crop
// (within 25 px), or a bare nucleus at the centre (found false).
func CentreNucleus(det *classify.Detector, img *image.RGBA) (classify.Nucleus, bool) {
	b := img.Bounds()
	cx, cy := float64(b.Min.X+b.Dx()/2), float64(b.Min.Y+b.Dy()/2)
	n := classify.Nucleus{X: cx, Y: cy, PixelUM: det.Options().PixelUM}
	best, found := 25.0, false
	for _, d := range det.Detect(img) {
		if dd := math.Hypot(d.X-cx, d.Y-cy); dd < best {
			best, n, found = dd, d, true
		}
	}
	return n, found
}

func cells(ctx context.Context, o Options) (*CellMetrics, *CellSource, error) {
	cp, err := CellPredictions(ctx, o)
	if cp == nil || err != nil {
		return nil, nil, err
	}
	m := Cells(cp.Truth, cp.Probs, cp.Fields, o.Threshold)
	return &m, &cp.Source, nil
}

// CellProbs are the held-out predictions of the labelled CRIC crops, one
// per crop in labels.csv order.
type CellProbs struct {
	Truth  []classify.Class
	Probs  [][classify.NumClasses]float32
	Fields []string
	Source CellSource
}

// CellPredictions scores every labelled crop of o.DataDir/cric/cells with
// o.Model (the fold that held the crop's field out), blurred by
// o.CellBlurUM; nil without labels.
func CellPredictions(ctx context.Context, o Options) (*CellProbs, error) {
	dir := filepath.Join(o.DataDir, "cric", "cells")
	lp := filepath.Join(dir, "labels.csv")
	if !exists(lp) {
		return nil, nil
	}
	rows, err := ReadCellLabels(lp)
	if err != nil {
		return nil, err
	}
	// The crop's labelled cell is classified whatever the object filter
	// would say of it (the filter is measured by the detection scores).
	do := withPixel(o.Detect, CRICPixelUM)
	do.NoObjectFilter = true
	det := classify.NewDetector(do)
	src := &CellSource{}
	var truth []classify.Class
	var probs [][classify.NumClasses]float32
	var fields []string
	var in classify.Input
	// A second stage sees a wider window than the 100-px crop holds: it is
	// cut from the crop's whole field (real context, never padding), one
	// field image at a time.
	var centres map[string]Point
	if o.Model.HasCascade() {
		if centres, err = ReadCellCentres(lp); err != nil {
			return nil, err
		}
	}
	var fieldName string
	var fieldImg *image.RGBA
	// A white-balancing model reads each crop divided by its field's glass.
	var glass map[string][3]float64
	if o.Model.WhiteBalances() {
		if glass, err = FieldGlass(ctx, o.DataDir, o.Detect.PixelUM); err != nil {
			return nil, err
		}
	}
	for _, row := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := dataset.LoadRGBA(filepath.Join(dir, row.File))
		if err != nil {
			return nil, err
		}
		if o.CellBlurUM != [2]float64{} {
			img = Blur(img, o.CellBlurUM[0]/CRICPixelUM, o.CellBlurUM[1]/CRICPixelUM)
		}
		n, _ := CentreNucleus(det, img)
		g, hasGlass := glass[row.Field]
		img = o.Model.ForModel(img, g, hasGlass, nil)
		ok := o.Model.Measure(img, n, &in)
		if c, found := centres[row.ID]; ok && found {
			if path, px, x, y, has := FieldOfCrop(o.DataDir, row.Field, c, n.X, n.Y); has {
				if fieldName != row.Field {
					if fieldImg, err = dataset.LoadRGBA(path); err != nil {
						return nil, err
					}
					fieldImg = o.Model.ForModel(fieldImg, g, hasGlass, nil)
					fieldName = row.Field
				}
				o.Model.MeasureWide(fieldImg, x, y, px, &in)
			}
		}
		var p [classify.NumClasses]float32
		if !ok {
			// No nucleus: the device would report nothing for this cell;
			// score it as a confident NILM (a miss if abnormal).
			src.Skipped++
			p[classify.NILM] = 1
		} else {
			var fold int
			p, fold = o.Model.PredictHeldOutInput(row.Field, &in)
			if fold >= 0 {
				src.HeldOutFold++
			} else {
				src.FinalModel++
			}
		}
		truth = append(truth, row.Class)
		probs = append(probs, p)
		fields = append(fields, row.Field)
	}
	if len(truth) == 0 {
		return nil, nil
	}
	return &CellProbs{Truth: truth, Probs: probs, Fields: fields, Source: *src}, nil
}

func withPixel(d classify.DetectOptions, px float64) classify.DetectOptions {
	d.PixelUM = px
	return d
}

// Point is a ground-truth nucleus position (pixels) with its label and,
// when the file has an area_px column (isbi2014/nuclei.csv), its area in
// px² (0 otherwise).
type Point struct {
	X, Y  float64
	Class string
	Area  float64
}

// ReadPoints reads a nuclei CSV (cric/fields/nuclei.csv, isbi2014/nuclei.csv)
// into points per image, in file order, and the image names sorted. With
// classCol empty the points carry no class; an area_px column, when the
// file has one, fills Point.Area.
func ReadPoints(path, imgCol, xCol, yCol, classCol string) (map[string][]Point, []string, error) {
	required := []string{imgCol, xCol, yCol}
	if classCol != "" {
		required = append(required, classCol)
	}
	t, err := readTable(path, required...)
	if err != nil {
		return nil, nil, err
	}
	by := map[string][]Point{}
	for i, r := range t.rows {
		x, err := t.num(i, xCol)
		if err != nil {
			return nil, nil, err
		}
		y, err := t.num(i, yCol)
		if err != nil {
			return nil, nil, err
		}
		p := Point{X: x, Y: y}
		if _, ok := t.col["area_px"]; ok {
			if p.Area, err = t.num(i, "area_px"); err != nil {
				return nil, nil, err
			}
		}
		if classCol != "" {
			c, err := classify.ParseClass(t.get(r, classCol))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %s: column %s: %w", path, t.line(i), classCol, err)
			}
			p.Class = c.String()
		}
		img := t.get(r, imgCol)
		by[img] = append(by[img], p)
	}
	names := make([]string, 0, len(by))
	for k := range by {
		names = append(names, k)
	}
	sort.Strings(names)
	return by, names, nil
}

// MatchPoints greedily matches ground-truth points to detections within tol
// px (closest pairs first); it returns the number of matches and, per
// point, the index of its detection or -1.
func MatchPoints(gt []Point, det []classify.Nucleus, tol float64) (int, []int) {
	type pair struct {
		d    float64
		g, k int
	}
	var ps []pair
	for g, p := range gt {
		for k, n := range det {
			if dd := math.Hypot(p.X-n.X, p.Y-n.Y); dd <= tol {
				ps = append(ps, pair{dd, g, k})
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].d < ps[j].d })
	gm := make([]int, len(gt))
	for i := range gm {
		gm[i] = -1
	}
	dm := make([]bool, len(det))
	m := 0
	for _, p := range ps {
		if gm[p.g] >= 0 || dm[p.k] {
			continue
		}
		gm[p.g], dm[p.k] = p.k, true
		m++
	}
	return m, gm
}

// Covered reports whether a labelled point is found: a detection's centre
// lies within tol px of it, or its bounding box contains it (CRIC points lie
// a median 8 px from the nucleus's darkest pixel, not at its centre).
func Covered(p Point, det []classify.Nucleus, tol float64) bool {
	return Covering(p, det, tol) >= 0
}

// Covering returns the detection that covers p (see Covered): the one whose
// centre is nearest p when that is within tol px, else the first whose box
// contains p; -1 when none does.
func Covering(p Point, det []classify.Nucleus, tol float64) int {
	best, bi := math.Inf(1), -1
	for k, n := range det {
		if d := math.Hypot(p.X-n.X, p.Y-n.Y); d < best {
			best, bi = d, k
		}
	}
	if best <= tol {
		return bi
	}
	for k, n := range det {
		if image.Pt(int(p.X), int(p.Y)).In(n.Box) {
			return k
		}
	}
	return -1
}

func cricFields(ctx context.Context, o Options, src *ObjectSource) (*FieldRecall, error) {
	dir := filepath.Join(o.DataDir, "cric", "fields")
	cp := filepath.Join(dir, "nuclei.csv")
	if !exists(cp) {
		return nil, nil
	}
	by, names, err := ReadPoints(cp, "image_filename", "x_img", "y_img", "bethesda_system")
	if err != nil {
		return nil, err
	}
	px := o.Detect.PixelUM
	if px <= 0 {
		px = CRICPixelUM
	}
	det := classify.NewDetector(withPixel(o.Detect, px))
	tol := MatchTolUM / px
	fr := &FieldRecall{Labelled: map[string]int{}, Found: map[string]int{}}
	var abCentre, all, allFound int
	var fieldAb, fieldFound []int // abnormal labelled / found, per field
	fr.Images, err = EachField(ctx, dir, by, names, CRICPixelUM, px, func(f Field) error {
		ns, fold := det.DetectHeldOut(f.Image, classify.ObjectField("cric", f.Name))
		src.add(fold)
		var ab, abFound int
		for _, p := range f.Points {
			k := Covering(p, ns, tol)
			ok := k >= 0
			fr.Labelled[p.Class]++
			all++
			if ok {
				fr.Found[p.Class]++
				allFound++
			}
			if p.Class != classify.NILM.String() {
				ab++
				if ok {
					abFound++
					if math.Hypot(p.X-ns[k].X, p.Y-ns[k].Y) <= tol {
						abCentre++
					}
				}
			}
		}
		fieldAb, fieldFound = append(fieldAb, ab), append(fieldFound, abFound)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if fr.Images == 0 {
		return nil, nil
	}
	ab := sum(fieldAb)
	fr.AbnormalRecall = ratio(sum(fieldFound), ab)
	fr.AbnormalByCentre = ratio(abCentre, ab)
	fr.AbnormalRecallCI = ratioCI(fieldFound, fieldAb)
	fr.Recall = ratio(allFound, all)
	return fr, nil
}

func isbi(ctx context.Context, o Options, src *ObjectSource) (*DetMetrics, error) {
	dir := filepath.Join(o.DataDir, "isbi2014")
	cp := filepath.Join(dir, "nuclei.csv")
	if !exists(cp) {
		return nil, nil
	}
	by, names, err := ReadPoints(cp, "image", "x", "y", "")
	if err != nil {
		return nil, err
	}
	px := o.Detect.PixelUM
	if px <= 0 {
		px = ISBIPixelUM
	}
	det := classify.NewDetector(withPixel(o.Detect, px))
	tol := MatchTolUM / px
	m := &DetMetrics{}
	var tps, gts, dets []int
	m.Images, err = EachField(ctx, dir, by, names, ISBIPixelUM, px, func(f Field) error {
		ns, fold := det.DetectHeldOut(f.Image, classify.ObjectField("isbi2014", f.Name))
		src.add(fold)
		tp, _ := MatchPoints(f.Points, ns, tol)
		tps, gts, dets = append(tps, tp), append(gts, len(f.Points)), append(dets, len(ns))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if m.Images == 0 {
		return nil, nil
	}
	m.TP, m.GT, m.Detections = sum(tps), sum(gts), sum(dets)
	m.Precision = ratio(m.TP, m.Detections)
	m.Recall = ratio(m.TP, m.GT)
	if m.Precision+m.Recall > 0 {
		m.F1 = 2 * m.Precision * m.Recall / (m.Precision + m.Recall)
	}
	m.F1CI = f1CI(tps, gts, dets)
	return m, nil
}
