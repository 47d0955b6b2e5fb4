package scan

import (
	"math"
	"testing"
)

func TestPlanTilesCoversSpot(t *testing.T) {
	c := Point{40000, 15000}
	const r, fw, fh = 6500.0, 640.0, 480.0
	p, err := PlanTiles(c, r, fw, fh, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Tiles) == 0 || len(p.Tiles) >= p.Rows*p.Cols {
		t.Fatalf("got %d tiles of a %dx%d grid: want the spot to clip corners", len(p.Tiles), p.Cols, p.Rows)
	}
	// Every point of the disc lies in some tile.
	for a := 0.0; a < 2*math.Pi; a += 0.05 {
		for _, f := range []float64{0, 0.3, 0.7, 0.999} {
			x, y := c.X+f*r*math.Cos(a), c.Y+f*r*math.Sin(a)
			covered := false
			for _, tl := range p.Tiles {
				if math.Abs(x-tl.X) <= fw/2 && math.Abs(y-tl.Y) <= fh/2 {
					covered = true
					break
				}
			}
			if !covered {
				t.Fatalf("point (%.0f, %.0f) of the spot is in no tile", x, y)
			}
		}
	}
	// Serpentine: consecutive tiles are neighbours (one step apart in X, or
	// a row change).
	for i := 1; i < len(p.Tiles); i++ {
		dx := math.Abs(p.Tiles[i].X - p.Tiles[i-1].X)
		dy := math.Abs(p.Tiles[i].Y - p.Tiles[i-1].Y)
		if dy == 0 && math.Abs(dx-p.StepX) > 1e-6 {
			t.Fatalf("tiles %d and %d are %.1f µm apart in a row, want %.1f", i-1, i, dx, p.StepX)
		}
		if dy > p.StepY+1e-6 {
			t.Fatalf("tiles %d and %d skip a row", i-1, i)
		}
	}
	if math.Abs(p.StepX-fw*0.9) > 1e-9 || math.Abs(p.StepY-fh*0.9) > 1e-9 {
		t.Errorf("steps %.1f x %.1f, want 10%% overlap", p.StepX, p.StepY)
	}
}

func TestPlanTilesRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		r, fw, fh, ov float64
	}{
		{0, 640, 480, 0.1},
		{1000, 0, 480, 0.1},
		{1000, 640, 480, 0.5},
		{1000, 640, 480, -0.1},
		{math.NaN(), 640, 480, 0.1},
		{1e9, 0.001, 0.001, 0},
	} {
		if _, err := PlanTiles(Point{}, tc.r, tc.fw, tc.fh, tc.ov); err == nil {
			t.Errorf("PlanTiles(r=%g, field=%gx%g, overlap=%g) accepted", tc.r, tc.fw, tc.fh, tc.ov)
		}
	}
}

func TestFocusMapFitsQuadraticSurface(t *testing.T) {
	surf := func(x, y float64) float64 {
		u, v := (x-40000)/1000, (y-15000)/1000
		return 1000 + 3*u - 2*v + 0.4*u*u - 0.1*u*v + 0.25*v*v
	}
	var pts []FocusPoint
	for _, p := range focusPointsIn(Point{40000, 15000}, 6500, 9) {
		pts = append(pts, FocusPoint{p.X, p.Y, surf(p.X, p.Y)})
	}
	m, err := FitFocusMap(pts)
	if err != nil {
		t.Fatal(err)
	}
	if m.Terms() != 6 {
		t.Fatalf("fitted %d terms from 9 points, want 6", m.Terms())
	}
	for _, p := range []Point{{34000, 10000}, {46000, 20000}, {40000, 15000}} {
		// The light ridge (focus.go) moves a well-spread fit by
		// hundredths of a micrometre.
		if got, want := m.Z(p.X, p.Y), surf(p.X, p.Y); math.Abs(got-want) > 0.05 {
			t.Errorf("Z(%v) = %.6f, want %.6f", p, got, want)
		}
	}
	// Fewer points fall back to a plane, then a constant.
	if m, err := FitFocusMap(pts[:3]); err != nil || m.Terms() != 3 {
		t.Errorf("3 points: terms %v, err %v; want a plane", m.Terms(), err)
	}
	if m, err := FitFocusMap(pts[:1]); err != nil || m.Terms() != 1 || m.Z(0, 0) != pts[0].Z {
		t.Errorf("1 point: want a constant at %.1f", pts[0].Z)
	}
	if _, err := FitFocusMap(nil); err == nil {
		t.Error("no points accepted")
	}
	// Collinear points cannot define a plane: the fit stays flat across
	// their line rather than extrapolating nonsense.
	line := []FocusPoint{{0, 0, 1}, {1000, 0, 2}, {2000, 0, 3}}
	m, err = FitFocusMap(line)
	if err != nil {
		t.Fatalf("collinear points: %v", err)
	}
	for _, y := range []float64{-5000, 5000} {
		if z := m.Z(1000, y); math.Abs(z-2) > 0.1 {
			t.Errorf("collinear points: Z(1000, %.0f) = %.2f, want 2 (flat across the line)", y, z)
		}
	}
}

func TestPeakOf(t *testing.T) {
	zs := []float64{0, 3, 6, 9, 12, 15, 18}
	curve := func(peak float64) []float64 {
		s := make([]float64, len(zs))
		for i, z := range zs {
			s[i] = 10 + 100/(1+(z-peak)*(z-peak)/9)
		}
		return s
	}
	z, err := peakOf(zs, curve(8))
	if err != nil || math.Abs(z-8) > 1 {
		t.Errorf("peak at 8: got %.2f, %v", z, err)
	}
	if _, err := peakOf(zs, curve(-20)); err == nil {
		t.Error("a maximum at the sweep's end was accepted as a peak")
	}
	flat := []float64{10, 10.1, 10.2, 10.1, 10, 10, 10}
	if _, err := peakOf(zs, flat); err == nil {
		t.Error("a flat curve was accepted as a peak")
	}
}
