package classify

import (
	"math"
	"testing"
)

func paintDisc(t *testing.T, tile []uint8, stride int, x, y, r float64, rgb [3]uint8) {
	t.Helper()
	for yy := int(y - r - 1); yy <= int(y+r+1); yy++ {
		for xx := int(x - r - 1); xx <= int(x+r+1); xx++ {
			if (float64(xx)-x)*(float64(xx)-x)+(float64(yy)-y)*(float64(yy)-y) <= r*r {
				o := yy*stride + 4*xx
				tile[o], tile[o+1], tile[o+2] = rgb[0], rgb[1], rgb[2]
			}
		}
	}
}

// TestDetectRejectsSpeckOnGlass: a dark nucleus-sized speck on bare glass
// (no cytoplasm around it) is not a squamous nucleus; the same speck inside
// cytoplasm is.
func TestDetectRejectsSpeckOnGlass(t *testing.T) {
	img := synthTile(640, 480, []blob{{x: 160, y: 240, rx: 10, ry: 10}}, 11)
	paintDisc(t, img.Pix, img.Stride, 480, 240, 10, [3]uint8{95, 75, 140})
	ns := NewDetector(DetectOptions{PixelUM: 0.25}).Detect(img)
	if len(ns) != 1 || math.Hypot(ns[0].X-160, ns[0].Y-240) > 3 {
		t.Fatalf("want only the nucleus in cytoplasm at (160,240), got %+v", ns)
	}
	// With the surround test (and the object filter, which also drops the
	// speck) disabled the speck is found too.
	if ns := NewDetector(DetectOptions{PixelUM: 0.25, MinSurroundOD: -1, NoObjectFilter: true}).Detect(img); len(ns) != 2 {
		t.Fatalf("surround test off: %d detections, want 2", len(ns))
	}
}

// TestDetectSplitTouching: two touching nuclei come apart with the
// splitter on (their centres within 3 px), and are one object with it off.
func TestDetectSplitTouching(t *testing.T) {
	cells := []blob{{x: 300, y: 240, rx: 16, ry: 16}, {x: 330, y: 240, rx: 16, ry: 16}}
	img := synthTile(640, 480, cells, 12)
	// A darker core in each nucleus (chromatin), so the re-threshold finds
	// two cores across the neck.
	paintDisc(t, img.Pix, img.Stride, 296, 240, 9, [3]uint8{60, 45, 110})
	paintDisc(t, img.Pix, img.Stride, 334, 240, 9, [3]uint8{60, 45, 110})
	off := NewDetector(DetectOptions{PixelUM: 0.25}).Detect(img)
	if len(off) != 1 {
		t.Fatalf("splitter off: %d objects, want 1 merged", len(off))
	}
	on := NewDetector(DetectOptions{PixelUM: 0.25, SplitCircularity: 0.85}).Detect(img)
	if len(on) != 2 {
		t.Fatalf("splitter on: %d objects, want 2: %+v", len(on), on)
	}
	for _, c := range cells {
		ok := false
		for _, n := range on {
			if math.Hypot(n.X-c.x, n.Y-c.y) < 4 {
				ok = true
			}
		}
		if !ok {
			t.Errorf("no split nucleus near (%.0f,%.0f): %+v", c.x, c.y, on)
		}
	}
}

// TestDetectAcrossPixelSizes: the same tile seen at 0.25 and (rescaled) at
// 0.5 µm/px gives the same nuclei with the same areas in µm².
func TestDetectAcrossPixelSizes(t *testing.T) {
	img := synthTile(820, 520, synthCells, 1)
	fine := append([]Nucleus(nil), NewDetector(DetectOptions{PixelUM: 0.25}).Detect(img)...)
	coarse := NewDetector(DetectOptions{PixelUM: 0.5}).Detect(Rescale(img, 0.25, 0.5))
	if len(fine) != len(synthCells) || len(coarse) != len(fine) {
		t.Fatalf("%d nuclei at 0.25 µm/px, %d at 0.5, want %d", len(fine), len(coarse), len(synthCells))
	}
	for _, f := range fine {
		found := false
		for _, c := range coarse {
			// (u+0.5)/2-0.5 maps a 0.25 µm/px coordinate to 0.5 µm/px.
			if math.Hypot((f.X+0.5)/2-0.5-c.X, (f.Y+0.5)/2-0.5-c.Y) < 2 {
				found = true
				if r := c.AreaUM2 / f.AreaUM2; r < 0.8 || r > 1.25 {
					t.Errorf("nucleus at (%.0f,%.0f): %.1f µm² at 0.25, %.1f at 0.5", f.X, f.Y, f.AreaUM2, c.AreaUM2)
				}
			}
		}
		if !found {
			t.Errorf("nucleus at (%.0f,%.0f) not found at 0.5 µm/px", f.X, f.Y)
		}
	}
}

// TestModelResamplesWindow: classifying a nucleus on a tile at 0.25 µm/px
// (the model resamples to its 0.5) and on the same tile rescaled to 0.5
// gives close probabilities.
func TestModelResamplesWindow(t *testing.T) {
	m, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	img := synthTile(820, 520, synthCells, 1)
	coarse := Rescale(img, 0.25, 0.5)
	fine := append([]Nucleus(nil), NewDetector(DetectOptions{PixelUM: 0.25}).Detect(img)...)
	cn := NewDetector(DetectOptions{PixelUM: 0.5}).Detect(coarse)
	for _, f := range fine {
		for _, c := range cn {
			if math.Hypot((f.X+0.5)/2-0.5-c.X, (f.Y+0.5)/2-0.5-c.Y) > 2 {
				continue
			}
			pf, pc := m.Classify(img, f), m.Classify(coarse, c)
			if d := math.Abs(float64(HighGradeProb(pf.Probs) - HighGradeProb(pc.Probs))); d > 0.25 {
				t.Errorf("nucleus (%.0f,%.0f): P(high) %.2f at 0.25 µm/px, %.2f at 0.5", f.X, f.Y, HighGradeProb(pf.Probs), HighGradeProb(pc.Probs))
			}
		}
	}
}

// FuzzLoadModel: arbitrary weights files give an error or a usable model,
// never a panic.
func FuzzLoadModel(f *testing.F) {
	f.Add(defaultWeights)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"pixel_um":0.5,"window_um":25,"mean":[1],"std":[1],"weights":[[1]]}`))
	f.Add([]byte(`{"pixel_um":0.5,"window_um":25,"folds":[{"fields":["a"],"mean":[],"std":[],"weights":[]}]}`))
	img := synthTile(100, 100, []blob{{x: 50, y: 50, rx: 10, ry: 9}}, 3)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := LoadModel(data)
		if err != nil {
			return
		}
		c := m.Classify(img, Nucleus{X: 50, Y: 50, PixelUM: 0.25, AreaPx: 300})
		m.PredictHeldOut("a", Features{})
		var s float32
		for _, p := range c.Probs {
			s += p
		}
		if math.Abs(float64(s)-1) > 1e-3 && !math.IsNaN(float64(s)) {
			t.Fatalf("probabilities sum to %v", s)
		}
	})
}
