package classify

import (
	"container/heap"
	"math"
)

// GalleryDedupUM is the distance (µm, stage positions) within which two
// cells offered to a slide's gallery are taken for the same nucleus seen
// twice (in the overlap of neighbouring tiles): only the more suspicious
// one is kept. Distinct nuclei lie further apart (a nucleus is 5–15 µm
// across).
const GalleryDedupUM = 4.0

// SameLook reports whether two measured nuclei are the same physical object
// seen again, by their measurements: area within 5 %, and circularity,
// elongation, mean and ring optical density, surround and fill within a
// few hundredths. A copy of one cell (a virtual slide that places a source
// field several times, mirrored) measures like this, wherever it lies;
// two distinct nuclei practically never agree on all seven (the surround,
// the optical density of the cytoplasm around the nucleus, alone varies by
// tenths between cells). Unmeasured cells (area 0) never look the same.
func SameLook(a, b *Cell) bool {
	if a.AreaUM2 <= 0 || b.AreaUM2 <= 0 {
		return false
	}
	near := func(x, y, tol float32) bool { return x-y <= tol && y-x <= tol }
	return math.Abs(a.AreaUM2-b.AreaUM2) <= 0.05*max(a.AreaUM2, b.AreaUM2) &&
		near(a.Circularity, b.Circularity, 0.04) && near(a.Elongation, b.Elongation, 0.06) &&
		near(a.MeanH, b.MeanH, 0.03) && near(a.RingContrast, b.RingContrast, 0.03) &&
		near(a.Surround, b.Surround, 0.02) && near(a.Fill, b.Fill, 0.03)
}

// offer puts c into the gallery heap of at most k cells, keeping the k most
// suspicious distinct objects: a cell within GalleryDedupUM of one already
// there (the same nucleus in the overlap of two tiles), or that looks the
// same (SameLook), replaces it only if it is more suspicious. Cells without
// a stage position (0, 0) are never merged by position.
func (h *cellHeap) offer(c *Cell, k int) {
	if k <= 0 || (len(*h) >= k && c.Score <= (*h)[0].Score) {
		return // not more suspicious than any cell kept: neither enters nor replaces
	}
	pos := c.StageX != 0 || c.StageY != 0
	for i := range *h {
		o := &(*h)[i]
		samePlace := pos && (o.StageX != 0 || o.StageY != 0) && sq(o.StageX-c.StageX)+sq(o.StageY-c.StageY) <= GalleryDedupUM*GalleryDedupUM
		if samePlace || SameLook(o, c) {
			if c.Score > o.Score {
				*o = *c
				heap.Fix(h, i)
			}
			return
		}
	}
	if len(*h) < k {
		heap.Push(h, *c)
	} else if c.Score > (*h)[0].Score {
		(*h)[0] = *c
		heap.Fix(h, 0)
	}
}

func sq(v float64) float64 { return v * v }
