package scan

import (
	"context"
	"image"
	"math"
	"testing"
)

// A focus point the overview shows on bare glass moves onto the specimen
// nearby (within reach of the point spacing, inside the spot); points on
// specimen stay; without a material map nothing moves.
func TestOnMaterial(t *testing.T) {
	// 10 mm square of 100 µm blocks from (0, 0): specimen everywhere
	// except a bare band 600 µm wide around x = 5 mm.
	m := &materialMap{block: 100, nx: 100, ny: 100, frac: make([]float32, 100*100)}
	for j := range 100 {
		for i := range 100 {
			if i < 47 || i >= 53 {
				m.frac[j*100+i] = 0.9
			}
		}
	}
	c := Point{5000, 5000}
	pts := []Point{{5000, 5000}, {2000, 5000}, {8000, 5000}, {5000, 2000}}
	got := onMaterial(m, pts, c, 4500)
	if got[1] != pts[1] || got[2] != pts[2] {
		t.Errorf("points on specimen moved: %v", got)
	}
	for _, k := range []int{0, 3} {
		if f := m.at(got[k], materialHalfUM); f < materialMin {
			t.Errorf("point %d at %v still on glass (%.2f specimen)", k, got[k], f)
		}
		if d := math.Sqrt(dist2(got[k], pts[k])); d > placeReach*3000+1 {
			t.Errorf("point %d moved %.0f µm, beyond reach", k, d)
		}
	}
	if got := onMaterial(nil, pts, c, 4500); got[0] != pts[0] {
		t.Errorf("nil map moved a point: %v", got[0])
	}
	// An overview that shows the specimen only faintly everywhere (no
	// place reaches materialMin): the grid stays as it is.
	for k := range m.frac {
		m.frac[k] = 0.1 + 0.1*float32(k%7)/7
	}
	for k, q := range onMaterial(m, pts, c, 4500) {
		if q != pts[k] {
			t.Errorf("faint overview: point %d moved from %v to %v", k, pts[k], q)
		}
	}
}

// Focus points that do not constrain the curvature (two close columns, as
// after failed points) must not extrapolate wildly: the ridge keeps the
// surface near the plane they lie on.
func TestFitFocusMapRidge(t *testing.T) {
	plane := func(x, y float64) float64 { return 1000 + 0.8*x/1000 - 0.5*y/1000 }
	// Two columns 1.25 mm apart and one point between them (the layout
	// of a map whose outer points failed, seen in the simulator): the
	// curvature along X hangs on that one point's noise.
	noise := []float64{0.2, -0.3, 0.1, 0.25, -0.2, 0.3, -0.1, 0.3}
	var pts []FocusPoint
	for k, q := range []Point{{0, -2500}, {0, -1250}, {0, 0}, {0, 1250}, {1250, -1250}, {1250, 0}, {1250, 1250}, {300, -1150}} {
		pts = append(pts, FocusPoint{q.X, q.Y, plane(q.X, q.Y) + noise[k]})
	}
	m, err := FitFocusMap(pts)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []Point{{3750, 0}, {-2500, 1250}, {1250, 2500}} {
		if d := m.Z(q.X, q.Y) - plane(q.X, q.Y); math.Abs(d) > 2 {
			t.Errorf("at %v the map is %.1f µm off the points' plane", q, d)
		}
	}
}

// A bracket whose lower frame was taken on arrival (the specimen probe)
// needs two more frames when it confirms the prediction.
func TestFocusNearFromProbe(t *testing.T) {
	ctx := context.Background()
	l := &lens{zTrue: 1000, sigma: 1.5}
	s := lensScanner(l)
	var r Report
	var buf *image.RGBA
	// probe brackets a prediction zp from its lower frame, taken on
	// arrival one step below (not counted in l.frames).
	probe := func(zp float64, coarse bool) float64 {
		t.Helper()
		if err := s.setZ(ctx, &r, zp-3); err != nil {
			t.Fatal(err)
		}
		var err error
		if buf, err = l.Capture(ctx, buf); err != nil {
			t.Fatal(err)
		}
		below := Sharpness(buf)
		l.frames = 0
		z, err := s.focusNearFrom(ctx, &r, zp, below, math.NaN(), true, coarse, &buf)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	if z := probe(1000.4, false); l.frames != 2 || math.Abs(z-1000) > 0.3 {
		t.Errorf("focus %.2f µm (truth 1000) in %d frames, want 2", z, l.frames)
	}
	// Coarse, a prediction a step off climbs to the peak and stops
	// there: bracket, one climb, no fine frames.
	if z := probe(1003.8, true); l.frames != 3 || math.Abs(z-1000) > 0.5 {
		t.Errorf("coarse: focus %.2f µm (truth 1000) in %d frames, want 3", z, l.frames)
	}
	// Coarse, a prediction five steps off (beyond localRangeSteps) climbs
	// on to the peak instead of sweeping the whole range from its bottom.
	if z := probe(1015.4, true); l.frames > 7 || math.Abs(z-1000) > 0.5 {
		t.Errorf("coarse, 5 steps off: focus %.2f µm (truth 1000) in %d frames, want at most 7 (bracket and climb)", z, l.frames)
	}
}
