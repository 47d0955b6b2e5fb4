package classify

import (
	"image"
	"math"
	"testing"
)

// tint multiplies each channel of img by gains (a lamp or white balance of
// another colour), rounding to 8 bits.
func tint(img *image.RGBA, gains [3]float64) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	for i := 0; i < len(img.Pix); i += 4 {
		for c := range 3 {
			out.Pix[i+c] = clamp8(float64(img.Pix[i+c]) * gains[c])
		}
		out.Pix[i+3] = img.Pix[i+3]
	}
	return out
}

func TestEstimateGlass(t *testing.T) {
	img := synthTile(820, 520, synthCells, 1) // glass (236, 238, 242) ± noise
	g, ok := EstimateGlass(img)
	if !ok {
		t.Fatal("no glass found on a tile that is mostly glass")
	}
	// The brightest 2 % of noisy glass lie a little above its mean.
	for c, want := range [3]float64{236, 238, 242} {
		if g[c] < want || g[c] > want+12 {
			t.Errorf("glass channel %d = %.1f, want %.0f..%.0f", c, g[c], want, want+12)
		}
	}
	yellow := tint(img, [3]float64{1, 1, 0.9})
	gy, ok := EstimateGlass(yellow)
	if !ok || math.Abs(gy[2]-0.9*g[2]) > 2 || math.Abs(gy[0]-g[0]) > 1 {
		t.Errorf("yellow tile's glass %.1f (ok %v), want blue at 0.9 × %.1f", gy, ok, g[2])
	}
	// A tile covered by a dense sheet shows no glass.
	dark := tint(img, [3]float64{0.6, 0.6, 0.6})
	if g, ok := EstimateGlass(dark); ok {
		t.Errorf("dark tile: glass %.1f accepted (every channel below %d)", g, MinGlass)
	}
	if _, ok := EstimateGlass(image.NewRGBA(image.Rect(0, 0, 0, 0))); ok {
		t.Error("empty image: glass accepted")
	}
}

func TestWhiteBalanceMakesGlassWhite(t *testing.T) {
	img := synthTile(200, 120, nil, 2)
	g, _ := EstimateGlass(img)
	out := WhiteBalance(nil, img, g)
	g2, _ := EstimateGlass(out)
	for c := range 3 {
		if g2[c] < 252 {
			t.Errorf("balanced glass channel %d = %.1f, want ~255", c, g2[c])
		}
	}
	// The buffer is reused when it is large enough.
	again := WhiteBalance(out, img, g)
	if &again.Pix[0] != &out.Pix[0] {
		t.Error("WhiteBalance allocated a new image for a buffer of the same size")
	}
	// Sub-images keep their bounds.
	sub := img.SubImage(image.Rect(10, 20, 60, 70)).(*image.RGBA)
	if b := WhiteBalance(nil, sub, g).Bounds(); b != sub.Bounds() {
		t.Errorf("bounds %v, want %v", b, sub.Bounds())
	}
}

// TestAnalyzerWhiteBalanceTintInvariant: a white-balancing model gives the
// same cells the same probabilities whatever the lamp's tint (up to 8-bit
// rounding; the same model on raw colours moves by several times more),
// and the gallery crops keep the camera's colours.
func TestAnalyzerWhiteBalanceTintInvariant(t *testing.T) {
	base, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	p := base.Params()
	p.WhiteBalance = true
	m, err := NewModel(p)
	if err != nil {
		t.Fatal(err)
	}
	if !m.WhiteBalances() || base.WhiteBalances() {
		t.Fatalf("WhiteBalances: %v / %v", m.WhiteBalances(), base.WhiteBalances())
	}
	img := synthTile(820, 520, synthCells, 1)
	yellow := tint(img, [3]float64{1, 0.98, 0.88})
	a := NewAnalyzer(DetectOptions{PixelUM: 0.25}, m)
	a.CropMinScore = 0
	ref := a.Analyze(img)
	got := a.Analyze(yellow)
	if len(ref) != len(got) || len(ref) != len(synthCells) {
		t.Fatalf("cells: %d untinted, %d tinted, want %d", len(ref), len(got), len(synthCells))
	}
	rawA := NewAnalyzer(DetectOptions{PixelUM: 0.25}, base)
	raw, rawY := rawA.Analyze(img), rawA.Analyze(yellow)
	var worst, worstRaw float64
	for i := range ref {
		for c := range NumClasses {
			worst = max(worst, math.Abs(float64(ref[i].Probs[c]-got[i].Probs[c])))
			worstRaw = max(worstRaw, math.Abs(float64(raw[i].Probs[c]-rawY[i].Probs[c])))
		}
		cx, cy := got[i].Crop.Rect.Dx()/2, got[i].Crop.Rect.Dy()/2
		if a, b := got[i].Crop.RGBAAt(cx, cy), yellow.RGBAAt(int(got[i].X+0.5), int(got[i].Y+0.5)); a != b {
			t.Errorf("cell %d: crop centre %v, camera pixel %v: the crop must keep the camera's colours", i, a, b)
		}
	}
	t.Logf("largest probability change under the tint: white-balanced %.4f, raw colours %.4f", worst, worstRaw)
	// 8-bit rounding (of the tint, then of the balance) and the glass
	// estimate on noisy glass leave a few hundredths.
	if worst > 0.05 || worst > worstRaw/2 {
		t.Errorf("white-balanced model: a tint moved a probability by %.3f (raw colours: %.3f)", worst, worstRaw)
	}
}
