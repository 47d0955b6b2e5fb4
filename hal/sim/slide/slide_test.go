package slide

import (
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"papscan/virtualslide"
)

func TestClassNames(t *testing.T) {
	want := []string{"NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC"}
	for i, c := range Classes() {
		if c.String() != want[i] {
			t.Errorf("class %d: got %q want %q", i, c, want[i])
		}
		p, err := ParseClass(want[i])
		if err != nil || p != c {
			t.Errorf("ParseClass(%q) = %v, %v", want[i], p, err)
		}
	}
	if c, err := ParseClass("Negative for intraepithelial lesion"); err != nil || c != NILM {
		t.Errorf("CRIC NILM name: %v, %v", c, err)
	}
	if _, err := ParseClass("AGC"); err == nil {
		t.Error("ParseClass accepted AGC")
	}
	if HSIL.Grade() != HighGrade || ASCUS.Grade() != LowGrade || NILM.Grade() != Negative {
		t.Error("grades wrong")
	}
	if OnlyASCH.Grade() != HighGrade || OnlyASCH.String() != "ASC-H" {
		t.Errorf("OnlyASCH: %v %v", OnlyASCH.Grade(), OnlyASCH)
	}
}

func TestCode128(t *testing.T) {
	pats := code128Patterns()
	for _, p := range pats[:106] {
		sum := 0
		for _, d := range p {
			sum += int(d - '0')
		}
		if sum != 11 {
			t.Fatalf("pattern %s sums to %d modules", p, sum)
		}
	}
	w := code128B("PAP-0001")
	total := 0
	for _, m := range w {
		total += m
	}
	// start + 8 characters + check + stop (13 modules).
	if want := 11*10 + 13; total != want {
		t.Errorf("PAP-0001: %d modules, want %d", total, want)
	}
	// Symbol after start B is 'P' (value 48): "313121".
	got := w[6:12]
	for i, d := range "313121" {
		if got[i] != int(d-'0') {
			t.Fatalf("first data symbol widths %v, want 313121", got)
		}
	}
}

func TestSyntheticSlide(t *testing.T) {
	s := Synthetic(Spec{ID: "PAP-0001", Seed: 7, Diagnosis: HighGrade})
	cx, cy, r := s.Spot()
	if cx != 40000 || cy != 12500 || r != 6500 {
		t.Fatalf("spot = %v %v %v", cx, cy, r)
	}
	counts := s.Count()
	if counts[NILM] < 5000 {
		t.Errorf("only %d squamous cells in a 13 mm spot", counts[NILM])
	}
	abn := len(s.Cells) - counts[NILM]
	if abn < 10 || abn > 40 {
		t.Errorf("%d abnormal cells, want 10..40", abn)
	}
	if s.Worst().Grade() != HighGrade {
		t.Errorf("worst class %v on a high-grade slide", s.Worst())
	}
	for _, c := range s.Cells {
		if math.Hypot(c.X-cx, c.Y-cy) > r+10 {
			t.Fatalf("cell at (%v, %v) outside the spot", c.X, c.Y)
		}
		if c.Class == NILM && (c.NucleusDiameter < 4 || c.NucleusDiameter > 11) {
			t.Fatalf("NILM nucleus %v µm", c.NucleusDiameter)
		}
		if c.Class == LSIL && c.NucleusDiameter < 13 {
			t.Fatalf("LSIL nucleus %v µm", c.NucleusDiameter)
		}
	}
	neg := Synthetic(Spec{ID: "N", Seed: 7, Spot: ThinPrep})
	if neg.Worst() != NILM {
		t.Errorf("negative slide has %v", neg.Worst())
	}
	if _, _, r := neg.Spot(); r != 10000 {
		t.Errorf("ThinPrep radius %v", r)
	}
	// Determinism.
	again := Synthetic(Spec{ID: "PAP-0001", Seed: 7, Diagnosis: HighGrade})
	if len(again.Cells) != len(s.Cells) || again.Cells[100] != s.Cells[100] || again.FocusZ(38000, 11000) != s.FocusZ(38000, 11000) {
		t.Error("same spec built different slides")
	}
}

func TestFocusSurface(t *testing.T) {
	s := Synthetic(Spec{ID: "F", Seed: 3, CellsPerMM2: 1, FocusBaseUM: 100})
	cx, cy, r := s.Spot()
	if z := s.FocusZ(cx, cy); math.Abs(z-100) > 5 {
		t.Errorf("focus at the spot centre %v, want about the base 100", z)
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for a := 0.0; a < 2*math.Pi; a += 0.1 {
		for _, f := range []float64{0, 0.5, 1} {
			z := s.FocusZ(cx+f*r*math.Cos(a), cy+f*r*math.Sin(a))
			lo, hi = math.Min(lo, z), math.Max(hi, z)
		}
	}
	if hi-lo < 8 || hi-lo > 100 {
		t.Errorf("focus excursion across the spot %.1f µm, want tens of µm", hi-lo)
	}
	// Smooth: neighbouring fields (0.5 mm apart) differ by a few µm at most.
	if d := math.Abs(s.FocusZ(cx+500, cy) - s.FocusZ(cx, cy)); d > 5 {
		t.Errorf("focus jumps %.1f µm over 0.5 mm", d)
	}
	flat := Synthetic(Spec{ID: "F", Seed: 3, CellsPerMM2: 1, FocusBaseUM: 5, FocusAmplitudeUM: -1})
	if flat.FocusZ(cx+3000, cy-2000) != 5 {
		t.Error("flat focus surface is not flat")
	}
}

func lum(img *image.RGBA, x, y int) float64 {
	o := img.PixOffset(x, y)
	return 0.299*float64(img.Pix[o]) + 0.587*float64(img.Pix[o+1]) + 0.114*float64(img.Pix[o+2])
}

// minLum is the darkest luminance within radius rad of (x, y).
func minLum(img *image.RGBA, x, y, rad int) float64 {
	m := 255.0
	b := img.Bounds()
	for j := y - rad; j <= y+rad; j++ {
		for i := x - rad; i <= x+rad; i++ {
			if image.Pt(i, j).In(b) && (i-x)*(i-x)+(j-y)*(j-y) <= rad*rad {
				m = math.Min(m, lum(img, i, j))
			}
		}
	}
	return m
}

func TestRenderNucleusAtCell(t *testing.T) {
	s := Synthetic(Spec{ID: "R", Seed: 11, Diagnosis: LowGrade})
	r := NewRenderer(RenderOptions{NoiseSigma: -1})
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	checked := 0
	for _, c := range s.Cells {
		if checked == 20 {
			break
		}
		// View centred 40 µm left and 30 µm above the nucleus: it must
		// appear at pixel (w/2 + 40/p, h/2 + 30/p).
		r.Render(s, img, c.X-40, c.Y-30, 0, nil)
		px, py := 320+int(40/DefaultPixelUM), 240+int(30/DefaultPixelUM)
		if l := lum(img, px, py); l > 140 {
			t.Errorf("%v nucleus (%.0f, %.0f): luminance %.0f at pixel (%d, %d), want dark", c.Class, c.X, c.Y, l, px, py)
		}
		checked++
	}
	// Off the slide's spot: clean glass.
	r.Render(s, img, 60000, 12500, 0, nil)
	if l := minLum(img, 320, 240, 100); l < 200 {
		t.Errorf("glass field has luminance %.0f", l)
	}
	// Nil slide: bright field.
	r.Render(nil, img, 0, 0, 0, nil)
	if o := img.PixOffset(10, 10); img.Pix[o] != GlassR || img.Pix[o+2] != GlassB {
		t.Errorf("empty field pixel %v", img.Pix[o:o+4])
	}
}

// laplacianVariance is the variance of the 4-neighbour Laplacian of the
// luminance: a standard focus measure.
func laplacianVariance(img *image.RGBA) float64 {
	b := img.Bounds()
	var sum, sum2, n float64
	for y := 1; y < b.Dy()-1; y++ {
		for x := 1; x < b.Dx()-1; x++ {
			l := 4*lum(img, x, y) - lum(img, x-1, y) - lum(img, x+1, y) - lum(img, x, y-1) - lum(img, x, y+1)
			sum += l
			sum2 += l * l
			n++
		}
	}
	m := sum / n
	return sum2/n - m*m
}

func TestDefocusReducesSharpness(t *testing.T) {
	s := Synthetic(Spec{ID: "D", Seed: 5, CellsPerMM2: 300})
	cx, cy, _ := s.Spot()
	img := image.NewRGBA(image.Rect(0, 0, 320, 240))
	// Without noise, sharpness falls strictly with |defocus| from focus
	// on, whichever side of focus, also well inside the depth of field
	// (1.5 µm by default).
	r := NewRenderer(RenderOptions{NoiseSigma: -1})
	r.Render(s, img, cx, cy, 0, nil)
	prev := laplacianVariance(img)
	focused := prev
	for _, d := range []float64{0.2, 0.4, 0.7, 1.5, 3, 6} {
		var v float64
		for _, sign := range []float64{1, -1} {
			r.Render(s, img, cx, cy, sign*d, nil)
			v = laplacianVariance(img)
			if v >= prev {
				t.Errorf("defocus %.1f µm: sharpness %.2f, not below %.2f", sign*d, v, prev)
			}
		}
		prev = v
	}
	// Beyond that the frame is nearly uniform and the measure sits at the
	// 8-bit quantisation floor, far below focus.
	for _, d := range []float64{12, 20, 40} {
		r.Render(s, img, cx, cy, d, nil)
		if v := laplacianVariance(img); v > focused/100 {
			t.Errorf("defocus %.0f µm: sharpness %.2f (focused %.1f)", d, v, focused)
		}
	}
	// With sensor noise the focused frame still stands out.
	rn := NewRenderer(RenderOptions{})
	rn.Render(s, img, cx, cy, 0, rand.New(rand.NewPCG(1, 1)))
	focused = laplacianVariance(img)
	rn.Render(s, img, cx, cy, 4, rand.New(rand.NewPCG(1, 1)))
	if blurred := laplacianVariance(img); blurred > focused/2 {
		t.Errorf("with noise: focused %.1f, 4 µm defocus %.1f", focused, blurred)
	}
	// The blur is continuous through focus: zero there, linear in |defocus|
	// with the geometric cone of the NA (0.22 µm per µm at NA 0.4).
	if sigma := r.Options().BlurSigmaUM(0); sigma != 0 {
		t.Errorf("blur at focus: %v", sigma)
	}
	na04 := RenderOptions{DOFUM: 0.55 / (0.4 * 0.4)}
	if a, b := na04.BlurSigmaUM(0.1), na04.BlurSigmaUM(-0.2); !(a > 0 && math.Abs(b-2*a) < 1e-12) {
		t.Errorf("blur at 0.1 and -0.2 µm: %v, %v: not linear", a, b)
	}
	if k := na04.BlurSigmaUM(1); math.Abs(k-0.218) > 0.002 {
		t.Errorf("blur per µm at NA 0.4: %.3f, want 0.218", k)
	}
}

func TestRenderDoesNotAllocate(t *testing.T) {
	s := Synthetic(Spec{ID: "A", Seed: 1, Diagnosis: HighGrade})
	r := NewRenderer(RenderOptions{})
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []float64{0, 10} {
		r.Render(s, img, 40000, 12500, d, rng)
		if a := testing.AllocsPerRun(5, func() { r.Render(s, img, 40000, 12500, d, rng) }); a != 0 {
			t.Errorf("defocus %v: %v allocations per frame", d, a)
		}
	}
}

func TestOverview(t *testing.T) {
	s := Synthetic(Spec{ID: "PAP-0042", Seed: 2, Diagnosis: LowGrade})
	img := s.RenderOverview(1500, 500)
	// Label (x < 20 mm = 400 px): dark ink present.
	dark := 0
	for y := range 500 {
		for x := range 400 {
			if lum(img, x, y) < 100 {
				dark++
			}
		}
	}
	if dark < 1000 {
		t.Errorf("label shows only %d dark pixels", dark)
	}
	// Spot (centre 800, 250; radius 130 px) darker than glass far from it.
	var spot, glass float64
	for y := 230; y < 270; y++ {
		for x := 780; x < 820; x++ {
			spot += lum(img, x, y)
			glass += lum(img, x+500, y-200)
		}
	}
	if spot >= glass*0.98 {
		t.Errorf("spot mean %.0f not darker than glass %.0f", spot/1600, glass/1600)
	}
	writePNG(t, "overview.png", img)
}

func writePNG(t *testing.T, name string, img image.Image) {
	dir := os.Getenv("PAPSCAN_SLIDE_PNG")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func TestWriteSamples(t *testing.T) {
	if os.Getenv("PAPSCAN_SLIDE_PNG") == "" {
		t.Skip("set PAPSCAN_SLIDE_PNG=dir to write sample frames")
	}
	s := Synthetic(Spec{ID: "PAP-0007", Seed: 9, Diagnosis: HighGrade})
	img := image.NewRGBA(image.Rect(0, 0, 1280, 960))
	for i, c := range s.Cells {
		if c.Class >= LSIL {
			s.Render(img, c.X, c.Y, 0.5, 0, rand.New(rand.NewPCG(1, 1)))
			writePNG(t, "cell_"+c.Class.String()+".png", img)
			_ = i
		}
	}
	s.Render(img, 40000, 12500, 0.5, 0, rand.New(rand.NewPCG(1, 1)))
	writePNG(t, "field.png", img)
	s.Render(img, 40000, 12500, 0.5, 8, rand.New(rand.NewPCG(1, 1)))
	writePNG(t, "field_defocus8.png", img)
	s.Render(img, 10000, 10000, 10, 0, rand.New(rand.NewPCG(1, 1)))
	writePNG(t, "label.png", img)
	if dir := dataDir(t); dir != "" {
		c, err := FromCRIC(dir, Spec{ID: "CRIC-1", Seed: 1, Diagnosis: HighGrade})
		if err != nil {
			t.Fatal(err)
		}
		c.Render(img, 40000, 12500, 0.5, 0, rand.New(rand.NewPCG(1, 1)))
		writePNG(t, "cric_field.png", img)
		c.Render(img, 40000, 12500, 2, 0, rand.New(rand.NewPCG(1, 1)))
		writePNG(t, "cric_field_2um.png", img)
		writePNG(t, "cric_overview.png", c.RenderOverview(1500, 500))
	}
}

// dataDir finds the shared development data: $PAPSCAN_DATA, or a
// shared/data directory beside one of the working directory's ancestors.
// It returns "" when there is none.
func dataDir(t testing.TB) string {
	if d := os.Getenv("PAPSCAN_DATA"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "cric", "fields", "nuclei.csv")); err == nil {
			return d
		}
		return ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		cand := filepath.Join(d, "shared", "data")
		if _, err := os.Stat(filepath.Join(cand, "cric", "fields", "nuclei.csv")); err == nil {
			return cand
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

func TestFromCRIC(t *testing.T) {
	dir := dataDir(t)
	if dir == "" {
		t.Skip("CRIC data not found (set PAPSCAN_DATA or provide ../shared/data)")
	}
	s, err := FromCRIC(dir, Spec{ID: "CRIC-HG", Seed: 4, Diagnosis: HighGrade})
	if err != nil {
		t.Fatal(err)
	}
	counts := s.Count()
	if counts[NILM] < 1000 {
		t.Errorf("only %d NILM ground-truth cells", counts[NILM])
	}
	if s.Worst().Grade() != HighGrade {
		t.Errorf("high-grade CRIC slide's worst class is %v", s.Worst())
	}
	neg, err := FromCRIC(dir, Spec{ID: "CRIC-N", Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	if neg.Worst() != NILM {
		t.Errorf("negative CRIC slide carries %v", neg.Worst())
	}

	// Labelled nuclei must sit on dark pixels: the darkest pixel within 12 px
	// (6 µm; CRIC points lie a median 8 px from the darkest nuclear pixel in
	// the 1280 px images) must be much darker than the field's median.
	r := NewRenderer(RenderOptions{NoiseSigma: -1})
	img := image.NewRGBA(image.Rect(0, 0, 256, 256))
	rng := rand.New(rand.NewPCG(9, 9))
	var good, n int
	abnormalSeen := 0
	for range 200 {
		c := s.Cells[rng.IntN(len(s.Cells))]
		if c.Class != NILM && abnormalSeen < 20 {
			abnormalSeen++
		}
		r.Render(s, img, c.X, c.Y, 0, nil)
		m := minLum(img, 128, 128, 12)
		med := medianLum(img)
		n++
		if m < 0.6*med {
			good++
		}
	}
	for _, c := range s.Cells {
		if c.Class == NILM {
			continue
		}
		r.Render(s, img, c.X, c.Y, 0, nil)
		n++
		if minLum(img, 128, 128, 12) < 0.6*medianLum(img) {
			good++
		}
	}
	if frac := float64(good) / float64(n); frac < 0.9 {
		t.Errorf("only %d of %d labelled nuclei fall on dark pixels", good, n)
	}
	// A random background point is mostly not as dark.
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}

func medianLum(img *image.RGBA) float64 {
	var hist [256]int
	b := img.Bounds()
	for y := range b.Dy() {
		for x := range b.Dx() {
			hist[int(lum(img, x, y))]++
		}
	}
	half, acc := b.Dx()*b.Dy()/2, 0
	for v, c := range hist {
		acc += c
		if acc >= half {
			return float64(v)
		}
	}
	return 255
}

func BenchmarkRender(b *testing.B) {
	s := Synthetic(Spec{ID: "B", Seed: 1, Diagnosis: HighGrade})
	for _, bc := range []struct {
		name    string
		defocus float64
	}{{"focused", 0}, {"defocus0.5um", 0.5}, {"defocus5um", 5}, {"defocus30um", 30}} {
		b.Run(bc.name, func(b *testing.B) {
			r := NewRenderer(RenderOptions{})
			img := image.NewRGBA(image.Rect(0, 0, 1280, 960))
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.Render(s, img, 40000+float64(i%50)*640, 12500, bc.defocus, rng)
			}
		})
	}
	if dir := dataDir(b); dir != "" {
		c, err := FromCRIC(dir, Spec{ID: "B", Seed: 1, Diagnosis: HighGrade})
		if err != nil {
			b.Fatal(err)
		}
		b.Run("cric-focused", func(b *testing.B) {
			r := NewRenderer(RenderOptions{})
			img := image.NewRGBA(image.Rect(0, 0, 1280, 960))
			rng := rand.New(rand.NewPCG(1, 2))
			r.Render(c, img, 40000, 12500, 0, rng)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.Render(c, img, 40000+float64(i%10)*640, 12500, 0, rng)
			}
		})
	}
}

// TestCRICSmallSpot: the abnormal field is placed first, so even a 1.2 mm
// spot carries its abnormal cells; every field of the recipe is within the
// per-field bound and the abnormal field is used once.
func TestCRICSmallSpot(t *testing.T) {
	dir := dataDir(t)
	if dir == "" {
		t.Skip("CRIC data not found (set PAPSCAN_DATA or provide ../shared/data)")
	}
	lib, err := NewLibrary(dir)
	if err != nil {
		t.Fatal(err)
	}
	for seed := range int64(4) {
		s, err := lib.Slide(Spec{ID: "SMALL", Seed: seed, Diagnosis: HighGrade, SpotDiameterUM: 1200})
		if err != nil {
			t.Fatal(err)
		}
		if s.Worst().Grade() != HighGrade {
			t.Errorf("seed %d: 1.2 mm high-grade spot carries %v at worst (%d cells)", seed, s.Worst(), len(s.Cells))
		}
		r, _ := s.Recipe()
		abn := 0
		for _, u := range r.Uses {
			if u.Abnormal {
				abn++
			}
		}
		if abn != 1 {
			t.Errorf("seed %d: %d abnormal uses", seed, abn)
		}
		for _, c := range s.Cells {
			if !s.InSpot(c.X, c.Y) {
				t.Fatalf("seed %d: cell at %.0f, %.0f outside the spot", seed, c.X, c.Y)
			}
		}
	}
}

// ParseClass converts virtualslide's classes by value: the two enums must
// keep one order.
func TestClassOrderMatchesVirtualslide(t *testing.T) {
	for c := NILM; c <= SCC; c++ {
		if got := virtualslide.Class(c).String(); got != c.String() {
			t.Errorf("class %d: slide %s, virtualslide %s", c, c, got)
		}
	}
}

// TestDefocusFollowsFocalSurface: across a frame the blur follows the
// local defocus, so where the specimen is in focus it is sharper than
// where it is not (a tilt of the focal surface).
func TestDefocusFollowsFocalSurface(t *testing.T) {
	const w, h = 256, 64
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range img.Pix {
		img.Pix[i] = uint8(rng.IntN(256))
	}
	r := NewRenderer(RenderOptions{PixelUM: 0.5, DOFUM: 3.44})
	v := view{pix: img.Pix, stride: img.Stride, w: w, h: h, p: 0.5}
	// Defocus 1.6 µm at the left edge, 0 at the right one.
	r.blurVarying(&v, 0.8, 1.6/w, 0, r.opts.BlurPerUM/v.p)
	bren := func(x0, x1 int) float64 {
		var sum float64
		for y := range h {
			row := img.Pix[y*img.Stride:]
			for x := x0; x < x1-2; x++ {
				d := float64(row[(x+2)*4+1]) - float64(row[x*4+1])
				sum += d * d
			}
		}
		return sum / float64((x1-x0-2)*h)
	}
	left, mid, right := bren(0, 32), bren(112, 144), bren(w-32, w)
	if !(left < mid && mid < right) {
		t.Errorf("Brenner sharpness left %.0f, middle %.0f, right %.0f: should rise towards the focused right edge", left, mid, right)
	}
}
