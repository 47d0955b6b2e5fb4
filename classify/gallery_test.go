package classify

import "testing"

// TestGalleryDedup: a nucleus seen in two overlapping tiles (stage positions
// a few µm apart) enters the gallery once, as its more suspicious sighting;
// distinct nuclei and cells without a stage position are all kept.
func TestGalleryDedup(t *testing.T) {
	th := DefaultThresholds()
	th.GallerySize = 4
	s := NewSlideSummary(th, nil)
	at := func(x, y float64, score float32, tile int) Cell {
		c := mkCell(HSIL, 0, score)
		c.StageX, c.StageY, c.Tile = x, y, tile
		return c
	}
	s.Add([]Cell{at(40000, 12000, 0.90, 1), at(40020, 12000, 0.80, 1)})
	s.Add([]Cell{at(40001.5, 12001, 0.95, 2)}) // the first nucleus again, higher
	s.Add([]Cell{at(40019, 12001.5, 0.70, 2)}) // the second again, lower
	s.Add([]Cell{at(0, 0, 0.5, 3), at(0, 0, 0.6, 3)})
	r := s.Result(true)
	if len(r.Top) != 4 {
		t.Fatalf("gallery of %d: %+v", len(r.Top), r.Top)
	}
	want := []struct {
		x     float64
		score float32
	}{{40001.5, 0.95}, {40020, 0.80}, {0, 0.6}, {0, 0.5}}
	for i, w := range want {
		if r.Top[i].StageX != w.x || r.Top[i].Score != w.score {
			t.Errorf("top[%d] = %v at %v, want %v at %v", i, r.Top[i].Score, r.Top[i].StageX, w.score, w.x)
		}
	}
	if r.Cells != 6 {
		t.Errorf("%d cells counted, want 6 (counts are not de-duplicated)", r.Cells)
	}
}

// TestGalleryDedupLook: copies of one cell (measured alike, anywhere on the
// slide) take one gallery place; a cell that differs in one measurement is
// another object.
func TestGalleryDedupLook(t *testing.T) {
	th := DefaultThresholds()
	th.GallerySize = 4
	s := NewSlideSummary(th, nil)
	mk := func(x float64, score float32, area float64, surround float32) Cell {
		c := mkCell(HSIL, 0, score)
		c.StageX, c.StageY = x, 12000
		c.AreaUM2, c.Circularity, c.Elongation, c.MeanH, c.MaxH, c.RingContrast, c.Surround, c.Fill = area, 0.82, 1.35, 0.92, 1.40, 0.42, surround, 0.65
		return c
	}
	// Measurements of one cell rendered under four flips (from a simulated
	// slide's gallery), then two other cells.
	s.Add([]Cell{mk(1000, 0.987, 61.5, 0.4776), mk(5000, 0.9867, 60.75, 0.4779), mk(9000, 0.9776, 61, 0.4784), mk(13000, 0.965, 61.75, 0.4771)})
	s.Add([]Cell{mk(17000, 0.94, 78.5, 0.4776), mk(21000, 0.93, 61.5, 0.24)})
	r := s.Result(true)
	if len(r.Top) != 3 {
		t.Fatalf("gallery of %d, want 3 objects: %+v", len(r.Top), r.Top)
	}
	for i, want := range []float64{1000, 17000, 21000} {
		if r.Top[i].StageX != want {
			t.Errorf("top[%d] at %v, want %v", i, r.Top[i].StageX, want)
		}
	}
	a, b := mk(0, 0, 0, 0), mk(0, 0, 0, 0)
	if SameLook(&a, &b) {
		t.Error("unmeasured cells look the same")
	}
}

// TestGalleryDedupChain: a cell that looks like two kept cells (which do
// not look like each other) replaces both.
func TestGalleryDedupChain(t *testing.T) {
	th := DefaultThresholds()
	th.GallerySize = 4
	s := NewSlideSummary(th, nil)
	mk := func(x float64, score float32, area float64) Cell {
		c := mkCell(HSIL, 0, score)
		c.StageX, c.StageY = x, 12000
		c.AreaUM2, c.Circularity, c.Elongation, c.MeanH, c.RingContrast, c.Surround, c.Fill = area, 0.82, 1.35, 0.92, 0.42, 0.47, 0.65
		return c
	}
	s.Add([]Cell{mk(1000, 0.90, 60), mk(5000, 0.91, 76)}) // 21 % apart: two objects
	s.Add([]Cell{mk(9000, 0.95, 68)})                     // within 15 % of both
	r := s.Result(true)
	if len(r.Top) != 1 || r.Top[0].StageX != 9000 {
		t.Errorf("gallery %+v, want the one cell at 9000", r.Top)
	}
}

// TestGallerySpread: with a spread of one cell per 50 µm, a crowded group
// of suspicious cells gives the gallery one cell and the next places go to
// other areas; the group's other cells fill the gallery when nothing else
// is left, and the gallery is shown most suspicious first.
func TestGallerySpread(t *testing.T) {
	th := DefaultThresholds()
	th.GallerySize = 4
	rule, err := DefaultSlideRule()
	if err != nil {
		t.Fatal(err)
	}
	r := *rule
	r.Gallery = GallerySpread{PerRegion: 1, RegionUM: 50}
	th.Rule = &r
	s := NewSlideSummary(th, nil)
	var cells []Cell
	for i := range 6 { // a group 30 µm wide, 0.99–0.94
		c := mkCell(HSIL, 0.9, 0.99-0.01*float32(i))
		c.StageX, c.StageY = 1000+6*float64(i), 1000
		cells = append(cells, c)
	}
	far := mkCell(HSIL, 0.9, 0.6) // alone, 2 mm away
	far.StageX, far.StageY = 3000, 1000
	cells = append(cells, far)
	s.Add(cells)
	got := s.Result(true).Top
	want := []float32{0.99, 0.98, 0.97, 0.6} // the group's best, then backfill, shown by suspicion
	if len(got) != len(want) {
		t.Fatalf("gallery of %d, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Score != w {
			t.Errorf("gallery[%d] score %v, want %v", i, got[i].Score, w)
		}
	}
	// Unspread: the group fills the gallery.
	r.Gallery = GallerySpread{}
	s = NewSlideSummary(th, nil)
	s.Add(cells)
	for _, c := range s.Result(true).Top {
		if c.StageX == 3000 {
			t.Error("unspread gallery holds the lone cell below four of the group")
		}
	}
	// PickGallery alone: positions unknown are never passed over.
	g := GallerySpread{PerRegion: 1, RegionUM: 50}
	if got := g.PickGallery(3, 2, func(int) (float64, float64, bool) { return 0, 0, false }); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("unknown positions: picked %v, want [0 1]", got)
	}
	if err := CheckSlideRule(&SlideRule{High: r.High, Abnormal: r.Abnormal, Gallery: GallerySpread{PerRegion: -1}}); err == nil {
		t.Error("a negative gallery.per_region passes the check")
	}
}

// BenchmarkSlideSummaryAdd: a slide's cells offered to the summary (the
// gallery keeps GalleryCandidates(24) distinct objects), most of them
// below the gallery's least suspicious.
func BenchmarkSlideSummaryAdd(b *testing.B) {
	th := DefaultThresholds()
	cells := make([]Cell, 1000)
	for i := range cells {
		s := float32((i*7919)%1000) / 1000
		cells[i] = mkCell(HSIL, s, s)
		cells[i].StageX, cells[i].StageY = float64(i%40)*20, float64(i/40)*20
		cells[i].AreaUM2 = 40 + float64(i%17)
	}
	s := NewSlideSummary(th, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		s.Add(cells)
	}
	b.ReportMetric(float64(b.N*len(cells))/b.Elapsed().Seconds(), "cells/s")
}
