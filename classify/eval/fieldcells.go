package eval

import (
	"context"
	"image"
	"math"
	"path/filepath"
	"runtime"
	"slices"
	"sync"

	"papscan/classify"
)

// Flips are the orientations a field is analysed in, the eight symmetries
// of the square the simulator's slides place fields in
// (virtualslide.Flip): orientation o mirrors left-right when o&1, top-bottom
// when o&2, then transposes when o&4. The cell model is not invariant to
// them: a slide composed from one orientation's analysis must use the
// orientation the simulator placed.
const Flips = 8

// SlideCell is one detected and classified object of a field in one
// orientation: what a slide built from that field shows of it.
type SlideCell struct {
	// Probs are the class probabilities; High is P(ASC-H+HSIL+SCC),
	// Abnormal P(not NILM), Score the gallery's suspicion
	// (classify.SuspicionScore), Class the most probable class.
	Probs                 [classify.NumClasses]float32
	High, Abnormal, Score float32
	Class                 classify.Class
	// X, Y is the nucleus position in the field as stored (px at the
	// detection pixel size), whatever the orientation.
	X, Y float32
	// Object numbers the physical object within its field: the same object
	// seen in two orientations has the same number (gallery
	// de-duplication).
	Object int32
	// Label is the class of the labelled point the detection covers (the
	// worst one when it covers several), -1 when it covers none.
	Label int8
}

// SlideField is one CRIC field analysed once in each orientation.
type SlideField struct {
	// Set is the data set folder ("fields" or "more-fields"), Name the
	// image file.
	Set, Name string
	// Worst is the worst labelled class of the field (NILM: a NILM-only
	// field).
	Worst classify.Class
	// Abnormal counts the labelled abnormal points, AbnormalFound those a
	// detection covers (in the stored orientation).
	Abnormal, AbnormalFound int
	// ModelFold is the cell-model fold that scored the field (-1: the
	// final model, which never saw it); ObjectFold likewise for the
	// detector's object filter.
	ModelFold, ObjectFold int
	Cells                 [Flips][]SlideCell
	// PixelUM is the pixel size of X, Y (the detection pixel size), and
	// AbnormalPoints the labelled abnormal points of the field as stored
	// (px at PixelUM), found by a detection or not.
	PixelUM        float64
	AbnormalPoints [][2]float32
}

// cricSets are the CRIC field folders used for slides and their native
// pixel sizes.
var cricSets = []struct {
	dir string
	px  float64
}{{"fields", CRICPixelUM}, {"more-fields", 2 * CRICPixelUM}}

// Counts returns the cells of orientation o and how many of them reach
// P(high grade) >= high and P(not NILM) >= abnormal: what a slide rule sees
// of the field (classify.SlideRule.Verdict takes sums of them).
func (f *SlideField) Counts(o int, high, abnormal float64) (cells, nHigh, nAbnormal int) {
	for _, c := range f.Cells[o] {
		if float64(c.High) >= high {
			nHigh++
		}
		if float64(c.Abnormal) >= abnormal {
			nAbnormal++
		}
	}
	return len(f.Cells[o]), nHigh, nAbnormal
}

// AnalyseFields detects and classifies every labelled CRIC field of
// opts.DataDir (cric/fields and cric/more-fields, resampled to
// opts.Detect.PixelUM) in each of its Flips orientations, each with a cell
// model and an object filter that never saw the field (the cross-validation
// fold that held it out, else the final model). Missing folders are
// skipped. Fields come back in a fixed order (folder, then name).
func AnalyseFields(ctx context.Context, opts Options) ([]SlideField, error) {
	type job struct {
		set, dir string
		native   float64
		name     string
		pts      []Point
	}
	var jobs []job
	for _, s := range cricSets {
		dir := filepath.Join(opts.DataDir, "cric", s.dir)
		cp := filepath.Join(dir, "nuclei.csv")
		if !exists(cp) {
			continue
		}
		by, names, err := ReadPoints(cp, "image_filename", "x_img", "y_img", "bethesda_system")
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if opts.FieldNames == nil || slices.Contains(opts.FieldNames, n) {
				jobs = append(jobs, job{s.dir, dir, s.px, n, by[n]})
			}
		}
	}
	out := make([]SlideField, len(jobs))
	ok := make([]bool, len(jobs))
	px := opts.Detect.PixelUM
	if px <= 0 {
		px = CRICPixelUM
	}
	workers := min(runtime.GOMAXPROCS(0), max(len(jobs), 1))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			det := classify.NewDetector(withPixel(opts.Detect, px))
			for i := range next {
				j := jobs[i]
				n, err := EachField(ctx, j.dir, map[string][]Point{j.name: j.pts}, []string{j.name}, j.native, px, func(f Field) error {
					out[i] = analyseField(det, opts.Model, j.set, f, MatchTolUM/px, opts.FinalModel)
					out[i].PixelUM = px
					return nil
				})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					continue
				}
				ok[i] = n == 1
			}
		}()
	}
	for i := range jobs {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	fs := out[:0]
	for i := range out {
		if ok[i] {
			fs = append(fs, out[i])
		}
	}
	return fs, nil
}

// analyseField runs det and m on f in each orientation; tol is the point
// matching distance in px.
func analyseField(det *classify.Detector, m *classify.Model, set string, f Field, tol float64, final bool) SlideField {
	sf := SlideField{Set: set, Name: f.Name, ModelFold: -1, ObjectFold: -1}
	labels := make([]classify.Class, len(f.Points))
	for i, p := range f.Points {
		c, _ := classify.ParseClass(p.Class)
		labels[i] = c
		sf.Worst = max(sf.Worst, c)
		if c != classify.NILM {
			sf.Abnormal++
			sf.AbnormalPoints = append(sf.AbnormalPoints, [2]float32{float32(p.X), float32(p.Y)})
		}
	}
	b := f.Image.Bounds()
	w, h := float64(b.Dx()-1), float64(b.Dy()-1)
	var in classify.Input
	var objects []SlideCell // first sighting of each object, stored orientation
	// A white-balancing model reads the field divided by its glass (the
	// same in every orientation); detection sees the field as it is, as on
	// the robot (classify.Analyzer).
	glass, hasGlass := [3]float64{}, false
	if m.WhiteBalances() {
		glass, hasGlass = classify.EstimateGlass(f.Image)
	}
	var balanced *image.RGBA
	for o := range Flips {
		fx, fy, tr := o&1 != 0, o&2 != 0, o&4 != 0
		img := flip(f.Image, fx, fy, tr)
		// orient maps a stored-orientation coordinate to this
		// orientation, stored maps it back.
		orient := func(x, y float64) (float64, float64) {
			if fx {
				x = w - x
			}
			if fy {
				y = h - y
			}
			if tr {
				x, y = y, x
			}
			return x, y
		}
		stored := func(x, y float64) (float64, float64) {
			if tr {
				x, y = y, x
			}
			if fx {
				x = w - x
			}
			if fy {
				y = h - y
			}
			return x, y
		}
		var ns []classify.Nucleus
		if final {
			ns = det.Detect(img)
		} else {
			ns, sf.ObjectFold = det.DetectHeldOut(img, classify.ObjectField("cric", f.Name))
		}
		cells := make([]SlideCell, 0, len(ns))
		mimg := m.ForModel(img, glass, hasGlass, &balanced)
		for _, n := range ns {
			var p [classify.NumClasses]float32
			switch {
			case !m.Measure(mimg, n, &in):
				p[classify.NILM] = 1
			case final:
				p = m.PredictInput(&in)
			default:
				p, sf.ModelFold = m.PredictHeldOutInput(f.Name, &in)
			}
			x, y := stored(n.X, n.Y)
			c := SlideCell{Probs: p, High: classify.HighGradeProb(p), Abnormal: classify.AbnormalProb(p), Score: classify.SuspicionScore(p),
				Class: argmax(p), X: float32(x), Y: float32(y), Label: -1}
			cells = append(cells, c)
		}
		for i, pt := range f.Points {
			x, y := orient(pt.X, pt.Y)
			k := Covering(Point{X: x, Y: y}, ns, tol)
			if k < 0 {
				continue
			}
			if int8(labels[i]) > cells[k].Label {
				cells[k].Label = int8(labels[i])
			}
			if o == 0 && labels[i] != classify.NILM {
				sf.AbnormalFound++
			}
		}
		// One physical object across orientations: the nearest earlier
		// sighting within tol, else a new object.
		for i := range cells {
			c := &cells[i]
			best, bi := tol, -1
			for k, q := range objects {
				if d := math.Hypot(float64(c.X-q.X), float64(c.Y-q.Y)); d <= best {
					best, bi = d, k
				}
			}
			if bi < 0 {
				bi = len(objects)
				objects = append(objects, *c)
			}
			c.Object = int32(bi)
		}
		sf.Cells[o] = cells
	}
	return sf
}

// NegativeClearUM is how far a NILM-labelled nucleus of a field with
// abnormal labels must lie from every labelled abnormal point to serve as
// negative material on a composed slide (see NegativePart).
const NegativeClearUM = 30.0

// NegativePart returns the cells of orientation o that a negative slide may
// carry: every cell of a NILM-only field; of a field with abnormal labels,
// only the cells covering a NILM-labelled point (a cytopathologist called
// that nucleus normal) at least NegativeClearUM from every labelled
// abnormal point. Unlabelled cells of such fields are left out: CRIC's
// labels are not exhaustive, and the unlabelled cells of high-grade fields
// score as high grade many times as often as those of NILM-only fields.
func (f *SlideField) NegativePart(o int) []SlideCell {
	if f.Worst == classify.NILM {
		return f.Cells[o]
	}
	px := f.PixelUM
	if px <= 0 {
		px = CRICPixelUM
	}
	r := NegativeClearUM / px
	var out []SlideCell
	for _, c := range f.Cells[o] {
		if c.Label != int8(classify.NILM) {
			continue
		}
		far := true
		for _, p := range f.AbnormalPoints {
			if dx, dy := float64(c.X-p[0]), float64(c.Y-p[1]); dx*dx+dy*dy < r*r {
				far = false
				break
			}
		}
		if far {
			out = append(out, c)
		}
	}
	return out
}

func argmax(p [classify.NumClasses]float32) classify.Class {
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return classify.Class(best)
}

// flip returns img mirrored left-right (fx) and/or top-bottom (fy), then
// transposed (tr); img itself when none.
func flip(img *image.RGBA, fx, fy, tr bool) *image.RGBA {
	if !fx && !fy && !tr {
		return img
	}
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if tr {
		// Pixel (i, j) of the result shows pixel (j, i) of the mirrored
		// image (virtualslide.Flip.Pixel).
		m := flip(img, fx, fy, false)
		mb := m.Bounds()
		out := image.NewRGBA(image.Rect(0, 0, h, w))
		for j := range w {
			dst := out.Pix[out.PixOffset(0, j):]
			for i := range h {
				copy(dst[4*i:4*i+4], m.Pix[m.PixOffset(mb.Min.X+j, mb.Min.Y+i):])
			}
		}
		return out
	}
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		sy := y
		if fy {
			sy = h - 1 - y
		}
		src := img.Pix[img.PixOffset(b.Min.X, b.Min.Y+sy):]
		dst := out.Pix[out.PixOffset(0, y):]
		if !fx {
			copy(dst[:4*w], src[:4*w])
			continue
		}
		for x := range w {
			copy(dst[4*x:4*x+4], src[4*(w-1-x):4*(w-1-x)+4])
		}
	}
	return out
}
