package classify

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

func mkCell(class Class, p float32, score float32) Cell {
	var c Cell
	c.Probs[NILM] = 1 - p
	c.Probs[class] += p
	c.Class = class
	c.Score = score
	return c
}

func TestSlideVerdicts(t *testing.T) {
	// Without background: two cells at P(high) >= 0.5 make a high-grade
	// slide, three at P(not NILM) >= 0.5 a low-grade one.
	rule := &SlideRule{High: SlideLevel{Prob: 0.5, Z: 2}, Abnormal: SlideLevel{Prob: 0.5, Z: 3}}
	th := Thresholds{HighGrade: 0.5, LowGrade: 0.5, MinSquamousCells: 10, GallerySize: 4, Rule: rule}
	normal := func(n int) []Cell {
		cs := make([]Cell, n)
		for i := range cs {
			cs[i] = mkCell(NILM, 0, 0.01)
		}
		return cs
	}
	cases := []struct {
		name     string
		cells    []Cell
		complete bool
		want     Verdict
	}{
		{"incomplete empty", nil, false, VerdictIncomplete},
		{"incomplete normal", normal(100), false, VerdictIncomplete},
		{"incomplete with HSIL", append(normal(100), mkCell(HSIL, 0.9, 0.9), mkCell(HSIL, 0.9, 0.9)), false, VerdictIncomplete},
		{"unsatisfactory", normal(9), true, VerdictUnsatisfactory},
		{"unsatisfactory despite HSIL", append(normal(5), mkCell(HSIL, 0.9, 0.9), mkCell(HSIL, 0.9, 0.9)), true, VerdictUnsatisfactory},
		{"nilm", normal(10), true, VerdictNILM},
		{"one high below min", append(normal(20), mkCell(SCC, 0.9, 0.9)), true, VerdictNILM},
		{"high grade", append(normal(20), mkCell(SCC, 0.9, 0.9), mkCell(ASCH, 0.6, 0.6)), true, VerdictHighGrade},
		{"high prob below threshold", append(normal(20), mkCell(HSIL, 0.49, 0.49), mkCell(HSIL, 0.49, 0.49)), true, VerdictNILM},
		{"low grade", append(normal(20), mkCell(LSIL, 0.7, 0.35), mkCell(ASCUS, 0.6, 0.3), mkCell(LSIL, 0.5, 0.25)), true, VerdictLowGrade},
		{"low below min", append(normal(20), mkCell(LSIL, 0.7, 0.35), mkCell(ASCUS, 0.6, 0.3)), true, VerdictNILM},
		{"high beats low", append(normal(20), mkCell(LSIL, 0.7, 0.35), mkCell(LSIL, 0.7, 0.35), mkCell(LSIL, 0.7, 0.35), mkCell(HSIL, 0.8, 0.8), mkCell(HSIL, 0.8, 0.8)), true, VerdictHighGrade},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSlideSummary(th, nil)
			s.Add(tc.cells)
			r := s.Result(tc.complete)
			if r.Verdict != tc.want {
				t.Fatalf("verdict %s, want %s (%s)", r.Verdict, tc.want, r.Reason)
			}
			if r.Cells != len(tc.cells) || !strings.Contains(r.Reason, "cells analysed") {
				t.Fatalf("cells %d reason %q", r.Cells, r.Reason)
			}
		})
	}
}

// TestSlideRuleBackground: the rule counts cells at its levels against the
// negative background of a slide of that size, so the same count of
// suspicious cells decides a small slide and not a large one.
func TestSlideRuleBackground(t *testing.T) {
	rule := &SlideRule{High: SlideLevel{Prob: 0.95, Rate: 0.001, Dispersion: 2, Z: 3}, Abnormal: SlideLevel{Prob: 0.9, Rate: 0.005, Z: 3}}
	th := Thresholds{HighGrade: 0.3, LowGrade: 0.5, MinSquamousCells: 100, Rule: rule}
	run := func(normal int, extra ...Cell) SlideResult {
		s := NewSlideSummary(th, nil)
		for range normal {
			s.Add([]Cell{mkCell(NILM, 0, 0)})
		}
		s.Add(extra)
		return s.Result(true)
	}
	many := func(n int, c Cell) []Cell {
		out := make([]Cell, n)
		for i := range out {
			out[i] = c
		}
		return out
	}
	// 50 cells at P=0.8: above the cell operating point, below the levels.
	if r := run(5000, many(50, mkCell(HSIL, 0.8, 0.8))...); r.Verdict != VerdictNILM || r.HighGradeCells != 50 || r.SlideHighGradeCells != 0 {
		t.Errorf("moderate cells: %s high %d slide %d", r.Verdict, r.HighGradeCells, r.SlideHighGradeCells)
	}
	// Background at 5000 cells: 5 ± sqrt(2·5+1); 15 confident cells are
	// 3.0 sd above it, 12 are not.
	if r := run(5000, many(15, mkCell(SCC, 0.99, 0.99))...); r.Verdict != VerdictHighGrade || r.SlideHighGradeCells != 15 {
		t.Errorf("15 of 5000: %s (%s)", r.Verdict, r.Reason)
	}
	if r := run(5000, many(12, mkCell(SCC, 0.99, 0.99))...); r.Verdict != VerdictNILM {
		t.Errorf("12 of 5000: %s (%s), want NILM", r.Verdict, r.Reason)
	}
	// The same 15 cells among 50,000 are the background.
	if r := run(50000, many(15, mkCell(SCC, 0.99, 0.99))...); r.Verdict != VerdictNILM {
		t.Errorf("15 of 50000: %s (%s)", r.Verdict, r.Reason)
	}
	// 60 confident low-grade cells among 5000 (background 25 ± 5): low grade.
	if r := run(5000, many(60, mkCell(LSIL, 0.95, 0.45))...); r.Verdict != VerdictLowGrade || r.SlideAbnormalCells != 60 {
		t.Errorf("60 LSIL of 5000: %s (%s)", r.Verdict, r.Reason)
	}
}

// TestDefaultSlideRule: the embedded rule loads, names the model it was
// fitted for, and bad rule files are refused with the key named.
func TestDefaultSlideRule(t *testing.T) {
	r, err := DefaultSlideRule()
	if err != nil {
		t.Fatal(err)
	}
	m, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	if r.Version == "" || len(r.SHA256) != 64 || r.ModelVersion != m.Version {
		t.Errorf("rule %q sha %q fitted for model %q, want a version, a SHA-256 and model %q", r.Version, r.SHA256, r.ModelVersion, m.Version)
	}
	if r.ModelSHA256 != m.SHA256 {
		t.Errorf("the slide rule was fitted on the scores of another cell model (%.12s, embedded %.12s): refit it with papscan eval --data ../shared/data --fit-slide-rule classify/slide_rule.json", r.ModelSHA256, m.SHA256)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"high":{"prob":0,"z":1},"abnormal":{"prob":0.5,"z":1}}`, "high.prob"},
		{`{"high":{"prob":0.5,"z":1},"abnormal":{"prob":0.5,"rate":1.5,"z":1}}`, "abnormal.rate"},
		{`{"high":{"prob":0.5,"z":1,"dispersion":-1},"abnormal":{"prob":0.5,"z":1}}`, "high.dispersion"},
		{`{"high":`, "slide rule"},
	} {
		if _, err := LoadSlideRule([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.in, err, tc.want)
		}
	}
}

func TestSlideTopK(t *testing.T) {
	th := DefaultThresholds()
	th.GallerySize = 5
	s := NewSlideSummary(th, nil)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 250 {
				c := mkCell(NILM, 0, float32((i*4+w)%1000)/1000)
				c.Tile = w
				s.Add([]Cell{c})
			}
		}()
	}
	wg.Wait()
	r := s.Result(true)
	if r.Cells != 1000 || len(r.Top) != 5 {
		t.Fatalf("cells %d top %d", r.Cells, len(r.Top))
	}
	for i, c := range r.Top {
		if want := float32(999-i) / 1000; c.Score != want {
			t.Errorf("top[%d] score %v want %v", i, c.Score, want)
		}
	}
	if r.Counts["NILM"] != 1000 {
		t.Errorf("counts %v", r.Counts)
	}
}

func TestSlideJSON(t *testing.T) {
	m, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	s := NewSlideSummary(DefaultThresholds(), m)
	c := mkCell(HSIL, 0.9, 0.9)
	c.Crop = CropAround(synthTile(10, 10, nil, 1), 5, 5, 8)
	c.StageX, c.StageY = 1234.5, 678.9
	s.Add([]Cell{c})
	b, err := json.Marshal(s.Result(true))
	if err != nil {
		t.Fatal(err)
	}
	js := string(b)
	for _, k := range []string{`"verdict":"UNSATISFACTORY"`, `"model_version":"mlp-cnn-3"`, `"stage_x_um":1234.5`, `"class":"HSIL"`, `"high_grade_cells":1`, `"ASC-US":0`} {
		if !strings.Contains(js, k) {
			t.Errorf("JSON lacks %s: %s", k, js)
		}
	}
	if strings.Contains(js, "Pix") {
		t.Error("crop serialised")
	}
}

// FuzzLoadSlideRule: any rule file loads into a rule whose verdicts are
// defined for any counts, or is refused; never a panic.
func FuzzLoadSlideRule(f *testing.F) {
	f.Add(defaultSlideRuleFile)
	f.Add([]byte(`{"high":{"prob":1,"rate":0.5,"dispersion":0,"z":-3},"abnormal":{"prob":1e-300,"z":1e300}}`))
	f.Add([]byte(`{"high":{"prob":0.5,"z":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := LoadSlideRule(data)
		if err != nil {
			return
		}
		for _, n := range [][3]int{{0, 0, 0}, {5, 5, 10}, {1 << 30, 1 << 30, 1 << 30}, {0, 0, 1 << 30}} {
			switch v := r.Verdict(n[0], n[1], n[2]); v {
			case VerdictNILM, VerdictLowGrade, VerdictHighGrade:
			default:
				t.Fatalf("verdict %q for %v", v, n)
			}
		}
	})
}
