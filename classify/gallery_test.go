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
