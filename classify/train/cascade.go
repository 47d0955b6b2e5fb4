package train

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand"

	"papscan/classify"
	"papscan/classify/eval"
)

// WideSide is the side (px, at the model's pixel size) of the wide crop
// kept per sample for the second stage: CascadeSide plus a margin for
// shift and scale augmentation.
const WideSide = classify.CascadeSide + 2*wideMargin

const wideMargin = 5

// Wide is a sample's RGB window for the second stage (WideSide², at the
// model's pixel size, centred on the nucleus). For a labelled CRIC crop it
// is cut from the crop's whole field, so the context is real, never
// padding.
type Wide [WideSide * WideSide * 3]uint8

// cutWide cuts the wide window centred on (cx, cy) of img (pixel size
// srcUM) resampled to dstUM.
func cutWide(img *image.RGBA, cx, cy, srcUM, dstUM float64) *Wide {
	w := classify.ResampleWindow(nil, img, cx, cy, srcUM, dstUM, WideSide)
	c := new(Wide)
	for j := range WideSide {
		for i := range WideSide {
			o := w.PixOffset(i, j)
			k := (j*WideSide + i) * 3
			c[k], c[k+1], c[k+2] = w.Pix[o], w.Pix[o+1], w.Pix[o+2]
		}
	}
	return c
}

// CascadeOptions are the hyper-parameters of the second stage's fit.
type CascadeOptions struct {
	Epochs int
	Batch  int
	LR     float64
	Decay  float64
	// Gate is the first-stage suspicion at which the second stage runs
	// (classify.CascadeParams.Gate); TrainGate the one at which NILM
	// samples enter its training set (every abnormal cell does).
	Gate      float64
	TrainGate float64
	// ExtraWeight is the total weight of the field negatives relative to
	// one class.
	ExtraWeight float64
	// Stain: per-channel OD gains ±Stain, offsets ±Stain/4, gamma; Blur:
	// probability of a 3x3 blur; Scale: zoom jitter ±Scale.
	Stain, Blur, Scale float64
	Seed               int64
}

// DefaultCascade returns the second stage's hyper-parameters.
func DefaultCascade() CascadeOptions {
	return CascadeOptions{Epochs: 30, Batch: 32, LR: 3e-3, Decay: 1e-4, Gate: 0.2, TrainGate: 0.1, ExtraWeight: 1,
		Stain: 0.1, Blur: 0.2, Scale: 0.1, Seed: 1}
}

// wideNet is the trainable second-stage network.
type wideNet struct {
	w, b [classify.CascadeLayers + 1][]float32
}

func newWideNet() *wideNet {
	n := &wideNet{}
	for l := range classify.CascadeLayers + 1 {
		n.w[l] = make([]float32, classify.CascadeLayerSize(l))
		n.b[l] = make([]float32, classify.CascadeLayerOut(l))
	}
	return n
}

func (n *wideNet) zero() {
	for l := range n.w {
		clear(n.w[l])
		clear(n.b[l])
	}
}

type wideScratch struct {
	x, tmp []float32
	a, d   [classify.CascadeLayers][]float32
	p, dp  [classify.CascadeLayers - 1][]float32
	idx    [classify.CascadeLayers - 1][]int32
	pooled []float32
	patch  []float32
	grad   *wideNet
}

func newWideScratch() *wideScratch {
	const L = classify.CascadeLayers
	w := classify.CascadeWidths
	sc := &wideScratch{x: make([]float32, classify.CascadeInputLen), tmp: make([]float32, classify.CascadeInputLen),
		pooled: make([]float32, w[L-1]), grad: newWideNet()}
	mx := 3
	for l := range L {
		s := classify.CascadeLayerSide(l)
		sc.a[l] = make([]float32, s*s*w[l])
		sc.d[l] = make([]float32, s*s*w[l])
		if l < L-1 {
			sc.p[l] = make([]float32, s*s/4*w[l])
			sc.dp[l] = make([]float32, s*s/4*w[l])
			sc.idx[l] = make([]int32, s*s/4*w[l])
		}
		mx = max(mx, classify.CascadeLayerIn(l))
	}
	sc.patch = make([]float32, 9*mx)
	return sc
}

func (sc *wideScratch) layerIn(l int) []float32 {
	if l == 0 {
		return sc.x
	}
	return sc.p[l-1]
}

func (n *wideNet) forward(sc *wideScratch) [classify.NumClasses]float32 {
	const L = classify.CascadeLayers
	w := classify.CascadeWidths
	for l := range L {
		s := classify.CascadeLayerSide(l)
		classify.Conv3x3(sc.a[l], sc.layerIn(l), s, s, classify.CascadeLayerIn(l), w[l], n.w[l], n.b[l], sc.patch, true)
		if l < L-1 {
			maxPoolIdx(sc.p[l], sc.idx[l], sc.a[l], s, s, w[l])
		}
	}
	last := classify.CascadeLayerSide(L - 1)
	classify.GlobalAvg(sc.pooled, sc.a[L-1], last*last, w[L-1])
	var logit [classify.NumClasses]float32
	for g := range logit {
		row := n.w[L][g*w[L-1] : (g+1)*w[L-1]]
		v := n.b[L][g]
		for i, x := range sc.pooled {
			v += row[i] * x
		}
		logit[g] = v
	}
	return classify.CascadeProbs(logit, 1)
}

func (n *wideNet) backward(sc *wideScratch, p [classify.NumClasses]float32, y int, weight float32) {
	const L = classify.CascadeLayers
	w := classify.CascadeWidths
	g := sc.grad
	var dl [classify.NumClasses]float32
	for k := range dl {
		dl[k] = p[k]
		if k == y {
			dl[k] -= 1
		}
		dl[k] *= weight
	}
	cl := w[L-1]
	last := classify.CascadeLayerSide(L - 1)
	np := last * last
	dpool := make([]float32, cl)
	for k, d := range dl {
		g.b[L][k] += d
		row := n.w[L][k*cl : (k+1)*cl]
		grow := g.w[L][k*cl : (k+1)*cl]
		for i, x := range sc.pooled {
			grow[i] += d * x
			dpool[i] += d * row[i]
		}
	}
	a, d := sc.a[L-1], sc.d[L-1]
	for q := range np {
		for c := range cl {
			if a[q*cl+c] > 0 {
				d[q*cl+c] = dpool[c] / float32(np)
			} else {
				d[q*cl+c] = 0
			}
		}
	}
	for l := L - 1; l >= 0; l-- {
		s := classify.CascadeLayerSide(l)
		var din []float32
		if l > 0 {
			din = sc.dp[l-1]
		}
		convBack(din, g.w[l], g.b[l], sc.layerIn(l), sc.d[l], n.w[l], s, s, classify.CascadeLayerIn(l), w[l])
		if l > 0 {
			dprev, aprev := sc.d[l-1], sc.a[l-1]
			clear(dprev)
			for k, i := range sc.idx[l-1] {
				if aprev[i] > 0 {
					dprev[i] += din[k]
				}
			}
		}
	}
}

// wideAug is one draw of the augmentation.
type wideAug struct {
	t          int     // dihedral transform 0..7
	ox, oy     float64 // shift (px)
	scale      float64 // source px per output px
	gain, off  [3]float32
	gamma      float32
	blur       bool
	identityOD bool
}

func drawAug(rng *rand.Rand, o CascadeOptions) wideAug {
	a := wideAug{t: rng.Intn(8), ox: float64(rng.Intn(7) - 3), oy: float64(rng.Intn(7) - 3),
		scale: 1 + o.Scale*(2*rng.Float64()-1)}
	g0 := 0.85 + 0.3*rng.Float64()
	for ch := range 3 {
		a.gain[ch] = float32(g0 * (1 + o.Stain*(2*rng.Float64()-1)))
		a.off[ch] = float32(o.Stain / 4 * (2*rng.Float64() - 1))
	}
	a.gamma = float32(math.Exp(o.Stain / 2 * (2*rng.Float64() - 1)))
	a.blur = rng.Float64() < o.Blur
	return a
}

// fillWide writes the raw OD input (CascadeInputLen, HWC) of crop c under
// augmentation a into x (tmp: scratch of the same length).
func fillWide(x, tmp []float32, c *Wide, a wideAug, lut *[256]float32) {
	const s = classify.CascadeSide
	const half = float64(s)/2 - 0.5
	const chalf = float64(WideSide)/2 - 0.5
	k := 0
	for j := range s {
		for i := range s {
			u, v := i, j
			if a.t&1 != 0 {
				u = s - 1 - u
			}
			if a.t&2 != 0 {
				v = s - 1 - v
			}
			if a.t&4 != 0 {
				u, v = v, u
			}
			sx := int(math.Round(chalf + (float64(u)-half)*a.scale + a.ox))
			sy := int(math.Round(chalf + (float64(v)-half)*a.scale + a.oy))
			sx = min(max(sx, 0), WideSide-1)
			sy = min(max(sy, 0), WideSide-1)
			o := (sy*WideSide + sx) * 3
			for ch := range 3 {
				od := lut[c[o+ch]]
				if !a.identityOD {
					if a.gamma != 1 && od > 0 {
						od = float32(math.Pow(float64(od), float64(a.gamma)))
					}
					od = a.gain[ch]*od + a.off[ch]
				}
				tmp[k+ch] = od
			}
			k += 3
		}
	}
	if !a.blur {
		copy(x, tmp)
		return
	}
	wt := [3]float32{0.25, 0.5, 0.25}
	for j := range s {
		for i := range s {
			for ch := range 3 {
				var v float32
				for dj := -1; dj <= 1; dj++ {
					jj := min(max(j+dj, 0), s-1)
					for di := -1; di <= 1; di++ {
						ii := min(max(i+di, 0), s-1)
						v += wt[dj+1] * wt[di+1] * tmp[(jj*s+ii)*3+ch]
					}
				}
				x[(j*s+i)*3+ch] = v
			}
		}
	}
}

// centreWide is the un-augmented raw OD input of c, as the model cuts it
// on a tile.
func centreWide(dst *[classify.CascadeInputLen]float32, c *Wide, lut *[256]float32) {
	tmp := make([]float32, classify.CascadeInputLen)
	fillWide(dst[:], tmp, c, wideAug{scale: 1, identityOD: true}, lut)
}

// fitWide trains one second-stage network on samples (all with Wide set).
// Deterministic for a given seed.
func fitWide(ctx context.Context, samples []Sample, o CascadeOptions) (*classify.CascadeNet, error) {
	lut := classify.ODLUT()
	var cnt [classify.NumClasses]float64
	extra := 0
	for _, s := range samples {
		if s.Extra {
			extra++
		} else {
			cnt[s.Class]++
		}
	}
	// Input statistics on the centre windows.
	var mean, std [3]float64
	{
		var n float64
		var sm, ss [3]float64
		var in [classify.CascadeInputLen]float32
		for _, s := range samples {
			centreWide(&in, s.Wide, &lut)
			for k := 0; k < len(in); k += 3 {
				for ch := range 3 {
					v := float64(in[k+ch])
					sm[ch] += v
					ss[ch] += v * v
				}
				n++
			}
		}
		for ch := range 3 {
			mean[ch] = sm[ch] / n
			std[ch] = math.Sqrt(max(ss[ch]/n-mean[ch]*mean[ch], 1e-6))
			mean[ch] = math.Round(mean[ch]*1e4) / 1e4
			std[ch] = math.Round(std[ch]*1e4) / 1e4
		}
	}
	var m32, inv32 [3]float32
	for c := range 3 {
		m32[c], inv32[c] = float32(mean[c]), float32(1/std[c])
	}
	// Class-balanced weights: each class present totals 1, field
	// negatives ExtraWeight.
	wts := make([]float32, len(samples))
	var tot float64
	for i, s := range samples {
		var w float64
		if s.Extra {
			w = o.ExtraWeight / float64(extra)
		} else {
			w = 1 / cnt[s.Class]
		}
		wts[i] = float32(w)
		tot += w
	}
	for i := range wts {
		wts[i] *= float32(float64(len(samples)) / tot)
	}
	rng := rand.New(rand.NewSource(o.Seed))
	net := newWideNet()
	heInit(rng, net.w[:], func(l int) int {
		if l == classify.CascadeLayers {
			return classify.CascadeWidths[classify.CascadeLayers-1]
		}
		return classify.CascadeLayerIn(l) * 9
	})
	m1, m2 := newWideNet(), newWideNet()
	sc := newWideScratch()
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	opt := adamW{lr: o.LR, decay: o.Decay, steps: o.Epochs * ((len(samples) + o.Batch - 1) / o.Batch)}
	for range o.Epochs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < len(order); start += o.Batch {
			end := min(start+o.Batch, len(order))
			sc.grad.zero()
			for _, i := range order[start:end] {
				fillWide(sc.x, sc.tmp, samples[i].Wide, drawAug(rng, o), &lut)
				for k := 0; k < len(sc.x); k += 3 {
					for ch := range 3 {
						sc.x[k+ch] = (sc.x[k+ch] - m32[ch]) * inv32[ch]
					}
				}
				p := net.forward(sc)
				net.backward(sc, p, int(samples[i].Class), wts[i])
			}
			opt.update(net.w[:], net.b[:], sc.grad.w[:], sc.grad.b[:], m1.w[:], m1.b[:], m2.w[:], m2.b[:], end-start)
		}
	}
	p := &classify.CascadeNet{InMean: mean, InStd: std}
	for l := range classify.CascadeLayers + 1 {
		p.Conv[l] = append([]float32(nil), net.w[l]...)
		p.Bias[l] = append([]float32(nil), net.b[l]...)
	}
	return p, nil
}

// CascadeReport holds the second stage's validation figures (out-of-fold).
type CascadeReport struct {
	Gate        float64 `json:"gate"`
	Weight      float64 `json:"weight"`
	Temperature float64 `json:"temperature"`
	// Train is the number of training samples of the final network.
	Train int `json:"train_samples"`
	// GatedNegatives is the fraction of field negatives (the objects a
	// negative slide is made of) whose first-stage suspicion reaches the
	// gate: the share of cells the second stage runs on.
	GatedNegatives float64 `json:"gated_field_negatives"`
	// GatedHigh and GatedLow are the fractions of labelled high- and
	// low-grade CRIC crops that reach the gate.
	GatedHigh float64 `json:"gated_high"`
	GatedLow  float64 `json:"gated_low"`
	// Before and After are the out-of-fold cell metrics of the CRIC crops
	// without and with the second stage.
	Before eval.CellMetrics `json:"before"`
	After  eval.CellMetrics `json:"after"`
}

// TrainCascade fits the second stage on top of the first-stage model base
// (its fold models define the folds: each fold's network is trained on
// the fields that fold's first-stage model was trained on) and returns
// base's parameters with the cascade added. samples must carry Wide crops;
// the first nLabelled are the CRIC crops the figures are measured on.
func TrainCascade(ctx context.Context, base classify.ModelParams, samples []Sample, nLabelled int, o CascadeOptions, w io.Writer) (classify.ModelParams, *CascadeReport, error) {
	base.Cascade = nil
	for k := range base.Folds {
		base.Folds[k].Cascade = nil
	}
	bm, err := classify.NewModel(base)
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	k := len(base.Folds)
	if k == 0 {
		return classify.ModelParams{}, nil, fmt.Errorf("train: cascade: the base model has no fold models")
	}
	lut := classify.ODLUT()
	// First-stage out-of-fold probabilities.
	p1 := make([][classify.NumClasses]float32, len(samples))
	fold := make([]int, len(samples))
	var in classify.Input
	for i, s := range samples {
		in.F = s.F
		in.HasCrop = s.Crop != nil
		if s.Crop != nil {
			cropOD(&in.Crop, s.Crop, &lut)
		}
		p1[i] = bm.StageOne(s.Field, &in)
		fold[i] = bm.HeldOutFold(s.Field)
	}
	rep := &CascadeReport{Gate: o.Gate}
	var nNeg, gNeg, nHi, gHi, nLo, gLo int
	for i, s := range samples {
		g := float64(classify.SuspicionScore(p1[i])) >= o.Gate
		switch {
		case s.Extra:
			nNeg++
			if g {
				gNeg++
			}
		case i < nLabelled && s.Class.HighGrade():
			nHi++
			if g {
				gHi++
			}
		case i < nLabelled && s.Class != classify.NILM:
			nLo++
			if g {
				gLo++
			}
		}
	}
	rep.GatedNegatives = float64(gNeg) / float64(max(nNeg, 1))
	rep.GatedHigh = float64(gHi) / float64(max(nHi, 1))
	rep.GatedLow = float64(gLo) / float64(max(nLo, 1))
	fmt.Fprintf(w, "cascade gate %.2f: gated field negatives %.3f (%d), high grade %.3f, low grade %.3f\n", o.Gate, rep.GatedNegatives, nNeg, rep.GatedHigh, rep.GatedLow)
	use := func(i int) bool {
		s := samples[i]
		return s.Wide != nil && fold[i] >= 0 && (s.Class != classify.NILM || float64(classify.SuspicionScore(p1[i])) >= o.TrainGate)
	}
	nets := make([]*classify.CascadeNet, k+1)
	err = parallel(k+1, func(f int) error {
		var tr []Sample
		for i, s := range samples {
			if use(i) && (f == k || fold[i] != f) {
				tr = append(tr, s)
			}
		}
		if f == k {
			rep.Train = len(tr)
		}
		net, err := fitWide(ctx, tr, o)
		nets[f] = net
		return err
	})
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	// Second-stage out-of-fold logits of every sample that has a fold.
	logit := make([][classify.NumClasses]float32, len(samples))
	has := make([]bool, len(samples))
	for f := range k {
		r, err := classify.NewCascadeRunner(nets[f])
		if err != nil {
			return classify.ModelParams{}, nil, err
		}
		var x [classify.CascadeInputLen]float32
		for i, s := range samples {
			if fold[i] == f && s.Wide != nil {
				centreWide(&x, s.Wide, &lut)
				logit[i], has[i] = r.Logits(&x), true
			}
		}
	}
	// Temperature on the gated labelled crops.
	var cal []int
	for i := range samples[:nLabelled] {
		if has[i] && float64(classify.SuspicionScore(p1[i])) >= o.Gate {
			cal = append(cal, i)
		}
	}
	temp := fitCascadeTemperature(samples, logit, cal)
	rep.Temperature = temp
	truth := make([]classify.Class, nLabelled)
	fields := make([]string, nLabelled)
	var nilm []float64
	for i, s := range samples[:nLabelled] {
		truth[i], fields[i] = s.Class, s.Field
		if s.Class == classify.NILM {
			nilm = append(nilm, float64(classify.HighGradeProb(p1[i])))
		}
	}
	th := eval.ThresholdAtFPR(nilm, DefaultTargetFPR)
	mix := func(wt float64) [][classify.NumClasses]float32 {
		out := make([][classify.NumClasses]float32, nLabelled)
		for i := range out {
			out[i] = p1[i]
			if has[i] && float64(classify.SuspicionScore(p1[i])) >= o.Gate {
				out[i] = classify.MixCascade(p1[i], classify.CascadeProbs(logit[i], 1/temp), float32(wt))
			}
		}
		return out
	}
	rep.Before = eval.Cells(truth, p1[:nLabelled], fields, th)
	bestW, bestS := 0.0, math.Inf(-1)
	for _, wt := range []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9} {
		m := eval.Cells(truth, mix(wt), fields, th)
		s := m.HighGradeRecallAt05 + 0.5*m.AUCLowVsNILM + 0.5*m.MacroF1
		fmt.Fprintf(w, "cascade weight %.2f: high-grade AUC %.3f recall@FPR0.05 %.3f low AUC %.3f macro-F1 %.3f (score %.4f)\n",
			wt, m.AUCHighVsNILM, m.HighGradeRecallAt05, m.AUCLowVsNILM, m.MacroF1, s)
		if s > bestS+1e-9 {
			bestW, bestS = wt, s
		}
	}
	rep.Weight = bestW
	rep.After = eval.Cells(truth, mix(bestW), fields, th)
	fmt.Fprintf(w, "cascade: before high-grade AUC %.3f recall@0.05 %.3f low AUC %.3f macro-F1 %.3f; after (weight %.2f, T %.3f) %.3f %.3f %.3f %.3f\n",
		rep.Before.AUCHighVsNILM, rep.Before.HighGradeRecallAt05, rep.Before.AUCLowVsNILM, rep.Before.MacroF1, bestW, temp,
		rep.After.AUCHighVsNILM, rep.After.HighGradeRecallAt05, rep.After.AUCLowVsNILM, rep.After.MacroF1)
	out := base
	out.Folds = append([]classify.Fold(nil), base.Folds...)
	out.Cascade = &classify.CascadeParams{Gate: o.Gate, Weight: bestW, Temperature: temp, Net: *nets[k]}
	for f := range k {
		out.Folds[f].Cascade = nets[f]
	}
	out.Version = base.Version + "+" + VersionCascade
	var meta map[string]any
	if len(base.Training) > 0 {
		if err := json.Unmarshal(base.Training, &meta); err != nil {
			return classify.ModelParams{}, nil, err
		}
	}
	if meta == nil {
		meta = map[string]any{}
	}
	meta["cascade"] = map[string]any{"options": o, "report": rep}
	b, err := json.Marshal(meta)
	if err != nil {
		return classify.ModelParams{}, nil, err
	}
	out.Training = b
	return out, rep, nil
}

// VersionCascade is appended to the first stage's version when a model
// carries a second stage.
const VersionCascade = "cascade-1"

// cropOD fills dst with the raw OD of the centre CNNSide window of c (what
// classify.CNNInput cuts on a tile).
func cropOD(dst *[classify.CNNInputLen]float32, c *Crop, lut *[256]float32) {
	k := 0
	for j := range classify.CNNSide {
		for i := range classify.CNNSide {
			o := ((j+cropMargin)*CropSide + i + cropMargin) * 3
			dst[k], dst[k+1], dst[k+2] = lut[c[o]], lut[c[o+1]], lut[c[o+2]]
			k += 3
		}
	}
}

// fitCascadeTemperature is fitTemperature for second-stage logits.
func fitCascadeTemperature(samples []Sample, logit [][classify.NumClasses]float32, idx []int) float64 {
	if len(idx) == 0 {
		return 1
	}
	return fitTemperatureOf(samples, idx, func(i int, invT float64) [classify.NumClasses]float32 {
		return classify.CascadeProbs(logit[i], invT)
	})
}
