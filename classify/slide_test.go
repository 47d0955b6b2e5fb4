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
	th := Thresholds{HighGrade: 0.5, LowGrade: 0.5, MinHighGradeCells: 2, MinLowGradeCells: 3, MinSquamousCells: 10, GallerySize: 4}
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

// TestSlideCountingThresholds: the verdict counts cells at the stricter
// slide thresholds and needs a minimum fraction of all cells.
func TestSlideCountingThresholds(t *testing.T) {
	th := Thresholds{HighGrade: 0.3, LowGrade: 0.5, SlideHighGrade: 0.95, SlideLowGrade: 0.9,
		MinHighGradeCells: 3, MinHighGradeFraction: 0.002, MinLowGradeCells: 5, MinLowGradeFraction: 0.005, MinSquamousCells: 100}
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
	// 50 cells at P=0.8: above the cell operating point, below the slide one.
	if r := run(5000, many(50, mkCell(HSIL, 0.8, 0.8))...); r.Verdict != VerdictNILM || r.HighGradeCells != 50 || r.SlideHighGradeCells != 0 {
		t.Errorf("moderate cells: %s high %d slide %d", r.Verdict, r.HighGradeCells, r.SlideHighGradeCells)
	}
	// 5 confident cells among 5000: count met, fraction (0.1 %) not.
	if r := run(5000, many(5, mkCell(HSIL, 0.99, 0.99))...); r.Verdict != VerdictNILM {
		t.Errorf("5 of 5000: %s (%s)", r.Verdict, r.Reason)
	}
	// 15 confident cells among 5000 (0.3 %): high grade.
	if r := run(5000, many(15, mkCell(SCC, 0.99, 0.99))...); r.Verdict != VerdictHighGrade || r.SlideHighGradeCells != 15 {
		t.Errorf("15 of 5000: %s (%s)", r.Verdict, r.Reason)
	}
	// 30 confident low-grade cells among 5000 (0.6 %): low grade.
	if r := run(5000, many(30, mkCell(LSIL, 0.95, 0.45))...); r.Verdict != VerdictLowGrade {
		t.Errorf("30 LSIL of 5000: %s (%s)", r.Verdict, r.Reason)
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
