package classify

import (
	"encoding/json"
	"image"
	"math"
	"math/rand"
	"strings"
	"testing"
)

// TestConv3x3 compares the im2col convolution with a direct reference.
func TestConv3x3(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	const h, w, cin, cout = 5, 6, 3, 6
	in := make([]float32, h*w*cin)
	for i := range in {
		in[i] = float32(rng.NormFloat64())
	}
	wt := make([]float32, cout*9*cin)
	for i := range wt {
		wt[i] = float32(rng.NormFloat64())
	}
	bias := []float32{0.1, -0.2, 0.3, 0, 0.5, -1}
	out := make([]float32, h*w*cout)
	Conv3x3(out, in, h, w, cin, cout, wt, bias, make([]float32, 9*cin), false)
	for y := range h {
		for x := range w {
			for c := range cout {
				s := float64(bias[c])
				for ky := range 3 {
					for kx := range 3 {
						yy, xx := y+ky-1, x+kx-1
						if yy < 0 || yy >= h || xx < 0 || xx >= w {
							continue
						}
						for i := range cin {
							s += float64(wt[((c*3+ky)*3+kx)*cin+i]) * float64(in[(yy*w+xx)*cin+i])
						}
					}
				}
				if got := out[(y*w+x)*cout+c]; math.Abs(float64(got)-s) > 1e-4 {
					t.Fatalf("(%d,%d,%d): %v, want %v", y, x, c, got, s)
				}
			}
		}
	}
}

func TestCNNParamsCheck(t *testing.T) {
	p := &CNNParams{InStd: [3]float64{1, 1, 1}}
	if err := p.Check(); err == nil {
		t.Fatal("empty CNN accepted")
	}
	for l := range CNNLayers + 1 {
		p.Conv[l] = make([]float32, CNNLayerSize(l))
		p.Bias[l] = make([]float32, CNNLayerOut(l))
	}
	if err := p.Check(); err != nil {
		t.Fatal(err)
	}
	p.InStd[1] = 0
	if err := p.Check(); err == nil {
		t.Fatal("zero in_std accepted")
	}
	p.InStd[1] = 1
	p.Conv[2][3] = float32(math.NaN())
	if err := p.Check(); err == nil {
		t.Fatal("NaN weight accepted")
	}
}

// TestClassifyMatchesMeasure: Classify (the robot's path) and
// Measure+PredictInput (evaluation's path) give the same probabilities,
// CNN included, on a synthetic nucleus at another pixel size.
func TestClassifyMatchesMeasure(t *testing.T) {
	m, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 120, 120))
	for y := range 120 {
		for x := range 120 {
			o := img.PixOffset(x, y)
			v := uint8(225)
			if d := math.Hypot(float64(x)-60, float64(y)-58); d < 14 {
				v = 70
			} else if d < 40 {
				v = 190
			}
			img.Pix[o], img.Pix[o+1], img.Pix[o+2], img.Pix[o+3] = v, v+10, v+20, 255
		}
	}
	n := Nucleus{X: 60, Y: 58, AreaPx: 600, PixelUM: 0.25}
	c := m.Classify(img, n)
	var in Input
	if !m.Measure(img, n, &in) || !in.HasCrop {
		t.Fatal("no measurement or crop")
	}
	p := m.PredictInput(&in)
	for k := range p {
		if math.Abs(float64(p[k]-c.Probs[k])) > 1e-6 {
			t.Fatalf("Classify %v, Measure+PredictInput %v", c.Probs, p)
		}
	}
	if f := m.Predict(in.F); f == p {
		t.Fatal("CNN had no effect on the probabilities")
	}
}

// TestCNNForwardMatchesReference: the padded inference path gives the
// probabilities of a plain Conv3x3 / MaxPool2 / GlobalAvg composition.
func TestCNNForwardMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewSource(4))
	p := &CNNParams{InMean: [3]float64{0.2, 0.3, 0.1}, InStd: [3]float64{0.5, 0.4, 0.3}}
	for l := range CNNLayers + 1 {
		p.Conv[l] = make([]float32, CNNLayerSize(l))
		p.Bias[l] = make([]float32, CNNLayerOut(l))
		for i := range p.Conv[l] {
			p.Conv[l][i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range p.Bias[l] {
			p.Bias[l][i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	n, err := compileCNN(p)
	if err != nil {
		t.Fatal(err)
	}
	var crop [CNNInputLen]float32
	for i := range crop {
		crop[i] = float32(rng.Float64())
	}
	sc := newCNNScratch()
	sc.crop = &crop
	got := n.forward(sc)
	x := make([]float32, CNNInputLen)
	for i, v := range crop {
		c := i % CNNChannels
		x[i] = float32((float64(v) - p.InMean[c]) / p.InStd[c])
	}
	patch := make([]float32, 9*64)
	for l := range CNNLayers {
		s := CNNLayerSide(l)
		a := make([]float32, s*s*CNNWidths[l])
		Conv3x3(a, x, s, s, CNNLayerIn(l), CNNWidths[l], p.Conv[l], p.Bias[l], patch, true)
		if l < CNNLayers-1 {
			x = make([]float32, s*s/4*CNNWidths[l])
			MaxPool2(x, a, s, s, CNNWidths[l])
		} else {
			x = a
		}
	}
	wl := CNNWidths[CNNLayers-1]
	last := CNNLayerSide(CNNLayers - 1)
	pooled := make([]float32, wl)
	GlobalAvg(pooled, x, last*last, wl)
	var logit [CNNGroups]float32
	for g := range logit {
		logit[g] = p.Bias[CNNLayers][g] + dot(p.Conv[CNNLayers][g*wl:(g+1)*wl], pooled)
	}
	want := Softmax3(logit)
	for g := range want {
		if math.Abs(float64(got[g]-want[g])) > 1e-5 {
			t.Fatalf("forward %v, reference %v", got, want)
		}
	}
}

func TestSetNILM(t *testing.T) {
	p := [NumClasses]float32{0.5, 0.1, 0.1, 0.1, 0.1, 0.1}
	q := SetNILM(p, 0.2)
	if d := q[NILM] - 0.2; d > 1e-6 || d < -1e-6 {
		t.Fatalf("NILM %v", q[NILM])
	}
	if q[ASCH] != p[ASCH] || q[HSIL] != p[HSIL] || q[SCC] != p[SCC] {
		t.Fatalf("high grade changed: %v", q)
	}
	if d := q[ASCUS] - 0.25; d > 1e-6 || d < -1e-6 || q[ASCUS] != q[LSIL] {
		t.Fatalf("low grade %v", q)
	}
	// P(NILM) cannot exceed what the high grade leaves.
	q = SetNILM(p, 0.9)
	var s float32
	for _, v := range q {
		if v < 0 {
			t.Fatalf("negative %v", q)
		}
		s += v
	}
	if q[NILM] > 0.7+1e-6 || s < 0.999 || s > 1.001 {
		t.Fatalf("clamped %v (sum %v)", q, s)
	}
}

func randomCNN(rng *rand.Rand) *CNNParams {
	p := &CNNParams{InMean: [3]float64{0.2, 0.3, 0.1}, InStd: [3]float64{0.5, 0.4, 0.3}}
	for l := range CNNLayers + 1 {
		p.Conv[l] = make([]float32, CNNLayerSize(l))
		p.Bias[l] = make([]float32, CNNLayerOut(l))
		for i := range p.Conv[l] {
			p.Conv[l][i] = float32(rng.NormFloat64() * 0.3)
		}
		for i := range p.Bias[l] {
			p.Bias[l][i] = float32(rng.NormFloat64() * 0.1)
		}
	}
	return p
}

// TestCNNInputNorm: a per-crop normalisation equals the plain network on
// the crop mapped by CNNCropAffine, makes the output invariant to the
// stain changes it is meant to remove, and is absent (the plain network,
// bit for bit) in weights files without input_norm, such as the shipped
// one.
func TestCNNInputNorm(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	p := randomCNN(rng)
	var crop [CNNInputLen]float32
	for i := range crop {
		crop[i] = float32(0.05 + 0.6*rng.Float64())
	}
	run := func(p *CNNParams, c [CNNInputLen]float32) [CNNGroups]float32 {
		t.Helper()
		n, err := compileCNN(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := newCNNScratch()
		sc.crop = &c
		return n.forward(sc)
	}
	near := func(a, b [CNNGroups]float32, tol float64) bool {
		for g := range a {
			if math.Abs(float64(a[g]-b[g])) > tol {
				return false
			}
		}
		return true
	}
	plain := run(p, crop)
	gain := [3]float32{1.5, 0.7, 1.2}
	off := [3]float32{0.03, -0.02, 0.05}
	for _, norm := range []string{CNNNormCropStd, CNNNormCropGain} {
		q := *p
		q.InputNorm = norm
		a, b := CNNCropAffine(norm, crop[:])
		var mapped [CNNInputLen]float32
		for i, v := range crop {
			mapped[i] = a[i%3]*v + b[i%3]
		}
		got := run(&q, crop)
		if want := run(p, mapped); !near(got, want, 1e-5) {
			t.Fatalf("%s: forward %v, plain network on the normalised crop %v", norm, got, want)
		}
		if near(got, plain, 1e-3) {
			t.Fatalf("%s: no effect (%v)", norm, got)
		}
		var restained [CNNInputLen]float32
		for i, v := range crop {
			restained[i] = gain[i%3] * v
			if norm == CNNNormCropStd {
				restained[i] += off[i%3]
			}
		}
		if r := run(&q, restained); !near(got, r, 1e-4) {
			t.Fatalf("%s: restained crop %v, original %v", norm, r, got)
		}
	}
	q := *p
	q.InputNorm = "reinhard"
	if err := q.Check(); err == nil || !strings.Contains(err.Error(), "input_norm") {
		t.Fatalf("unknown input_norm: %v", err)
	}
	// Weights without the field: no key written, none read, same output.
	js, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(js), "input_norm") {
		t.Fatal("input_norm written for a network without normalisation")
	}
	var back CNNParams
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.InputNorm != "" || run(&back, crop) != plain {
		t.Fatalf("reloaded network: input_norm %q", back.InputNorm)
	}
	m, err := DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Params().CNN; c == nil || c.InputNorm != "" {
		t.Fatal("the shipped weights carry a CNN input normalisation")
	}
	if strings.Contains(string(defaultWeights), "input_norm") {
		t.Fatal("model_weights.json names input_norm")
	}
}
