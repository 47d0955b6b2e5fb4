package classify

import (
	"image"
	"math"
	"math/rand"
	"testing"
)

type blob struct {
	x, y, rx, ry, angle float64
}

// synthTile draws a light background, pale cytoplasm polygons and dark
// purple elliptical nuclei with noise. Sizes are in px.
func synthTile(w, h int, cells []blob, seed int64) *image.RGBA {
	rng := rand.New(rand.NewSource(seed))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	set := func(x, y int, r, g, b float64) {
		n := rng.NormFloat64() * 4
		i := img.PixOffset(x, y)
		img.Pix[i] = clamp8(r + n)
		img.Pix[i+1] = clamp8(g + n)
		img.Pix[i+2] = clamp8(b + n)
		img.Pix[i+3] = 255
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			set(x, y, 236, 238, 242)
		}
	}
	for _, c := range cells {
		// Cytoplasm: irregular polygon ~4x the nucleus radius.
		R := 4 * math.Max(c.rx, c.ry)
		const k = 7
		var poly [k][2]float64
		for i := range poly {
			a := 2 * math.Pi * float64(i) / k
			r := R * (0.8 + 0.4*rng.Float64())
			poly[i] = [2]float64{c.x + r*math.Cos(a), c.y + r*math.Sin(a)}
		}
		for y := int(c.y - 1.3*R); y <= int(c.y+1.3*R); y++ {
			for x := int(c.x - 1.3*R); x <= int(c.x+1.3*R); x++ {
				if x >= 0 && y >= 0 && x < w && y < h && inPoly(float64(x), float64(y), poly[:]) {
					set(x, y, 190, 205, 215)
				}
			}
		}
	}
	for _, c := range cells {
		ca, sa := math.Cos(c.angle), math.Sin(c.angle)
		m := math.Max(c.rx, c.ry) + 1
		for y := int(c.y - m); y <= int(c.y+m); y++ {
			for x := int(c.x - m); x <= int(c.x+m); x++ {
				dx, dy := float64(x)-c.x, float64(y)-c.y
				u, v := (dx*ca+dy*sa)/c.rx, (-dx*sa+dy*ca)/c.ry
				if u*u+v*v <= 1 && x >= 0 && y >= 0 && x < w && y < h {
					set(x, y, 95, 75, 140)
				}
			}
		}
	}
	return img
}

func clamp8(v float64) uint8 { return uint8(math.Max(0, math.Min(255, math.Round(v)))) }

func inPoly(x, y float64, p [][2]float64) bool {
	in := false
	for i, j := 0, len(p)-1; i < len(p); j, i = i, i+1 {
		if (p[i][1] > y) != (p[j][1] > y) && x < (p[j][0]-p[i][0])*(y-p[i][1])/(p[j][1]-p[i][1])+p[i][0] {
			in = !in
		}
	}
	return in
}

var synthCells = []blob{
	{x: 120, y: 110, rx: 12, ry: 10, angle: 0.3},  // normal intermediate
	{x: 380, y: 120, rx: 11, ry: 11},              // normal
	{x: 640, y: 140, rx: 13, ry: 9, angle: 1.2},   // normal
	{x: 150, y: 380, rx: 26, ry: 20, angle: 0.7},  // enlarged (dyskaryotic)
	{x: 450, y: 400, rx: 30, ry: 24, angle: -0.4}, // enlarged
	{x: 700, y: 390, rx: 10, ry: 10},              // normal
}

func TestDetectSynthetic(t *testing.T) {
	img := synthTile(820, 520, synthCells, 1)
	d := NewDetector(DetectOptions{PixelUM: 0.25})
	ns := d.Detect(img)
	if len(ns) != len(synthCells) {
		t.Fatalf("found %d nuclei, want %d: %+v", len(ns), len(synthCells), ns)
	}
	for _, c := range synthCells {
		var got *Nucleus
		for i := range ns {
			if math.Hypot(ns[i].X-c.x, ns[i].Y-c.y) < 3 {
				got = &ns[i]
			}
		}
		if got == nil {
			t.Errorf("nucleus at (%.0f,%.0f) not found within 3 px", c.x, c.y)
			continue
		}
		want := math.Pi * c.rx * c.ry
		if r := float64(got.AreaPx) / want; r < 0.8 || r > 1.2 {
			t.Errorf("nucleus at (%.0f,%.0f): area %d px, want %.0f (±20%%)", c.x, c.y, got.AreaPx, want)
		}
		if math.Abs(got.AreaUM2-float64(got.AreaPx)*0.0625) > 1e-6 {
			t.Errorf("AreaUM2 %v inconsistent with %d px", got.AreaUM2, got.AreaPx)
		}
		if got.Circularity < 0.75 || got.Circularity > 1.25 {
			t.Errorf("circularity %.2f for an ellipse", got.Circularity)
		}
	}
}

func TestDetectBlank(t *testing.T) {
	img := synthTile(640, 480, nil, 2)
	if ns := NewDetector(DetectOptions{}).Detect(img); len(ns) != 0 {
		t.Fatalf("clean background: %d detections", len(ns))
	}
	// Cytoplasm only.
	img = synthTile(640, 480, []blob{{x: 320, y: 240, rx: 0.5, ry: 0.5}}, 3)
	if ns := NewDetector(DetectOptions{}).Detect(img); len(ns) != 0 {
		t.Fatalf("cytoplasm without nucleus: %d detections %+v", len(ns), ns)
	}
}

func TestDetectSubImage(t *testing.T) {
	img := synthTile(820, 520, synthCells, 1)
	sub := img.SubImage(image.Rect(300, 50, 820, 520)).(*image.RGBA)
	ns := NewDetector(DetectOptions{}).Detect(sub)
	found := false
	for _, n := range ns {
		if math.Hypot(n.X-450, n.Y-400) < 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("sub-image coordinates wrong: %+v", ns)
	}
}

func TestSuspicionSynthetic(t *testing.T) {
	m, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	img := synthTile(820, 520, synthCells, 1)
	a := NewAnalyzer(DetectOptions{PixelUM: 0.25}, m)
	cells := a.Analyze(img)
	var small, big []float32
	for _, c := range cells {
		t.Logf("cell (%.0f,%.0f) area %.1f µm² class %v score %.3f probs %.2f", c.X, c.Y, c.AreaUM2, c.Class, c.Score, c.Probs)
		if c.AreaUM2 > 80 {
			big = append(big, c.Score)
		} else {
			small = append(small, c.Score)
		}
		if (c.Crop != nil) != (c.Score >= a.CropMinScore) {
			t.Errorf("crop kept=%v with score %.3f", c.Crop != nil, c.Score)
		}
		var s float32
		for _, p := range c.Probs {
			s += p
		}
		if math.Abs(float64(s)-1) > 1e-4 {
			t.Errorf("probs sum %v", s)
		}
	}
	if len(big) != 2 || len(small) != 4 {
		t.Fatalf("got %d big and %d small cells", len(big), len(small))
	}
	for _, b := range big {
		for _, s := range small {
			if b <= s {
				t.Errorf("big nucleus score %.3f <= small nucleus score %.3f", b, s)
			}
		}
	}
}

func TestModelEmbedded(t *testing.T) {
	m, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != "mlp-cnn-3" || !m.HasCNN() || len(m.SHA256) != 64 {
		t.Fatalf("version %q sha %q", m.Version, m.SHA256)
	}
}

func TestParseClass(t *testing.T) {
	for c := Class(0); c < NumClasses; c++ {
		got, err := ParseClass(c.String())
		if err != nil || got != c {
			t.Errorf("ParseClass(%q) = %v, %v", c.String(), got, err)
		}
	}
	if c, err := ParseClass("Negative for intraepithelial lesion"); err != nil || c != NILM {
		t.Errorf("CRIC NILM: %v %v", c, err)
	}
	if _, err := ParseClass("bogus"); err == nil {
		t.Error("bogus accepted")
	}
}

func TestCropAround(t *testing.T) {
	img := synthTile(100, 80, nil, 4)
	c := CropAround(img, 2, 2, 16)
	if c.Bounds().Dx() != 16 || c.Pix[0] != 255 {
		t.Fatalf("crop outside image not white")
	}
	if &c.Pix[0] == &img.Pix[0] {
		t.Fatal("crop shares pixels")
	}
}

func BenchmarkDetect(b *testing.B) {
	cells := []blob{}
	rng := rand.New(rand.NewSource(5))
	for range 60 {
		cells = append(cells, blob{x: rng.Float64() * 1280, y: rng.Float64() * 960, rx: 8 + rng.Float64()*10, ry: 8 + rng.Float64()*8, angle: rng.Float64()})
	}
	img := synthTile(1280, 960, cells, 5)
	d := NewDetector(DetectOptions{})
	d.Detect(img)
	b.SetBytes(int64(len(img.Pix)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d.Detect(img)
	}
	b.ReportMetric(float64(1280*960)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MP/s")
}

func TestDetectZeroAllocs(t *testing.T) {
	img := synthTile(640, 480, synthCells, 6)
	d := NewDetector(DetectOptions{})
	d.Detect(img)
	if n := testing.AllocsPerRun(5, func() { d.Detect(img) }); n != 0 {
		t.Fatalf("Detect allocates %.0f times per tile in steady state", n)
	}
}

func BenchmarkClassify(b *testing.B) {
	m, err := DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	img := synthTile(820, 520, synthCells, 1)
	ns := append([]Nucleus(nil), NewDetector(DetectOptions{}).Detect(img)...)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		m.Classify(img, ns[i%len(ns)])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cells/s")
}
