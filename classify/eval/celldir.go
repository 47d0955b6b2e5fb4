package eval

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// A labelled-cell directory is any set of single-cell crops from a
// laboratory: DIR/cells/labels.csv names each crop, its class in the lab's
// own vocabulary and its group (the source image: the unit to split and
// bootstrap by), and a manifest says how to read it (see Manifest).

// CellGrade is what a cell directory's class means for triage.
type CellGrade string

// The grades a manifest maps its classes to.
const (
	GradeNormal   CellGrade = "normal"
	GradeLow      CellGrade = "low"
	GradeHigh     CellGrade = "high"
	GradeExcluded CellGrade = "excluded"
)

// Manifest describes a labelled-cell directory.
type Manifest struct {
	// Name identifies the set; cells are keyed "<name>/<group>" for the
	// held-out fold look-up of a model trained on part of the set.
	Name string `json:"name"`
	// PixelUM is the crops' pixel size (µm).
	PixelUM float64 `json:"pixel_um"`
	// Columns of cells/labels.csv: file (relative to cells/), class and
	// group. Empty names default to "file", "class" and "group".
	Columns struct {
		File  string `json:"file"`
		Class string `json:"class"`
		Group string `json:"group"`
	} `json:"columns"`
	// Classes maps every class of labels.csv to a grade.
	Classes map[string]CellGrade `json:"classes"`
	// Padding says which pixels are not image: pixels of exactly RGB that
	// are connected to the crop's border (only in rows whose FlagColumn,
	// when set, is "1"). Nil: no padding.
	Padding *Padding `json:"padding,omitempty"`
	// GlassRGB is the lab's clear-glass colour, the fill of padding in the
	// "glass" mode.
	GlassRGB [3]uint8 `json:"glass_rgb"`
}

// Padding identifies padded pixels.
type Padding struct {
	RGB        [3]uint8 `json:"rgb"`
	FlagColumn string   `json:"flag_column,omitempty"`
}

//go:embed manifests/*.json
var builtinManifests embed.FS

// ManifestFile is the name of a manifest inside a cell directory.
const ManifestFile = "manifest.json"

// FindManifest returns the manifest of the cell directory dir:
// dir/manifest.json when present, else the manifest shipped with papscan
// for a directory of that base name (classify/eval/manifests/<base>.json,
// e.g. sipakmed). The string says where it came from. It returns
// fs.ErrNotExist when there is none.
func FindManifest(dir string) (*Manifest, string, error) {
	p := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(p)
	src := p
	if errors.Is(err, fs.ErrNotExist) {
		name := "manifests/" + filepath.Base(filepath.Clean(dir)) + ".json"
		b, err = builtinManifests.ReadFile(name)
		src = "builtin:" + name
	}
	if err != nil {
		return nil, "", err
	}
	m, err := ParseManifest(b)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src, err)
	}
	return m, src, nil
}

// ParseManifest decodes and checks a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Name == "" || strings.ContainsAny(m.Name, "/\\") {
		return nil, fmt.Errorf("manifest: name %q must be set and hold no slash", m.Name)
	}
	if !(m.PixelUM >= 0.05 && m.PixelUM <= 5) {
		return nil, fmt.Errorf("manifest: pixel_um %v must be in [0.05, 5]", m.PixelUM)
	}
	if len(m.Classes) == 0 {
		return nil, errors.New("manifest: classes is empty")
	}
	for c, g := range m.Classes {
		switch g {
		case GradeNormal, GradeLow, GradeHigh, GradeExcluded:
		default:
			return nil, fmt.Errorf("manifest: classes: %q maps to %q, want normal, low, high or excluded", c, g)
		}
	}
	if m.Columns.File == "" {
		m.Columns.File = "file"
	}
	if m.Columns.Class == "" {
		m.Columns.Class = "class"
	}
	if m.Columns.Group == "" {
		m.Columns.Group = "group"
	}
	return &m, nil
}

// LabelledCell is one crop of a cell directory.
type LabelledCell struct {
	File   string // path relative to cells/
	Class  string // the lab's class
	Grade  CellGrade
	Group  string // source image
	Padded bool   // the row is flagged as padded (or the manifest has no flag column)
}

// Key is the cell's field name for held-out look-ups: "<set>/<group>".
func Key(set, group string) string { return set + "/" + group }

// ReadCellDir reads dir/cells/labels.csv with manifest m. Every class must
// be mapped by the manifest.
func ReadCellDir(dir string, m *Manifest) ([]LabelledCell, error) {
	path := filepath.Join(dir, "cells", "labels.csv")
	cols := []string{m.Columns.File, m.Columns.Class, m.Columns.Group}
	if m.Padding != nil && m.Padding.FlagColumn != "" {
		cols = append(cols, m.Padding.FlagColumn)
	}
	t, err := readTable(path, cols...)
	if err != nil {
		return nil, err
	}
	out := make([]LabelledCell, 0, len(t.rows))
	for i, r := range t.rows {
		c := LabelledCell{File: t.get(r, m.Columns.File), Class: t.get(r, m.Columns.Class), Group: t.get(r, m.Columns.Group)}
		g, ok := m.Classes[c.Class]
		if !ok {
			return nil, fmt.Errorf("%s: %s: column %s: class %q is not in the manifest", path, t.line(i), m.Columns.Class, c.Class)
		}
		if c.File == "" || filepath.IsAbs(c.File) || strings.Contains(c.File, "..") {
			return nil, fmt.Errorf("%s: %s: column %s: bad file %q", path, t.line(i), m.Columns.File, c.File)
		}
		c.Grade = g
		if m.Padding != nil {
			c.Padded = true
			if f := m.Padding.FlagColumn; f != "" {
				v, err := strconv.Atoi(t.get(r, f))
				if err != nil || (v != 0 && v != 1) {
					return nil, fmt.Errorf("%s: %s: column %s: %q is not 0 or 1", path, t.line(i), f, t.get(r, f))
				}
				c.Padded = v == 1
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// FillPadding replaces the pixels of colour pad connected (4-neighbours) to
// img's border by fill, in place, and returns how many it replaced. Pixels
// of that colour enclosed by image content are left alone.
func FillPadding(img *image.RGBA, pad, fill [3]uint8) int {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if w == 0 || h == 0 {
		return 0
	}
	is := func(x, y int) bool {
		o := img.PixOffset(b.Min.X+x, b.Min.Y+y)
		p := img.Pix[o : o+3]
		return p[0] == pad[0] && p[1] == pad[1] && p[2] == pad[2]
	}
	seen := make([]bool, w*h)
	var st []int
	push := func(x, y int) {
		if x < 0 || y < 0 || x >= w || y >= h || seen[y*w+x] || !is(x, y) {
			return
		}
		seen[y*w+x] = true
		st = append(st, y*w+x)
	}
	for x := range w {
		push(x, 0)
		push(x, h-1)
	}
	for y := range h {
		push(0, y)
		push(w-1, y)
	}
	n := 0
	for len(st) > 0 {
		i := st[len(st)-1]
		st = st[:len(st)-1]
		x, y := i%w, i/w
		o := img.PixOffset(b.Min.X+x, b.Min.Y+y)
		img.Pix[o], img.Pix[o+1], img.Pix[o+2] = fill[0], fill[1], fill[2]
		n++
		push(x-1, y)
		push(x+1, y)
		push(x, y-1)
		push(x, y+1)
	}
	return n
}

// PaddingModes are the ways a cell directory's padding is shown to the
// model: "stored" (as in the files) and "glass" (padding replaced by the
// lab's glass colour).
var PaddingModes = []string{"stored", "glass"}

// LoadCellImage loads the crop of c in dir under the padding mode.
func LoadCellImage(dir string, m *Manifest, c LabelledCell, mode string) (*image.RGBA, error) {
	img, err := dataset.LoadRGBA(filepath.Join(dir, "cells", c.File))
	if err != nil {
		return nil, err
	}
	if mode == "glass" && m.Padding != nil && c.Padded {
		FillPadding(img, m.Padding.RGB, m.GlassRGB)
	}
	return img, nil
}

// CellSetMetrics are the scores of a model on a labelled-cell directory
// under one padding mode. Abnormal is low or high grade; the abnormal score
// is 1 − P(NILM), the high-grade score P(ASC-H)+P(HSIL)+P(SCC).
type CellSetMetrics struct {
	// AUCAbnormal: abnormal vs normal on 1 − P(NILM).
	AUCAbnormal   float64   `json:"auc_abnormal_vs_normal"`
	AUCAbnormalCI *Interval `json:"auc_abnormal_vs_normal_ci95"`
	// AUCHigh: high vs normal on P(high grade) (0 without high-grade cells).
	AUCHigh   float64   `json:"auc_high_vs_normal"`
	AUCHighCI *Interval `json:"auc_high_vs_normal_ci95"`
	// AUCLow: low vs normal on 1 − P(NILM).
	AUCLow   float64   `json:"auc_low_vs_normal"`
	AUCLowCI *Interval `json:"auc_low_vs_normal_ci95"`
	// At the high-grade threshold: flagged fraction of high-grade,
	// abnormal and normal cells (the last is the FPR).
	Threshold          float64   `json:"threshold"`
	HighRecall         float64   `json:"high_recall"`
	HighRecallCI       *Interval `json:"high_recall_ci95"`
	AbnormalRecall     float64   `json:"abnormal_recall"`
	AbnormalRecallCI   *Interval `json:"abnormal_recall_ci95"`
	NormalFPR          float64   `json:"normal_fpr"`
	NormalFPRCI        *Interval `json:"normal_fpr_ci95"`
	AbnormalRecallAt05 float64   `json:"abnormal_recall_at_fpr_0.05"`
}

// CellSetResult is the evaluation of one labelled-cell directory.
type CellSetResult struct {
	Name     string            `json:"name"`
	Dir      string            `json:"dir"`
	Manifest string            `json:"manifest"`
	PixelUM  float64           `json:"pixel_um"`
	Cells    int               `json:"cells"`
	Groups   int               `json:"groups"`
	ByGrade  map[CellGrade]int `json:"by_grade"`
	ByClass  map[string]int    `json:"by_class"`
	Skipped  int               `json:"skipped"`
	// HeldOutFold counts cells of groups the model was trained on, scored by
	// the fold that held the group out; FinalModel cells of groups it never
	// saw.
	HeldOutFold int `json:"held_out_fold"`
	FinalModel  int `json:"final_model"`
	// Padding holds the metrics per padding mode ("stored", "glass").
	Padding map[string]*CellSetMetrics `json:"padding"`
}

// FindCellDirs returns the labelled-cell directories of data: data itself
// when it holds cells/labels.csv and a manifest, else its subdirectories
// that do (the CRIC crops, read by the CRIC evaluation, are not one).
func FindCellDirs(data string) []string {
	isSet := func(d string) bool {
		if !exists(filepath.Join(d, "cells", "labels.csv")) {
			return false
		}
		_, _, err := FindManifest(d)
		return err == nil
	}
	if isSet(data) {
		return []string{data}
	}
	ents, err := os.ReadDir(data)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		d := filepath.Join(data, e.Name())
		if st, err := os.Stat(d); err == nil && st.IsDir() && e.Name() != "cric" && isSet(d) { // Stat: follows symlinks
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// CellSet scores every cell of the directory dir with o.Model (a cell of a
// group the model was trained on by the fold that held the group out) under
// each padding mode.
func CellSet(ctx context.Context, o Options, dir string) (*CellSetResult, error) {
	var in classify.Input
	return CellSetWith(ctx, dir, o.Detect, o.Threshold, func(img *image.RGBA, n classify.Nucleus, set, _, group string, glass [3]float64, hasGlass bool) ([classify.NumClasses]float32, int, bool) {
		img = o.Model.ForModel(img, glass, hasGlass, nil)
		if !o.Model.Measure(img, n, &in) {
			return [classify.NumClasses]float32{}, -1, false
		}
		p, fold := o.Model.PredictHeldOutInput(Key(set, group), &in)
		return p, fold, true
	})
}

// CellPredictor scores the cell at n (the detected nucleus nearest the
// crop's centre) of a crop of the set's group; fold is that of the model
// that scored it (-1: a model trained on no cell of the group); ok false:
// no nucleus (scored NILM).
//
// glass is the lab's clear-glass colour (Manifest.Glass; hasGlass false when
// the manifest gives none): a white-balancing model reads img divided by it
// (classify.Model.ForModel).
type CellPredictor func(img *image.RGBA, n classify.Nucleus, set, file, group string, glass [3]float64, hasGlass bool) (p [classify.NumClasses]float32, fold int, ok bool)

// CellSetWith is CellSet with any predictor (training scores its
// out-of-fold predictions with it); det gives the detector settings, the
// pixel size being the manifest's.
func CellSetWith(ctx context.Context, dir string, det classify.DetectOptions, th float64, predict CellPredictor) (*CellSetResult, error) {
	m, src, err := FindManifest(dir)
	if err != nil {
		return nil, err
	}
	cells, err := ReadCellDir(dir, m)
	if err != nil {
		return nil, err
	}
	r := &CellSetResult{Name: m.Name, Dir: dir, Manifest: src, PixelUM: m.PixelUM, ByGrade: map[CellGrade]int{}, ByClass: map[string]int{}, Padding: map[string]*CellSetMetrics{}}
	do := withPixel(det, m.PixelUM)
	do.NoObjectFilter = true
	d := classify.NewDetector(do)
	glass, hasGlass := m.Glass()
	groups := map[string]int{}
	for _, mode := range PaddingModes {
		var grades []CellGrade
		var gidx []int
		var probs [][classify.NumClasses]float32
		first := mode == PaddingModes[0]
		for _, c := range cells {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if c.Grade == GradeExcluded {
				if first {
					r.ByClass[c.Class]++
					r.ByGrade[c.Grade]++
				}
				continue
			}
			img, err := LoadCellImage(dir, m, c, mode)
			if err != nil {
				return nil, err
			}
			n, _ := CentreNucleus(d, img)
			n.PixelUM = m.PixelUM
			p, fold, ok := predict(img, n, m.Name, c.File, c.Group, glass, hasGlass)
			if !ok {
				p = [classify.NumClasses]float32{}
				p[classify.NILM] = 1
			}
			if first {
				switch {
				case !ok:
					r.Skipped++
				case fold >= 0:
					r.HeldOutFold++
				default:
					r.FinalModel++
				}
				r.ByClass[c.Class]++
				r.ByGrade[c.Grade]++
				r.Cells++
			}
			g, ok := groups[c.Group]
			if !ok {
				g = len(groups)
				groups[c.Group] = g
			}
			grades, gidx, probs = append(grades, c.Grade), append(gidx, g), append(probs, p)
		}
		r.Padding[mode] = cellSetMetrics(grades, gidx, len(groups), probs, th)
	}
	r.Groups = len(groups)
	return r, nil
}

// scored is one cell's grade, group and scores.
type scored struct {
	grade     CellGrade
	group     int
	ab, high  float64
	flaggedHi bool
}

func cellSetMetrics(grades []CellGrade, gidx []int, ngroups int, probs [][classify.NumClasses]float32, th float64) *CellSetMetrics {
	cs := make([]scored, len(grades))
	byGroup := make([][]int, ngroups)
	for i, p := range probs {
		hi := float64(classify.HighGradeProb(p))
		cs[i] = scored{grades[i], gidx[i], 1 - float64(p[classify.NILM]), hi, hi >= th}
		byGroup[gidx[i]] = append(byGroup[gidx[i]], i)
	}
	auc := func(idx []int, pos func(CellGrade) bool, score func(scored) float64) float64 {
		var ps, ns []float64
		for _, i := range idx {
			c := cs[i]
			switch {
			case pos(c.grade):
				ps = append(ps, score(c))
			case c.grade == GradeNormal:
				ns = append(ns, score(c))
			}
		}
		return AUC(ps, ns)
	}
	frac := func(idx []int, sel func(CellGrade) bool, flag func(scored) bool) float64 {
		var a, b int
		for _, i := range idx {
			if sel(cs[i].grade) {
				b++
				if flag(cs[i]) {
					a++
				}
			}
		}
		return ratio(a, b)
	}
	all := make([]int, len(cs))
	for i := range all {
		all[i] = i
	}
	resample := func(stat func(idx []int) float64) *Interval {
		return bootstrap(ngroups, func(g []int) float64 {
			var idx []int
			for _, k := range g {
				idx = append(idx, byGroup[k]...)
			}
			return stat(idx)
		})
	}
	isAb := func(g CellGrade) bool { return g == GradeLow || g == GradeHigh }
	isHi := func(g CellGrade) bool { return g == GradeHigh }
	isLo := func(g CellGrade) bool { return g == GradeLow }
	isNo := func(g CellGrade) bool { return g == GradeNormal }
	ab := func(c scored) float64 { return c.ab }
	hi := func(c scored) float64 { return c.high }
	fl := func(c scored) bool { return c.flaggedHi }
	m := &CellSetMetrics{Threshold: th}
	m.AUCAbnormal = auc(all, isAb, ab)
	m.AUCAbnormalCI = resample(func(idx []int) float64 { return auc(idx, isAb, ab) })
	m.AUCHigh = auc(all, isHi, hi)
	m.AUCHighCI = resample(func(idx []int) float64 { return auc(idx, isHi, hi) })
	m.AUCLow = auc(all, isLo, ab)
	m.AUCLowCI = resample(func(idx []int) float64 { return auc(idx, isLo, ab) })
	m.HighRecall = frac(all, isHi, fl)
	m.HighRecallCI = resample(func(idx []int) float64 { return frac(idx, isHi, fl) })
	m.AbnormalRecall = frac(all, isAb, fl)
	m.AbnormalRecallCI = resample(func(idx []int) float64 { return frac(idx, isAb, fl) })
	m.NormalFPR = frac(all, isNo, fl)
	m.NormalFPRCI = resample(func(idx []int) float64 { return frac(idx, isNo, fl) })
	var neg []float64
	for _, c := range cs {
		if c.grade == GradeNormal {
			neg = append(neg, c.ab)
		}
	}
	t05 := ThresholdAtFPR(neg, 0.05)
	m.AbnormalRecallAt05 = frac(all, isAb, func(c scored) bool { return c.ab >= t05 })
	if math.IsNaN(m.AbnormalRecallAt05) {
		m.AbnormalRecallAt05 = 0
	}
	return m
}
