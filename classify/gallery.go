package classify

import (
	"container/heap"
	"fmt"
	"math"
)

// GalleryDedupUM is the distance (µm, stage positions) within which two
// cells offered to a slide's gallery are taken for the same nucleus seen
// twice (in the overlap of neighbouring tiles): only the more suspicious
// one is kept. Distinct nuclei lie further apart (a nucleus is 5–15 µm
// across).
const GalleryDedupUM = 4.0

// SameLook reports whether two measured nuclei are the same physical object
// seen again, by the measurements that stay put when one cell is imaged
// twice at slightly different focus: the optical density of the nucleus
// (mean within 0.03, peak within 0.07: the peak takes the noise), of its
// rim (ring contrast within 0.035) and of the cytoplasm around it
// (surround within 0.03), with the area within 15 %, circularity within
// 0.15 and elongation within 0.15 (outline measures move with focus). A copy
// of one cell (a virtual slide that places a source field several times,
// mirrored) measures like this wherever it lies; distinct nuclei rarely
// agree on all seven, and when they do the gallery shows one of them (the
// counts are not affected). Unmeasured cells (area 0) never look the same.
func SameLook(a, b *Cell) bool {
	if a.AreaUM2 <= 0 || b.AreaUM2 <= 0 {
		return false
	}
	near := func(x, y, tol float32) bool { return x-y <= tol && y-x <= tol }
	return math.Abs(a.AreaUM2-b.AreaUM2) <= 0.15*max(a.AreaUM2, b.AreaUM2) &&
		near(a.MeanH, b.MeanH, 0.03) && near(a.MaxH, b.MaxH, 0.07) &&
		near(a.RingContrast, b.RingContrast, 0.035) && near(a.Surround, b.Surround, 0.03) &&
		near(a.Circularity, b.Circularity, 0.15) && near(a.Elongation, b.Elongation, 0.15)
}

// offer puts c into the gallery heap of at most k cells, keeping the k most
// suspicious distinct objects: cells within GalleryDedupUM of c (the same
// nucleus in the overlap of two tiles) or that look the same (SameLook)
// are one object with it, kept as its most suspicious sighting (looks are
// not transitive: c may join several kept cells, which it then all
// replaces). Cells without a stage position (0, 0) are never merged by
// position.
func (h *cellHeap) offer(c *Cell, k int) {
	if k <= 0 || (len(*h) >= k && c.Score <= (*h)[0].Score) {
		return // not more suspicious than any cell kept: neither enters nor replaces
	}
	pos := c.StageX != 0 || c.StageY != 0
	same := func(o *Cell) bool {
		samePlace := pos && (o.StageX != 0 || o.StageY != 0) && sq(o.StageX-c.StageX)+sq(o.StageY-c.StageY) <= GalleryDedupUM*GalleryDedupUM
		return samePlace || SameLook(o, c)
	}
	merged := false
	for i := range *h {
		if o := &(*h)[i]; same(o) {
			if o.Score >= c.Score {
				return // a kept sighting of the same object is as suspicious
			}
			merged = true
		}
	}
	if merged {
		kept := (*h)[:0]
		for i := range *h {
			if !same(&(*h)[i]) {
				kept = append(kept, (*h)[i])
			}
		}
		*h = append(kept, *c)
		heap.Init(h)
		return
	}
	if len(*h) < k {
		heap.Push(h, *c)
	} else if c.Score > (*h)[0].Score {
		(*h)[0] = *c
		heap.Fix(h, 0)
	}
}

func sq(v float64) float64 { return v * v }

// GallerySpread spreads a slide's gallery over the slide: walking the
// candidates from the most suspicious, a cell is passed over while
// PerRegion cells already shown lie within RegionUM of it (stage
// positions), so that a crowded group of look-alike false positives (one
// bad area of a negative smear) cannot fill the gallery by itself. Cells
// passed over fill the gallery's remaining places, most suspicious first,
// when there are too few others. The zero value (PerRegion 0) ranks by
// suspicion alone. It is fitted with the slide rule (classify/eval), not
// set by hand.
type GallerySpread struct {
	PerRegion int     `json:"per_region"`
	RegionUM  float64 `json:"region_um"`
}

// GalleryCandidates is how many distinct objects a slide keeps as gallery
// candidates for a gallery of n: the spread chooses among them.
func GalleryCandidates(n int) int { return 4 * n }

func (g GallerySpread) check() error {
	if g.PerRegion < 0 || g.PerRegion > 1000 {
		return fmt.Errorf("classify: slide rule: gallery.per_region %d not in [0, 1000]", g.PerRegion)
	}
	if !(g.RegionUM >= 0 && g.RegionUM <= 1e5) {
		return fmt.Errorf("classify: slide rule: gallery.region_um %v not in [0, 1e5]", g.RegionUM)
	}
	return nil
}

// PickGallery returns the indices (into cands) of the n cells a gallery
// shows, in the order shown. cands are distinct objects, most suspicious
// first; pos gives a candidate's stage position (µm; ok false: unknown,
// never passed over). The slide summary and the slide evaluation both
// choose their galleries with it.
func (g GallerySpread) PickGallery(cands int, n int, pos func(i int) (x, y float64, ok bool)) []int {
	n = min(n, cands)
	out := make([]int, 0, n)
	if g.PerRegion <= 0 || g.RegionUM <= 0 {
		for i := range n {
			out = append(out, i)
		}
		return out
	}
	r2 := g.RegionUM * g.RegionUM
	var passed []int
	for i := 0; i < cands && len(out) < n; i++ {
		x, y, ok := pos(i)
		near := 0
		if ok {
			for _, j := range out {
				if xj, yj, okj := pos(j); okj && sq(xj-x)+sq(yj-y) <= r2 {
					near++
				}
			}
		}
		if near >= g.PerRegion {
			passed = append(passed, i)
			continue
		}
		out = append(out, i)
	}
	for _, i := range passed {
		if len(out) >= n {
			break
		}
		out = append(out, i)
	}
	return out
}
