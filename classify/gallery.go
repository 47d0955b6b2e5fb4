package classify

import "container/heap"

// GalleryDedupUM is the distance (µm, stage positions) within which two
// cells offered to a slide's gallery are taken for the same nucleus seen
// twice (in the overlap of neighbouring tiles): only the more suspicious
// one is kept. Distinct nuclei lie further apart (a nucleus is 5–15 µm
// across).
const GalleryDedupUM = 4.0

// offer puts c into the gallery heap of at most k cells, keeping the k most
// suspicious distinct nuclei: a cell within GalleryDedupUM of one already
// there replaces it only if it is more suspicious. Cells without a stage
// position (0, 0) are never merged.
func (h *cellHeap) offer(c *Cell, k int) {
	if k <= 0 {
		return
	}
	if c.StageX != 0 || c.StageY != 0 {
		for i := range *h {
			o := &(*h)[i]
			if (o.StageX != 0 || o.StageY != 0) && sq(o.StageX-c.StageX)+sq(o.StageY-c.StageY) <= GalleryDedupUM*GalleryDedupUM {
				if c.Score > o.Score {
					*o = *c
					heap.Fix(h, i)
				}
				return
			}
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
