package scan

import (
	"math"
	"math/rand/v2"
	"testing"

	"papscan/hal/sim/slide"
)

// TestFocusMapDensity measures what the focus map's point count buys: on
// simulated focal surfaces (tilt, bowl and waviness of 13 mm SurePath
// spots, 40 seeds), maps fitted from n points measured with 0.25 µm of
// autofocus noise, against the true surface at the tile centres of a
// 640x480 µm field plan. It asserts only that more points never make the
// map much worse; the figures are logged (-v) for choosing focus_points,
// with how many of the slides a map of n points leaves above DOF/4.
func TestFocusMapDensity(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	const dia = 13000.0
	const dof4 = 0.86 // DOF/4 at NA 0.4, µm
	var prev float64
	for _, n := range []int{5, 9, 16, 25, 40, 61, 100} {
		var ss float64
		var cnt, over int
		for seed := range 40 {
			var sss float64
			var scnt int
			sl := slide.Synthetic(slide.Spec{ID: "F", Seed: int64(1000 + seed), SpotDiameterUM: dia, CellsPerMM2: 0.01, FocusBaseUM: 1000})
			cx, cy, _ := sl.Spot()
			c := Point{cx, cy}
			rng := rand.New(rand.NewPCG(uint64(seed), 9))
			var pts []FocusPoint
			for _, p := range focusPointsIn(c, dia/2, n) {
				pts = append(pts, FocusPoint{p.X, p.Y, sl.FocusZ(p.X, p.Y) + 0.25*rng.NormFloat64()})
			}
			m, _, _ := FitRobust(pts, 9)
			if m == nil {
				t.Fatalf("n=%d seed %d: no map", n, seed)
			}
			plan, err := PlanTiles(c, dia/2, 640, 480, 0.1)
			if err != nil {
				t.Fatal(err)
			}
			for _, tl := range plan.Tiles {
				d := m.Z(tl.X, tl.Y) - sl.FocusZ(tl.X, tl.Y)
				sss += d * d
				scnt++
			}
			ss += sss
			cnt += scnt
			if math.Sqrt(sss/float64(scnt)) > dof4 {
				over++
			}
		}
		rms := math.Sqrt(ss / float64(cnt))
		t.Logf("focus_points %3d (%3d on the grid): map error %.2f µm RMS over the tiles; %d of 40 slides above DOF/4", n, len(focusPointsIn(Point{}, dia/2, n)), rms, over)
		if prev > 0 && rms > 1.5*prev {
			t.Errorf("%d points: %.2f µm, worse than fewer points (%.2f)", n, rms, prev)
		}
		prev = rms
	}
}
