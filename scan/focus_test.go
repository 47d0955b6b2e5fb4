package scan

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func gridPoints(n int, span float64, z func(x, y float64) float64) []FocusPoint {
	var pts []FocusPoint
	for j := range n {
		for i := range n {
			x := 40000 + (float64(i)/float64(n-1)*2-1)*span
			y := 15000 + (float64(j)/float64(n-1)*2-1)*span
			pts = append(pts, FocusPoint{x, y, z(x, y)})
		}
	}
	return pts
}

func TestFitRobustRejectsImplausiblePoints(t *testing.T) {
	plane := func(x, y float64) float64 { return 1000 + 1.2*(x-40000)/1000 - 0.8*(y-15000)/1000 }
	rng := rand.New(rand.NewPCG(1, 2))
	pts := gridPoints(5, 4000, func(x, y float64) float64 { return plane(x, y) + 0.2*rng.NormFloat64() })
	// Dust on the coverslip: 25 µm above the specimen at one point, and a
	// 12 µm miss (no slope violation at 2 mm spacing, but far off the fit).
	pts[7].Z += 25
	pts[18].Z -= 12
	m, kept, rejected := FitRobust(pts, 3*3.0)
	if m == nil {
		t.Fatal("no map")
	}
	if len(rejected) != 2 || len(kept) != len(pts)-2 {
		t.Fatalf("rejected %v, want the two bad points", rejected)
	}
	for _, p := range rejected {
		if p != pts[7] && p != pts[18] {
			t.Errorf("rejected a good point %+v", p)
		}
	}
	if e := math.Abs(m.Z(40000, 15000) - plane(40000, 15000)); e > 0.5 {
		t.Errorf("centre error %.2f µm after rejection", e)
	}
	// Good points only: nothing rejected.
	if _, _, rej := FitRobust(gridPoints(4, 4000, plane), 9); len(rej) != 0 {
		t.Errorf("rejected %v from a clean plane", rej)
	}
	if m, _, _ := FitRobust(nil, 9); m != nil {
		t.Error("a map from no points")
	}
}

func TestFocusMapFollowsWaviness(t *testing.T) {
	// A tilted bowl with a waviness of 1.5 µm and a 4 mm period, as the
	// simulator's slides have: the residual correction must beat the bare
	// quadratic between the points.
	truth := func(x, y float64) float64 {
		u, v := (x-40000)/1000, (y-15000)/1000
		return 1000 + 0.8*u - 0.5*v + 0.2*u*u + 0.15*v*v + 1.5*math.Sin(2*math.Pi*u/4+0.3)*math.Sin(2*math.Pi*v/4.5+1)
	}
	pts := gridPoints(7, 4500, truth)
	m, _, _ := FitRobust(pts, 9)
	bare, _ := FitFocusMap(pts)
	var eMap, eBare float64
	n := 0
	for x := 36000.0; x <= 44000; x += 250 {
		for y := 11000.0; y <= 19000; y += 250 {
			eMap += math.Pow(m.Z(x, y)-truth(x, y), 2)
			eBare += math.Pow(bare.Z(x, y)-truth(x, y), 2)
			n++
		}
	}
	eMap, eBare = math.Sqrt(eMap/float64(n)), math.Sqrt(eBare/float64(n))
	t.Logf("rms error: quadratic %.2f µm, with residual correction %.2f µm", eBare, eMap)
	if !(eMap < 0.9*eBare) {
		t.Errorf("residual correction %.2f µm does not improve on the quadratic %.2f µm", eMap, eBare)
	}
}

func TestGaussPeak(t *testing.T) {
	zs := []float64{10, 11.5, 13, 14.5, 16}
	s := make([]float64, len(zs))
	for i, z := range zs {
		s[i] = 50 * math.Exp(-(z-13.4)*(z-13.4)/(2*2.5*2.5))
	}
	z, ok := gaussPeak(zs, s)
	if !ok || math.Abs(z-13.4) > 0.01 {
		t.Errorf("gaussPeak = %.3f, %v; want 13.4", z, ok)
	}
	// A valley or a non-positive sample is no peak.
	if _, ok := gaussPeak(zs, []float64{5, 3, 2, 3, 5}); ok {
		t.Error("peak found in a valley")
	}
	if _, ok := gaussPeak(zs, []float64{5, 0, 2, 3, 5}); ok {
		t.Error("peak found with a zero sample")
	}
}

func TestMergePlanesTakesTheSharpPixels(t *testing.T) {
	// Two planes of a checkerboard: the left half sharp in the first, the
	// right half in the second (flat grey where out of focus).
	const w, h = 64, 32
	mk := func(sharpLeft bool) *image.RGBA {
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				v := uint8(128)
				if (x < w/2) == sharpLeft {
					v = uint8(60 + 140*((x/2+y/2)%2))
				}
				img.SetRGBA(x, y, color.RGBA{v, v, v, 255})
			}
		}
		return img
	}
	a, b := mk(true), mk(false)
	m := MergePlanes([]*image.RGBA{a, b})
	if m != a {
		t.Fatal("merge is not into the first plane")
	}
	sharp := mk(true)
	for y := 3; y < h-3; y++ {
		for x := 3; x < w-3; x++ {
			if x > w/2-3 && x < w/2+3 {
				continue
			}
			want := sharp.RGBAAt(x, y).G
			if x >= w/2 {
				want = b.RGBAAt(x, y).G
			}
			if got := m.RGBAAt(x, y).G; got != want {
				t.Fatalf("pixel (%d,%d) = %d, want %d from the sharp plane", x, y, got, want)
			}
		}
	}
}

func TestMotionModel(t *testing.T) {
	a := AxisModel{Speed: 40000, Accel: 400000, Settle: 10 * time.Millisecond}
	// Triangular: 576 µm → 2·sqrt(576/400000) s = 75.9 ms.
	if got := a.MoveTime(576); math.Abs(got.Seconds()-0.0759) > 0.0005 {
		t.Errorf("short move %v", got)
	}
	// Trapezoidal: 20 mm → 40000/400000 + 20000/40000 = 0.6 s.
	if got := a.MoveTime(-20000); math.Abs(got.Seconds()-0.6) > 1e-6 {
		t.Errorf("long move %v", got)
	}
	if (AxisModel{}).MoveTime(100) != 0 || a.MoveTime(0) != 0 {
		t.Error("unknown model or no move takes time")
	}
	m := MotionModel{X: a, Y: a, Z: AxisModel{Speed: 1000, Accel: 20000, Settle: 5 * time.Millisecond},
		Exposure: 2 * time.Millisecond, FrameInterval: 100 * time.Millisecond}
	tiles := []Point{{576, 0}, {1152, 0}}
	// Frame-rate bound: each tile takes the frame interval.
	if got := m.LowerBound(Point{}, 0, tiles, []float64{0, 0}, 1, 0); got != 200*time.Millisecond {
		t.Errorf("frame-bound plan %v, want 200ms", got)
	}
	m.FrameInterval = 0
	want := 2 * (a.MoveTime(576) + a.Settle + m.Exposure)
	if got := m.LowerBound(Point{}, 0, tiles, []float64{0, 0}, 1, 0); got != want {
		t.Errorf("motion-bound plan %v, want %v", got, want)
	}
}
