package scan_test

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"papscan/classify"
	"papscan/classify/eval"
	config "papscan/firmware-config"
	"papscan/hal/sim/slide"
)

// analyseSlide renders in-focus tiles over the whole cell spot of s at the
// robot camera's pixel size, runs the per-worker Analyzer on each and
// returns the slide result (thresholds from the sim profile, adequacy
// minimum minCells).
func analyseSlide(t *testing.T, s *slide.Slide, minCells int) classify.SlideResult {
	t.Helper()
	cfg, err := config.Profile("sim")
	if err != nil {
		t.Fatal(err)
	}
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Classify
	px := cfg.Machine.Camera.PixelSize.UM()
	th := classify.Thresholds{HighGrade: c.HighGradeThreshold, LowGrade: c.LowGradeThreshold,
		MinSquamousCells: minCells, GallerySize: c.GallerySize}
	sum := classify.NewSlideSummary(th, m)
	a := classify.NewAnalyzer(classify.DetectOptions{PixelUM: px, MinAreaUM2: c.MinNucleusArea, MaxAreaUM2: c.MaxNucleusArea}, m)
	a.SkipEdge = true
	const tw, thh = 800, 600
	img := image.NewRGBA(image.Rect(0, 0, tw, thh))
	r := slide.NewRenderer(slide.RenderOptions{PixelUM: px})
	rng := rand.New(rand.NewPCG(1, 2))
	cx, cy, rad := s.Spot()
	stepX, stepY := tw*px, thh*px
	tile := 0
	var tails, ltails [len(tailLevels)]int
	for y := cy - rad + stepY/2; y < cy+rad; y += stepY {
		for x := cx - rad + stepX/2; x < cx+rad; x += stepX {
			if math.Hypot(x-cx, y-cy) > rad+stepX/2 {
				continue
			}
			r.Render(s, img, x, y, 0, rng)
			cells := a.Analyze(img)
			for i := range cells {
				ph := classify.HighGradeProb(cells[i].Probs)
				pl := classify.LowGradeProb(cells[i].Probs)
				for k, lv := range tailLevels {
					if ph >= lv {
						tails[k]++
					}
					if pl >= lv {
						ltails[k]++
					}
				}
				cells[i].Tile = tile
				cells[i].StageX = x + (cells[i].X+0.5-tw/2)*px
				cells[i].StageY = y + (cells[i].Y+0.5-thh/2)*px
			}
			sum.Add(cells)
			tile++
		}
	}
	res := sum.Result(true)
	t.Logf("%s: P(high) tail counts at %v: %v; P(low) %v", s.Spec.ID, tailLevels, tails, ltails)
	t.Logf("%s: %d tiles, %d cells, %d high, %d low, counts %v -> %s", s.Spec.ID, tile, res.Cells, res.HighGradeCells, res.LowGradeCells, res.Counts, res.Verdict)
	return res
}

// HighGradeOf returns the cell's P(ASC-H+HSIL+SCC).
func HighGradeOf(c classify.Cell) float32 { return classify.HighGradeProb(c.Probs) }

var tailLevels = [...]float32{0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995}

// TestSlideVerdictSynthetic: a simulated negative slide at the robot's
// pixel size ends NILM (no flood of false positives), and UNSATISFACTORY
// below the adequacy minimum.
func TestSlideVerdictSynthetic(t *testing.T) {
	if testing.Short() {
		t.Skip("renders whole slides")
	}
	s := slide.Synthetic(slide.Spec{ID: "SYN-NILM", Seed: 7, Diagnosis: slide.Negative, SpotDiameterUM: 3000})
	if r := analyseSlide(t, s, 100); r.Verdict != classify.VerdictNILM {
		t.Errorf("synthetic negative slide: %s (%s)", r.Verdict, r.Reason)
	}
	// Adequacy: the same slide holds fewer than the Bethesda 5000 cells.
	if r := analyseSlide(t, s, 5000); r.Verdict != classify.VerdictUnsatisfactory {
		t.Errorf("synthetic slide with %d cells, minimum 5000: %s", r.Cells, r.Verdict)
	}
	// The synthetic generator's abnormal cells do not look like CRIC's
	// (the model's training data): logged, not asserted.
	analyseSlide(t, slide.Synthetic(slide.Spec{ID: "SYN-HG", Seed: 7, Diagnosis: slide.HighGrade, SpotDiameterUM: 3000, Abnormal: 25}), 100)
}

// TestSlideVerdictCRIC: slides tiled with real CRIC fields (rendered at the
// robot's 0.5 µm/px) end NILM when every field is negative and HIGH_GRADE
// when abnormal fields are placed, with a gallery of crops at stage
// positions. The negative fields are also the source of the model's field
// negatives, so this checks the slide rule, not generalisation.
func TestSlideVerdictCRIC(t *testing.T) {
	if testing.Short() {
		t.Skip("renders whole slides")
	}
	dir := sharedData()
	if dir == "" {
		t.Skip("shared data not found")
	}
	for _, tc := range []struct {
		d    slide.Diagnosis
		want classify.Verdict
	}{
		{slide.Negative, classify.VerdictNILM},
		{slide.HighGrade, classify.VerdictHighGrade},
		{slide.LowGrade, ""}, // logged, not asserted: see classify/doc.go
	} {
		s, err := slide.FromCRIC(dir, slide.Spec{ID: "CRIC-" + tc.d.String(), Seed: 7, Diagnosis: tc.d, SpotDiameterUM: 3000})
		if err != nil {
			t.Fatal(err)
		}
		r := analyseSlide(t, s, 100)
		if tc.want != "" && r.Verdict != tc.want {
			t.Errorf("CRIC %s slide: %s, want %s (%s)", tc.d, r.Verdict, tc.want, r.Reason)
		}
		// papscan eval's slide section must judge the same composition
		// as the simulator does. The high-grade level agrees (within the
		// fields' orientations and partial tiles); the abnormal level does
		// not yet: the renderer point-samples the 0.25 µm/px fields and
		// adds sensor noise, eval (like a camera) averages them, and the
		// cells at P(not NILM) >= 0.99 are 2–3 rendered against ~50
		// composed on these slides. Logged until the simulator's new
		// slide recipe and renderer land (issue 13).
		if ev := evalVerdict(t, dir, s); (ev == classify.VerdictHighGrade) != (r.Verdict == classify.VerdictHighGrade) {
			t.Errorf("CRIC %s slide: rendered and analysed %s (%s), composed from the fields' eval results %s", tc.d, r.Verdict, r.Reason, ev)
		} else if ev != r.Verdict {
			t.Logf("CRIC %s slide: rendered and analysed %s, composed from the fields' eval results %s (abnormal level, see above)", tc.d, r.Verdict, ev)
		}
		if tc.want == classify.VerdictHighGrade {
			top := r.Top[0]
			if top.Crop == nil || top.StageX == 0 || top.StageY == 0 || HighGradeOf(top) < 0.95 {
				t.Errorf("gallery head without crop or stage position: %+v", top.Nucleus)
			}
		}
	}
}

// evalVerdict is the verdict papscan eval's slide section gives the
// composition of s: the per-cell results of each CRIC field placed on s
// (analysed once, as eval does, at the robot's pixel size), weighted by
// how much of the field the slide holds (its labelled points on the slide
// over its labelled points), summed and judged by the embedded slide rule.
// The orientations of a field are averaged.
func evalVerdict(t *testing.T, dir string, s *slide.Slide) classify.Verdict {
	t.Helper()
	by, _, err := eval.ReadPoints(filepath.Join(dir, "cric", "fields", "nuclei.csv"), "image_filename", "x_img", "y_img", "")
	if err != nil {
		t.Fatal(err)
	}
	on := map[string]float64{}
	for _, c := range s.Cells {
		on[c.Field]++
	}
	var names []string
	for f := range on {
		names = append(names, f)
	}
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	rule, err := classify.DefaultSlideRule()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Profile("sim")
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Classify
	fields, err := eval.AnalyseFields(context.Background(), eval.Options{DataDir: dir, Model: m, FieldNames: names,
		Detect: classify.DetectOptions{PixelUM: cfg.Machine.Camera.PixelSize.UM(), MinAreaUM2: c.MinNucleusArea, MaxAreaUM2: c.MaxNucleusArea}})
	if err != nil {
		t.Fatal(err)
	}
	var cells, high, abn float64
	for i := range fields {
		f := &fields[i]
		if f.Set != "fields" {
			continue
		}
		w := on[f.Name] / float64(len(by[f.Name]))
		for o := range eval.Flips {
			n, h, a := f.Counts(o, rule.High.Prob, rule.Abnormal.Prob)
			cells += w * float64(n) / eval.Flips
			high += w * float64(h) / eval.Flips
			abn += w * float64(a) / eval.Flips
		}
	}
	v := rule.Verdict(int(math.Round(high)), int(math.Round(abn)), int(math.Round(cells)))
	t.Logf("%s composed from %d fields' eval results: %.0f cells, %.0f at P(high)>=%.2f (excess %.1f, need %.1f), %.0f at P(not NILM)>=%.2f (excess %.1f, need %.1f) -> %s",
		s.Spec.ID, len(fields), cells, high, rule.High.Prob, rule.High.Excess(int(math.Round(high)), int(math.Round(cells))), rule.High.Z,
		abn, rule.Abnormal.Prob, rule.Abnormal.Excess(int(math.Round(abn)), int(math.Round(cells))), rule.Abnormal.Z, v)
	return v
}

// sharedData returns $PAPSCAN_DATA or the first shared/data directory beside
// the working directory or one of its parents ("" if none).
func sharedData() string {
	if d := os.Getenv("PAPSCAN_DATA"); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if st, err := os.Stat(filepath.Join(dir, "shared", "data")); err == nil && st.IsDir() {
			return filepath.Join(dir, "shared", "data")
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}
