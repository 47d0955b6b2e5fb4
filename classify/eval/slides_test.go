package eval

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"testing"

	"papscan/classify"
)

// synthField is a field of n cells in every orientation: susp of them
// suspicious (P(high) = ph, P(not NILM) = pa), the first labelled with
// label when label > NILM.
func synthField(name string, worst classify.Class, n, susp int, ph, pa float32, label classify.Class) SlideField {
	f := SlideField{Set: "synthetic", Name: name, Worst: worst, ModelFold: -1, ObjectFold: -1}
	for o := range Flips {
		cs := make([]SlideCell, n)
		for i := range cs {
			cs[i] = SlideCell{High: 0.01, Abnormal: 0.05, Score: 0.03, Object: int32(i), Label: -1}
			if i < susp {
				cs[i].High, cs[i].Abnormal, cs[i].Score = ph, pa, ph+0.5*(pa-ph)
			}
			cs[i].Probs[classify.HSIL] = cs[i].High
			cs[i].Probs[classify.LSIL] = cs[i].Abnormal - cs[i].High
			cs[i].Probs[classify.NILM] = 1 - cs[i].Abnormal
		}
		if label > classify.NILM && susp > 0 {
			cs[0].Label = int8(label)
		}
		f.Cells[o] = cs
	}
	return f
}

// synthFields: 24 negative fields of 100 cells (a few with one or two
// moderately suspicious cells), 12 high-grade fields with 8 confident
// cells, 24 low-grade fields with 6 cells of high P(not NILM).
func synthFields() []SlideField {
	var fs []SlideField
	for i := range 24 {
		fs = append(fs, synthField(fmt.Sprintf("n%02d", i), classify.NILM, 100, i%3, 0.55, 0.6, classify.NILM))
	}
	for i := range 12 {
		fs = append(fs, synthField(fmt.Sprintf("h%02d", i), classify.HSIL, 150, 8, 0.97, 0.99, classify.HSIL))
	}
	for i := range 24 {
		fs = append(fs, synthField(fmt.Sprintf("l%02d", i), classify.LSIL, 100, 6, 0.1, 0.995, classify.LSIL))
	}
	return fs
}

// TestCompose: every slide holds NILM-only fields up to the cell target,
// each at most MaxUses times, and an abnormal slide exactly one field of its
// grade.
func TestCompose(t *testing.T) {
	fs := synthFields()
	pool := make([]int, len(fs))
	for i := range pool {
		pool[i] = i
	}
	rng := rand.New(rand.NewSource(1))
	for _, g := range []Grade{Negative, LowGrade, HighGrade} {
		for _, uses := range []int{1, 3} {
			rs := Compose(fs, pool, g, 20, ComposeOptions{Cells: 1500, MaxUses: uses}, rng)
			if len(rs) != 20 {
				t.Fatalf("%s: %d slides", g, len(rs))
			}
			for _, r := range rs {
				count := map[int]int{}
				abnormal, cells := 0, 0
				for _, p := range r.Parts {
					count[p.Member]++
					cells += len(fs[p.Field].Cells[p.Orient])
					if fg := FieldGrade(&fs[p.Field]); fg != Negative {
						abnormal++
						if fg != g {
							t.Errorf("%s slide holds a %s field", g, fg)
						}
					}
				}
				for m, n := range count {
					if n > uses {
						t.Errorf("field %s used %d times, at most %d", fs[pool[m]].Name, n, uses)
					}
				}
				if want := map[Grade]int{Negative: 0, LowGrade: 1, HighGrade: 1}[g]; abnormal != want {
					t.Errorf("%s slide: %d abnormal fields, want %d", g, abnormal, want)
				}
				if cells < 1500 {
					t.Errorf("%s slide: %d cells, want >= 1500", g, cells)
				}
			}
		}
	}
	// A pool without NILM-only fields composes nothing.
	if rs := Compose(fs, pool[24:], Negative, 3, ComposeOptions{}, rng); rs != nil {
		t.Errorf("no negatives: %d slides", len(rs))
	}
}

// TestGalleryDeduplicates: the same physical object seen in several
// orientations takes one gallery place; a labelled abnormal cell behind
// more distinct suspicious objects than the gallery holds is a miss.
func TestGalleryDeduplicates(t *testing.T) {
	neg := synthField("n", classify.NILM, 50, 3, 0.9, 0.95, classify.NILM) // 3 objects scoring 0.925
	hg := synthField("h", classify.HSIL, 50, 1, 0.5, 0.6, classify.HSIL)   // its labelled cell scores 0.55
	fs := []SlideField{neg, hg}
	s := newScorer(fs, 4)
	// The negative field in all four orientations: still 3 distinct
	// objects above the labelled cell, so a gallery of 4 holds it.
	r := Recipe{Grade: HighGrade, Parts: []Part{{0, 0, 0, true}, {0, 0, 1, true}, {0, 0, 2, true}, {0, 0, 3, true}, {1, 1, 0, false}}}
	if sc := s.score(r, s.levels, galleryChoice{rank: shippedRank}); !sc.hit[0] || sc.cells != 250 {
		t.Errorf("one field in four orientations: hit %v cells %d, want a hit and 250 cells", sc.hit, sc.cells)
	}
	// Two specimens of the negative field (a bootstrap draw): 6 distinct
	// objects above it.
	r.Parts = []Part{{0, 0, 0, true}, {2, 0, 1, true}, {1, 1, 0, false}}
	if sc := s.score(r, s.levels, galleryChoice{rank: shippedRank}); sc.hit[0] {
		t.Error("six distinct suspicious objects above the labelled cell, gallery of 4: want a miss")
	}
}

// TestSlidesSynthetic: on fields whose abnormal content separates, the
// nested evaluation calls every slide right, fits thresholds above the
// negatives' background, and gives intervals.
func TestSlidesSynthetic(t *testing.T) {
	fs := synthFields()
	o := SlideOptions{Compose: ComposeOptions{Cells: 800}, Repeats: 2, TrainSlides: 40, TestSlides: 10, Resamples: 20}
	m, err := Slides(context.Background(), fs, o)
	if err != nil {
		t.Fatal(err)
	}
	if m.N != 2*2*3*10 || m.NByGrade["NILM"] != 40 {
		t.Fatalf("n %d by grade %v", m.N, m.NByGrade)
	}
	if m.HSILPlusSensitivity != 1 || m.NILMSpecificity != 1 || m.ASCUSPlusSensitivity != 1 || m.GalleryHitRate != 1 {
		t.Errorf("separable fields: HSIL+ %.3f ASC-US+ %.3f spec %.3f gallery %.3f, want 1; confusion %v", m.HSILPlusSensitivity, m.ASCUSPlusSensitivity, m.NILMSpecificity, m.GalleryHitRate, m.Confusion)
	}
	if m.Confusion["LOW_GRADE"]["LOW_GRADE"] == 0 {
		t.Errorf("no LOW_GRADE verdict on low-grade slides: %v", m.Confusion)
	}
	if m.HSILPlusSensitivityCI == nil || m.NILMSpecificityCI == nil || len(m.Rules) != 4 {
		t.Errorf("intervals %v %v, rules %d", m.HSILPlusSensitivityCI, m.NILMSpecificityCI, len(m.Rules))
	}
	r, err := FitRule(fs, o)
	if err != nil {
		t.Fatal(err)
	}
	// The negatives' suspicious cells (P(high) 0.55, P(not NILM) 0.6)
	// are their background: the rule must count above them.
	if r.High.Prob <= 0.55 || r.Abnormal.Prob <= 0.6 {
		t.Errorf("rule %+v counts at the negatives' level", r)
	}
	b, err := RuleFile(r, nil, len(fs), o, m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := classify.LoadSlideRule(b); err != nil {
		t.Errorf("written rule does not load: %v\n%s", err, b)
	}
}

// TestSlidesAbnormalFields: the per-field outcomes add up to the abnormal
// slides, and a high-grade field whose cells all look normal (its one
// labelled cell scored like the rest) comes first, its slides called NILM.
func TestSlidesAbnormalFields(t *testing.T) {
	fs := synthFields()
	fs = append(fs, synthField("h-invisible", classify.HSIL, 150, 1, 0.01, 0.05, classify.HSIL))
	o := SlideOptions{Compose: ComposeOptions{Cells: 800}, Repeats: 2, TrainSlides: 40, TestSlides: 10, Resamples: 5}
	m, err := Slides(context.Background(), fs, o)
	if err != nil {
		t.Fatal(err)
	}
	slides := 0
	for _, fo := range m.AbnormalFields {
		n := 0
		for _, v := range fo.Verdicts {
			n += v
		}
		if n != fo.Slides || fo.GalleryHits > fo.Slides {
			t.Errorf("%s: %d slides, verdicts %v, gallery hits %d", fo.Name, fo.Slides, fo.Verdicts, fo.GalleryHits)
		}
		slides += fo.Slides
	}
	if want := m.NByGrade["LOW_GRADE"] + m.NByGrade["HIGH_GRADE"]; slides != want {
		t.Errorf("per-field outcomes count %d slides, want the %d abnormal ones", slides, want)
	}
	if len(m.AbnormalFields) == 0 {
		t.Fatal("no per-field outcomes")
	}
	first := m.AbnormalFields[0]
	if first.Name != "h-invisible" || first.Slides == 0 || first.MissedShare() != 1 || first.Grade != "HIGH_GRADE" {
		t.Errorf("first outcome %+v (missed %.2f), want the invisible high-grade field, every slide NILM", first, first.MissedShare())
	}
	for _, fo := range m.AbnormalFields[1:] {
		if fo.MissedShare() > first.MissedShare() {
			t.Errorf("%s missed %.2f listed after %.2f", fo.Name, fo.MissedShare(), first.MissedShare())
		}
	}
	var b strings.Builder
	PrintSlides(&b, m)
	if !strings.Contains(b.String(), "synthetic/h-invisible  worst HSIL") {
		t.Errorf("printed slide section does not name the missed field:\n%s", b.String())
	}
}

// TestPoissonQuantile: the smallest count exceeded with probability at
// most alpha.
func TestPoissonQuantile(t *testing.T) {
	for _, tc := range []struct {
		mu, alpha float64
		want      int
	}{{0.8, 0.05, 3}, {0, 0.05, 1}, {2, 0.025, 6}} {
		if got := poissonQuantile(tc.mu, tc.alpha); got != tc.want {
			t.Errorf("poissonQuantile(%v, %v) = %d, want %d", tc.mu, tc.alpha, got, tc.want)
		}
	}
}

// TestNegativePart: a NILM-only field gives all its cells; a field with
// abnormal labels only its NILM-labelled cells at least NegativeClearUM
// from every abnormal label; mixed negatives then fill negative slides,
// never from the abnormal slide's own field.
func TestNegativePart(t *testing.T) {
	neg := synthField("n", classify.NILM, 10, 0, 0, 0, classify.NILM)
	if got := len(neg.NegativePart(0)); got != 10 {
		t.Errorf("NILM-only field: %d cells, want 10", got)
	}
	f := synthField("l", classify.LSIL, 4, 0, 0, 0, classify.NILM)
	f.PixelUM = 0.5
	f.AbnormalPoints = [][2]float32{{0, 0}}
	for o := range Flips {
		cs := f.Cells[o]
		// Cell 0: the abnormal one; 1: NILM 10 µm away; 2: NILM 40 µm
		// away; 3: unlabelled 40 µm away.
		cs[0].Label, cs[1].Label, cs[2].Label = int8(classify.LSIL), int8(classify.NILM), int8(classify.NILM)
		cs[1].X, cs[2].X, cs[3].X = 20, 80, 80
	}
	got := f.NegativePart(1)
	if len(got) != 1 || got[0].X != 80 || got[0].Label != int8(classify.NILM) {
		t.Errorf("negative part %+v, want the NILM-labelled cell 40 µm away", got)
	}
	fs := []SlideField{neg, f}
	rng := rand.New(rand.NewSource(1))
	pool := []int{0, 1}
	for _, mixed := range []bool{false, true} {
		o := ComposeOptions{Cells: 100, MaxUses: 4, MixedNegatives: mixed}
		for _, r := range Compose(fs, pool, Negative, 5, o, rng) {
			n1 := 0
			for _, p := range r.Parts {
				if p.Field == 1 {
					n1++
					if !p.Negative {
						t.Errorf("a low-grade field placed whole on a negative slide")
					}
				}
			}
			if mixed != (n1 > 0) {
				t.Errorf("mixed %v: the low-grade field's negative part used %d times", mixed, n1)
			}
		}
		for _, r := range Compose(fs, pool, LowGrade, 5, o, rng) {
			for _, p := range r.Parts {
				if p.Field == 1 && p.Negative {
					t.Errorf("the abnormal field's negative part beside the field itself")
				}
			}
		}
	}
}

// TestSlidesLogit: the logistic rule, on fields whose abnormal content
// separates, calls the slides right.
func TestSlidesLogit(t *testing.T) {
	fs := synthFields()
	o := SlideOptions{Compose: ComposeOptions{Cells: 800}, Repeats: 1, TrainSlides: 40, TestSlides: 10, Resamples: 5, InnerRepeats: 1, Method: MethodLogit}
	m, err := Slides(context.Background(), fs, o)
	if err != nil {
		t.Fatal(err)
	}
	if m.HSILPlusSensitivity < 0.9 || m.NILMSpecificity < 0.9 || m.ASCUSPlusSensitivity < 0.9 {
		t.Errorf("separable fields, logit rule: HSIL+ %.3f ASC-US+ %.3f spec %.3f; confusion %v", m.HSILPlusSensitivity, m.ASCUSPlusSensitivity, m.NILMSpecificity, m.Confusion)
	}
}
