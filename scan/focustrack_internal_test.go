package scan

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFocusTrackerFollowsResidual scans serpentine rows (the sim-fly
// tile steps) over a focus surface that the map misses by a smooth wave
// of 1.8 µm, with the strips' sharpness from the Gaussian model over a
// noise floor and 2 % measurement noise, and checks that the tracked
// focus error (dither included) is well under the map's own, and that
// strips of bare glass are left out.
func TestFocusTrackerFollowsResidual(t *testing.T) {
	const (
		sx, sy = 576.0, 432.0 // µm between frames and rows
		w2     = 2.0          // µm²
		floor  = 8.0
		dither = 0.34
	)
	resid := func(x, y float64) float64 {
		return 1.8*math.Sin(2*math.Pi*x/6000+0.3)*math.Sin(2*math.Pi*y/6000+1) + 0.3
	}
	rng := rand.New(rand.NewPCG(1, 2))
	sharp := func(defocus, content float64) float64 {
		return (content*math.Exp(-defocus*defocus/(2*w2)) + floor) * (1 + 0.02*rng.NormFloat64())
	}
	tr := newFocusTracker(dither, w2)
	var ssTrack, ssMap float64
	n := 0
	for row := range 30 {
		y := float64(row) * sy
		tr.startRow()
		var pu, ps, px float64
		for k := range 22 {
			x := float64(k) * sx
			if row%2 == 1 {
				x = 21*sx - x
			}
			c, d := tr.next(x)
			u := c + d // µm above the map
			content := 200.0
			if k == 0 {
				content = 0 // bare glass at the spot's edge
			}
			f := resid(x, y)
			if k > 0 {
				tr.observe(px, pu, ps, x, u, sharp(u-f, content))
			}
			pu, ps, px = u, sharp(u-f, content), x
			if row > 0 {
				ssTrack += (u - f) * (u - f)
				ssMap += f * f
				n++
			}
		}
	}
	track, mapOnly := math.Sqrt(ssTrack/float64(n)), math.Sqrt(ssMap/float64(n))
	t.Logf("focus error RMS: map alone %.2f µm, tracked %.2f µm (%d estimates, %d skipped)", mapOnly, track, tr.used, tr.skipped)
	if !(track < 0.8*mapOnly) {
		t.Errorf("tracked error %.2f µm against the map's %.2f µm", track, mapOnly)
	}
	if tr.used == 0 || tr.skipped < 30 {
		t.Errorf("estimates used %d, skipped %d: each row's glass pair should be skipped, tissue used", tr.used, tr.skipped)
	}
}

func TestStripSharpness(t *testing.T) {
	s := &strip{w: 20, h: 2, g: make([]uint8, 40)}
	if v := stripSharpness(s, 2); v != 0 {
		t.Errorf("flat strip: %v", v)
	}
	for i := range s.g {
		if (i%20)%2 == 0 {
			s.g[i] = 10
		}
	}
	// Columns two apart are equal: Brenner's gradient is blind to a
	// period of 2.
	if v := stripSharpness(s, 2); v != 0 {
		t.Errorf("period-2 strip: %v", v)
	}
	for i := range s.g {
		s.g[i] = uint8(i % 20 * 3)
	}
	if v := stripSharpness(s, 2); v != 36 {
		t.Errorf("ramp of 3 per column: %v, want 36", v)
	}
}
