package scan_test

import (
	"context"
	"image"
	"math"
	"testing"

	"papscan/classify"
	"papscan/classify/eval"
	config "papscan/firmware-config"
	"papscan/hal/sim/slide"
	"papscan/virtualslide"
)

// TestSimSlidesMatchEval is the check of issue 13 that the fast slide-level
// evaluation (fields analysed once per orientation, slides composed from
// per-cell results) and the simulator (the slide rendered tile by tile at
// the robot's pixel size, with blur and noise, analysed by the scanner's
// Analyzer) give the same verdicts. A few small CRIC slides (3 mm spots) of
// each grade are rendered and analysed; the same slides are composed from
// classify/eval's per-cell results of their fields (AnalyseFields with the
// final model, as the robot scores them): every placed piece contributes the
// cells of its field's analysis, in the orientation of its flip (eval
// analyses all eight flips), that lie on the piece. Both are judged by the shipped slide rule
// on their counts at its levels (the adequacy minimum is not applied: the
// spots are small).
func TestSimSlidesMatchEval(t *testing.T) {
	if testing.Short() {
		t.Skip("renders whole slides")
	}
	dir := sharedData()
	if dir == "" {
		t.Skip("shared data not found")
	}
	lib, err := slide.NewLibrary(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Profile("sim")
	if err != nil {
		t.Fatal(err)
	}
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	rule, err := classify.DefaultSlideRule()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Classify
	px := cfg.Machine.Camera.PixelSize.UM()
	if px != virtualslide.CutoutPixelUM {
		t.Fatalf("the sim profile's pixel %g µm is not the cut-outs' %g µm: the comparison maps cells pixel to pixel", px, virtualslide.CutoutPixelUM)
	}
	detect := classify.DetectOptions{PixelUM: px, MinAreaUM2: c.MinNucleusArea, MaxAreaUM2: c.MaxNucleusArea}
	type slideCase struct {
		d    slide.Diagnosis
		seed int64
	}
	var cases []slideCase
	for _, seed := range []int64{5, 6} {
		for _, d := range []slide.Diagnosis{slide.Negative, slide.LowGrade, slide.HighGrade} {
			cases = append(cases, slideCase{d, seed})
		}
	}
	slides := make([]*slide.Slide, len(cases))
	names := map[string]bool{}
	cat := lib.Catalog()
	for i, k := range cases {
		s, err := lib.Slide(slide.Spec{ID: "EVS", Seed: k.seed, Diagnosis: k.d, SpotDiameterUM: 3000})
		if err != nil {
			t.Fatal(err)
		}
		slides[i] = s
		for _, p := range s.Placements() {
			names[cat[p.Field].Name] = true
		}
	}
	var fieldNames []string
	for n := range names {
		fieldNames = append(fieldNames, n)
	}
	fields, err := eval.AnalyseFields(context.Background(), eval.Options{DataDir: dir, Model: m, Detect: detect, FieldNames: fieldNames, FinalModel: true})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*eval.SlideField{}
	for i := range fields {
		byName[fields[i].Name] = &fields[i]
	}
	agree := 0
	for i, s := range slides {
		// The simulator: tiles rendered and analysed as the scanner does.
		th := classify.DefaultThresholds()
		th.MinSquamousCells = 0
		sum := classify.NewSlideSummary(th, m)
		a := classify.NewAnalyzer(detect, m)
		var rendered []classify.Cell
		renderSpot(s, px, a, func(cells []classify.Cell) {
			sum.Add(cells)
			for _, c := range cells {
				c.Crop = nil
				rendered = append(rendered, c)
			}
		})
		sim := sum.Result(true)
		// The evaluation's composition of the same pieces, each cell at its
		// slide position.
		var cells, high, abn int
		type placed struct {
			x, y float64
			abn  float32
		}
		var composed []placed
		for _, p := range s.Placements() {
			f := byName[cat[p.Field].Name]
			if f == nil {
				t.Fatalf("field %s not analysed", cat[p.Field].Name)
			}
			cut, err := lib.Cutout(p.Field)
			if err != nil {
				t.Fatal(err)
			}
			for _, sc := range f.Cells[int(p.Flip)] {
				x, y := int(sc.X), int(sc.Y)
				if !image.Pt(x, y).In(p.Src) || x >= cut.W || y >= cut.H || cut.Factor[(y*cut.W+x)*4+3] == 0 {
					continue
				}
				cells++
				fx, fy := p.Flip.Point(float64(sc.X-float32(p.Src.Min.X))+0.5, float64(sc.Y-float32(p.Src.Min.Y))+0.5, p.Src.Dx(), p.Src.Dy())
				composed = append(composed, placed{p.X0 + fx*virtualslide.CutoutPixelUM, p.Y0 + fy*virtualslide.CutoutPixelUM, sc.Abnormal})
				if float64(sc.High) >= rule.High.Prob {
					high++
				}
				if float64(sc.Abnormal) >= rule.Abnormal.Prob {
					abn++
				}
			}
		}
		// The same nucleus in both: its scores agree up to what rendering
		// changes (noise, flat glass). A cell analysed in another
		// orientation than the one placed (the model is not invariant to
		// transposition) differed by up to 0.35 in P(high grade).
		var matched int
		var sumD float64
		for _, r := range rendered {
			for _, q := range composed {
				if math.Hypot(q.x-r.StageX, q.y-r.StageY) <= 1.5 {
					matched++
					sumD += math.Abs(float64(classify.AbnormalProb(r.Probs) - q.abn))
					break
				}
			}
		}
		// The rendered slide drops cells cut by a tile's edge and the
		// detector finds a few nuclei a little apart: about 75–85 % match.
		if matched < len(composed)*2/3 {
			t.Errorf("%v seed %d: only %d of %d composed cells found on the rendered slide within 1.5 µm", cases[i].d, cases[i].seed, matched, len(composed))
		} else if d := sumD / float64(matched); d > 0.06 {
			t.Errorf("%v seed %d: P(not NILM) of the same nuclei differs by %.3f on average between rendered and composed", cases[i].d, cases[i].seed, d)
		} else {
			t.Logf("%v seed %d: %d nuclei in both, mean |ΔP(not NILM)| %.3f", cases[i].d, cases[i].seed, matched, d)
		}
		ev := rule.Verdict(high, abn, cells)
		simV := rule.Verdict(sim.SlideHighGradeCells, sim.SlideAbnormalCells, sim.Cells)
		if ev == simV {
			agree++
		}
		// The scanner drops cells cut by a tile's edge (SkipEdge) and the
		// tiles need not meet exactly: a few per cent fewer cells.
		if d := float64(sim.Cells-cells) / float64(cells); d < -0.2 || d > 0.05 {
			t.Errorf("%v seed %d: %d cells analysed on the rendered slide, %d composed: off by %.0f %%", cases[i].d, cases[i].seed, sim.Cells, cells, 100*d)
		}
		if cases[i].d == slide.Negative && (ev != classify.VerdictNILM || simV != classify.VerdictNILM) {
			t.Errorf("negative slide seed %d: rendered %s, composed %s", cases[i].seed, simV, ev)
		}
		if d := sim.SlideHighGradeCells - high; d < -3 || d > 3+high {
			t.Errorf("%v seed %d: %d cells at P(high) >= %.2f rendered, %d composed", cases[i].d, cases[i].seed, sim.SlideHighGradeCells, rule.High.Prob, high)
		}
		t.Logf("%v seed %d: %d pieces; sim %d cells, %d at P(high)>=%.2f, %d at P(not NILM)>=%.2f: %s; eval composition %d cells, %d, %d: %s",
			cases[i].d, cases[i].seed, len(s.Placements()), sim.Cells, sim.SlideHighGradeCells, rule.High.Prob, sim.SlideAbnormalCells, rule.Abnormal.Prob, simV,
			cells, high, abn, ev)
	}
	t.Logf("verdicts agree on %d of %d slides", agree, len(slides))
	if agree < len(slides)-1 {
		t.Errorf("verdicts agree on only %d of %d slides", agree, len(slides))
	}
}
