package scan

import (
	"math"
	"math/rand/v2"
	"testing"

	"papscan/hal/sim/slide"
)

// TestFocusMapDensity measures what the focus map's point count buys: on
// simulated focal surfaces (tilt, bowl and waviness of 13 mm SurePath
// spots, eight seeds), maps fitted from n points measured with 0.25 µm of
// autofocus noise, against the true surface at the tile centres of a
// 640x480 µm field plan. It asserts only that more points never make the
// map much worse; the figures are logged (-v) for choosing focus_points.
func TestFocusMapDensity(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	const dia = 13000.0
	var prev float64
	for _, n := range []int{5, 9, 16, 25, 40, 61} {
		var ss float64
		var cnt int
		for seed := range 8 {
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
				ss += d * d
				cnt++
			}
		}
		rms := math.Sqrt(ss / float64(cnt))
		t.Logf("focus_points %2d (%d on the grid): map error %.2f µm RMS over the tiles", n, len(focusPointsIn(Point{}, dia/2, n)), rms)
		if prev > 0 && rms > 1.5*prev {
			t.Errorf("%d points: %.2f µm, worse than fewer points (%.2f)", n, rms, prev)
		}
		prev = rms
	}
}
