package scan

import (
	"math"
	"sort"
)

// focusTracker follows the focus surface along the rows of an on-the-fly
// scan from the frames themselves: the focus map carries the tilt and the
// bowl, the tracker what the map's few points miss.
//
// Z is dithered: consecutive frames of a row are taken ±dither around the
// prediction. Neighbouring frames share a strip of specimen (the tile
// overlap) whose sharpness in the two frames differs only by their focus.
// With the Gaussian model of sharpness against defocus, log S(z) = a -
// (z - f)²/2w² (w² measured by the focus map's fine fits), two frames at
// u1, u2 µm above the map over specimen whose focus is R above the map
// give
//
//	R = (u1 + u2)/2 + w²·(log S2 - log S1)/(u2 - u1),
//
// an estimate of the map's error at every tile boundary. A row is
// predicted from the previous row's estimates at the same X (rows are
// half a field apart; smoothed along the row). Feeding the estimates back
// within the row was measured to do worse: the estimate comes a tile and
// a half behind the frame it would correct, and the simulated coverslip
// waviness (periods of 3-6 mm) turns by about a radian over that.
type focusTracker struct {
	dither float64 // µm
	w2     float64 // width² of the sharpness curve, µm²
	floor  float64 // sharpness of an empty strip (noise): the lowest seen

	prev, cur []trackPt
	k         int // frames of this row so far (the dither's phase)
	used      int // estimates taken
	skipped   int // pairs without enough tissue or dither
}

// trackPt is one estimate of the map's error R (µm) at stage X.
type trackPt struct{ x, r float64 }

const (
	// trackMaxDev: an estimate further than this (µm) from the frames'
	// focus is dropped: beyond about half the depth of field the
	// Gaussian model of sharpness no longer holds.
	trackMaxDev = 1.5
	// trackReach is how far along the row (µm) an estimate predicts.
	trackReach = 800.0
	// trackContrast: a strip is used when its sharpness is this many
	// times the noise floor (tissue, not bare glass).
	trackContrast = 5
	// trackMargin columns of each side of a shared strip are left out of
	// its sharpness (neighbours may be shifted by a pixel or two).
	trackMargin = 6
)

// newFocusTracker tracks with a dither of ±dither µm and a sharpness curve
// of width² w2 µm².
func newFocusTracker(dither, w2 float64) *focusTracker {
	return &focusTracker{dither: dither, w2: w2, floor: math.Inf(1)}
}

// startRow begins a row: the last row's estimates, smoothed, predict it.
func (t *focusTracker) startRow() {
	t.prev = nil
	if len(t.cur) > 0 {
		sort.Slice(t.cur, func(i, j int) bool { return t.cur[i].x < t.cur[j].x })
		sm := make([]trackPt, len(t.cur))
		for i := range t.cur {
			a, b := t.cur[max(i-1, 0)], t.cur[min(i+1, len(t.cur)-1)]
			sm[i] = trackPt{t.cur[i].x, (a.r + 2*t.cur[i].r + b.r) / 4}
		}
		t.prev, t.cur = sm, nil
	}
	t.k = 0
}

// base is the prediction at x: the previous row's estimates, linear
// between neighbours at most trackReach apart, the nearest within
// trackReach beyond them; 0 (the map alone) elsewhere.
func (t *focusTracker) base(x float64) float64 {
	p := t.prev
	if len(p) == 0 {
		return 0
	}
	i := sort.Search(len(p), func(i int) bool { return p[i].x >= x })
	switch {
	case i == 0:
		if p[0].x-x <= trackReach {
			return p[0].r
		}
	case i == len(p):
		if x-p[i-1].x <= trackReach {
			return p[i-1].r
		}
	default:
		a, b := p[i-1], p[i]
		switch {
		case b.x-a.x <= 2*trackReach:
			return a.r + (b.r-a.r)*(x-a.x)/(b.x-a.x)
		case x-a.x <= trackReach:
			return a.r
		case b.x-x <= trackReach:
			return b.r
		}
	}
	return 0
}

// next is the offset (µm, to add to the map) for the row's next frame at
// x: the correction plus the dither of its phase.
func (t *focusTracker) next(x float64) (corr, dither float64) {
	d := t.dither
	if t.k%2 == 1 {
		d = -d
	}
	t.k++
	return t.base(x), d
}

// observe takes two neighbouring frames of a row at x1 and x2, u1 and u2
// µm above the map where they overlap, whose shared strip had sharpness s1
// and s2. It reports whether the pair gave an estimate.
func (t *focusTracker) observe(x1, u1, s1, x2, u2, s2 float64) bool {
	t.floor = math.Min(t.floor, math.Min(s1, s2))
	du := u2 - u1
	if math.Abs(du) < t.dither || !(math.Min(s1, s2) > trackContrast*t.floor) {
		t.skipped++
		return false
	}
	// Sharpness above the noise floor.
	a, b := s1-0.9*t.floor, s2-0.9*t.floor
	r := (u1+u2)/2 + t.w2*math.Log(b/a)/du
	xm := (x1 + x2) / 2
	if math.Abs(r-(u1+u2)/2) > trackMaxDev {
		// Beyond the model's reach: no estimate (the next row falls
		// back to the map there rather than chase a wrong one).
		t.skipped++
		return false
	}
	t.cur = append(t.cur, trackPt{xm, r})
	t.used++
	return true
}

// stripSharpness is the Brenner sharpness (mean squared difference of
// green two columns apart) of a strip, leaving margin columns out on each
// side.
func stripSharpness(s *strip, margin int) float64 {
	x0, x1 := margin, s.w-margin-2
	if x1 <= x0 || s.h == 0 {
		return 0
	}
	var sum uint64
	for y := range s.h {
		row := s.g[y*s.w:][:s.w]
		for x := x0; x < x1; x++ {
			d := int(row[x+2]) - int(row[x])
			sum += uint64(d * d)
		}
	}
	return float64(sum) / float64((x1-x0)*s.h)
}
