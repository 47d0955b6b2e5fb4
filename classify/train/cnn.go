package train

import (
	"context"
	"fmt"
	"image"
	"math"
	"math/rand"
	"runtime"
	"sync"

	"papscan/classify"
	"papscan/classify/internal/gauss"
)

// CropSide is the side (px, at the model's pixel size) of the crop kept per
// sample for the CNN: CNNSide plus a margin for shift augmentation.
const CropSide = classify.CNNSide + 2*cropMargin

const cropMargin = 4

// Crop is a sample's RGB window (CropSide², at the model's pixel size,
// centred on the nucleus).
type Crop [CropSide * CropSide * 3]uint8

// cutCrop cuts the crop centred on (cx, cy) of img (pixel size srcUM),
// resampled to dstUM, as the model cuts its window on a tile.
func cutCrop(img *image.RGBA, cx, cy, srcUM, dstUM float64) *Crop {
	var w *image.RGBA
	if r := srcUM / dstUM; r < 0.97 || r > 1.03 {
		w = classify.ResampleWindow(nil, img, cx, cy, srcUM, dstUM, CropSide)
	} else {
		w = classify.ResampleWindow(nil, img, cx, cy, dstUM, dstUM, CropSide)
	}
	c := new(Crop)
	for j := range CropSide {
		for i := range CropSide {
			o := w.PixOffset(i, j)
			k := (j*CropSide + i) * 3
			c[k], c[k+1], c[k+2] = w.Pix[o], w.Pix[o+1], w.Pix[o+2]
		}
	}
	return c
}

// CNNOptions are the hyper-parameters of a CNN fit.
type CNNOptions struct {
	Epochs int
	Batch  int
	LR     float64
	Decay  float64 // L2 weight decay (AdamW style)
	// HighWeight multiplies the class-balanced weight of high-grade cells.
	HighWeight float64
	// ExtraWeight is the total weight of the field negatives relative to
	// one group.
	ExtraWeight float64
	// OtherWeight is the total weight of other laboratories' cells
	// (Sample.Other) relative to one group.
	OtherWeight float64
	// FieldBalance (α, 0: off) evens out the source fields within the
	// high-grade group: a labelled high-grade cell of a field holding n_f of
	// them weighs (mean n / n_f)^α times its class-balanced weight, the
	// group's total unchanged (CRIC's high-grade cells are concentrated in
	// a few fields); at α 1 every field weighs the same.
	FieldBalance float64 `json:",omitempty"`
	// Stain widens the colour augmentation: per-channel optical-density
	// gains spread ±Stain (0: the original ±8 %), a per-channel OD offset of
	// ±Stain/4 (lamp and white balance; glass stays glass-like), a random
	// gamma on the whole crop; Blur is the probability of a 3x3 binomial
	// blur (focus).
	Stain float64
	Blur  float64
	// BlurSigma, when > 0, replaces the 3x3 OD blur by a Gaussian blur of
	// the crop's intensities (as a defocused or moving camera blurs the
	// light) with probability Blur, on every augmentation path: sigma is
	// drawn uniformly in [0.25, BlurSigma] crop pixels (the robot's
	// pixels), isotropic (focus) or, half of the time, along one axis only
	// (motion of the stage during the exposure).
	BlurSigma float64 `json:",omitempty"`
	// Norm is the per-crop input normalisation (classify.CNNParams.
	// InputNorm; "" none).
	Norm string `json:",omitempty"`
	// OtherBinary trains other laboratories' cells only on the CNN's
	// normal/abnormal axis: an abnormal cell's loss is −log(P(low) +
	// P(high)), so their classes (not Bethesda's) never pull the
	// low/high split of CRIC.
	OtherBinary bool `json:",omitempty"`
	Seed        int64
}

// DefaultCNN returns the CNN hyper-parameters of the shipped model.
// Epochs were chosen on the pooled out-of-fold predictions (same seed,
// everything else fixed; high grade vs NILM AUC of the CNN alone / fused
// at CNN weight 0.7): 16 epochs 0.938 / 0.946, 32 0.952 / 0.956, 48
// 0.960 / 0.963, 80 0.966 / 0.966, 120 0.966 / 0.967 (recall at NILM FPR
// 0.09: 0.85, 0.86, 0.87, 0.88, 0.90). The small net underfitted; the
// random flips, rotations, shifts and stain gains keep it from
// overfitting as epochs grow. A 40 px (20 µm) input or wider layers
// (8, 16, 32) at 16 epochs did not separate better than more epochs.
// With cric/more-fields the training set is 2.75 times larger (7,786
// samples), so 60 epochs take as many steps as 165 did before.
func DefaultCNN() CNNOptions {
	return CNNOptions{Epochs: 60, Batch: 32, LR: 3e-3, Decay: 1e-4, HighWeight: 1.5, ExtraWeight: 0.7, Seed: 1}
}

func group(c classify.Class) int {
	switch {
	case c == classify.NILM:
		return 0
	case c.HighGrade():
		return 2
	default:
		return 1
	}
}

// cnnNet is the trainable network: parameters, gradients and Adam state in
// the layout of classify.CNNParams.
type cnnNet struct {
	w, b [classify.CNNLayers + 1][]float32
}

func newNet() *cnnNet {
	n := &cnnNet{}
	for l := range classify.CNNLayers + 1 {
		n.w[l] = make([]float32, classify.CNNLayerSize(l))
		n.b[l] = make([]float32, classify.CNNLayerOut(l))
	}
	return n
}

func (n *cnnNet) zero() {
	for l := range classify.CNNLayers + 1 {
		clear(n.w[l])
		clear(n.b[l])
	}
}

func (n *cnnNet) add(o *cnnNet) {
	for l := range classify.CNNLayers + 1 {
		for i, v := range o.w[l] {
			n.w[l][i] += v
		}
		for i, v := range o.b[l] {
			n.b[l][i] += v
		}
	}
}

// trainScratch holds one sample's activations and gradients.
type trainScratch struct {
	x, tmp [classify.CNNInputLen]float32
	a      [classify.CNNLayers][]float32 // conv outputs (after ReLU)
	d      [classify.CNNLayers][]float32 // their gradients
	p, dp  [classify.CNNLayers - 1][]float32
	idx    [classify.CNNLayers - 1][]int32
	pooled []float32
	grad   *cnnNet
	patch  []float32
}

func newTrainScratch() *trainScratch {
	w := classify.CNNWidths
	sc := &trainScratch{pooled: make([]float32, w[classify.CNNLayers-1]), grad: newNet()}
	mx := classify.CNNChannels
	for l := range classify.CNNLayers {
		s := classify.CNNLayerSide(l)
		sc.a[l] = make([]float32, s*s*w[l])
		sc.d[l] = make([]float32, s*s*w[l])
		if l < classify.CNNLayers-1 {
			sc.p[l] = make([]float32, s*s/4*w[l])
			sc.dp[l] = make([]float32, s*s/4*w[l])
			sc.idx[l] = make([]int32, s*s/4*w[l])
		}
		mx = max(mx, classify.CNNLayerIn(l))
	}
	sc.patch = make([]float32, 9*mx)
	return sc
}

func maxPoolIdx(out []float32, idx []int32, in []float32, h, w, c int) {
	for y := 0; y < h/2; y++ {
		for x := 0; x < w/2; x++ {
			ob := (y*(w/2) + x) * c
			cand := [4]int{((2*y)*w + 2*x) * c, ((2*y)*w + 2*x + 1) * c, ((2*y+1)*w + 2*x) * c, ((2*y+1)*w + 2*x + 1) * c}
			for k := range c {
				best := cand[0] + k
				for _, b := range cand[1:] {
					if in[b+k] > in[best] {
						best = b + k
					}
				}
				out[ob+k] = in[best]
				idx[ob+k] = int32(best)
			}
		}
	}
}

// convBack accumulates the weight and bias gradients of a 3x3 same
// convolution given the output gradient dz, and (when din is not nil) the
// input gradient. For each output pixel and kernel row, the valid kernel
// columns read one contiguous HWC segment of the input and of each filter.
func convBack(din, dw, db, in, dz, wt []float32, h, w, cin, cout int) {
	if din != nil {
		clear(din)
	}
	k := 9 * cin
	for y := range h {
		for x := range w {
			g := dz[(y*w+x)*cout : (y*w+x+1)*cout]
			nz := false
			for c, v := range g {
				if v != 0 {
					db[c] += v
					nz = true
				}
			}
			if !nz {
				continue
			}
			kx0, kx1 := 0, 2
			if x == 0 {
				kx0 = 1
			}
			if x == w-1 {
				kx1 = 1
			}
			n := (kx1 - kx0 + 1) * cin
			for ky := range 3 {
				yy := y + ky - 1
				if yy < 0 || yy >= h {
					continue
				}
				lo := (yy*w + x + kx0 - 1) * cin
				src := in[lo : lo+n]
				var ds []float32
				if din != nil {
					ds = din[lo : lo+n]
				}
				woff := (ky*3 + kx0) * cin
				for c, gv := range g {
					if gv == 0 {
						continue
					}
					o := c*k + woff
					dwr := dw[o : o+len(src)]
					for i, v := range src {
						dwr[i] += gv * v
					}
					if ds != nil {
						wr := wt[o : o+len(ds)]
						for i, v := range wr {
							ds[i] += gv * v
						}
					}
				}
			}
		}
	}
}

// layerIn returns the input of conv layer l.
func (sc *trainScratch) layerIn(l int) []float32 {
	if l == 0 {
		return sc.x[:]
	}
	return sc.p[l-1]
}

// forward runs the network on sc.x (standardised) and returns the group
// probabilities, keeping the activations for backward.
func (n *cnnNet) forward(sc *trainScratch) [classify.CNNGroups]float32 {
	const L = classify.CNNLayers
	w := classify.CNNWidths
	for l := range L {
		s := classify.CNNLayerSide(l)
		classify.Conv3x3(sc.a[l], sc.layerIn(l), s, s, classify.CNNLayerIn(l), w[l], n.w[l], n.b[l], sc.patch, true)
		if l < L-1 {
			maxPoolIdx(sc.p[l], sc.idx[l], sc.a[l], s, s, w[l])
		}
	}
	last := classify.CNNLayerSide(L - 1)
	classify.GlobalAvg(sc.pooled, sc.a[L-1], last*last, w[L-1])
	var logit [classify.CNNGroups]float32
	for g := range logit {
		row := n.w[L][g*w[L-1] : (g+1)*w[L-1]]
		v := n.b[L][g]
		for i, x := range sc.pooled {
			v += row[i] * x
		}
		logit[g] = v
	}
	return classify.Softmax3(logit)
}

// backward accumulates into sc.grad the gradient of weight·cross-entropy.
func (n *cnnNet) backward(sc *trainScratch, p [classify.CNNGroups]float32, y int, weight float32) {
	var dl [classify.CNNGroups]float32
	for k := range dl {
		dl[k] = p[k]
		if k == y {
			dl[k] -= 1
		}
		dl[k] *= weight
	}
	n.backwardLogits(sc, dl)
}

// backwardAbnormal accumulates into sc.grad the gradient of
// −weight·log(P(low) + P(high)): the cell is abnormal, of either grade.
func (n *cnnNet) backwardAbnormal(sc *trainScratch, p [classify.CNNGroups]float32, weight float32) {
	ab := max(p[1]+p[2], 1e-12)
	dl := [classify.CNNGroups]float32{p[0] * weight, (p[1] - p[1]/ab) * weight, (p[2] - p[2]/ab) * weight}
	n.backwardLogits(sc, dl)
}

// backwardLogits accumulates into sc.grad the gradient given the loss's
// gradient dl with respect to the logits.
func (n *cnnNet) backwardLogits(sc *trainScratch, dl [classify.CNNGroups]float32) {
	const L = classify.CNNLayers
	w := classify.CNNWidths
	g := sc.grad
	cl := w[L-1]
	last := classify.CNNLayerSide(L - 1)
	np := last * last
	var dpool [128]float32
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
	for p := range np {
		for c := range cl {
			if a[p*cl+c] > 0 {
				d[p*cl+c] = dpool[c] / float32(np)
			} else {
				d[p*cl+c] = 0
			}
		}
	}
	for l := L - 1; l >= 0; l-- {
		s := classify.CNNLayerSide(l)
		var din []float32
		if l > 0 {
			din = sc.dp[l-1]
		}
		convBack(din, g.w[l], g.b[l], sc.layerIn(l), sc.d[l], n.w[l], s, s, classify.CNNLayerIn(l), w[l])
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

// fillInput writes the standardised input of crop c into x with the
// dihedral transform t (0..7), shift (ox, oy) in [-cropMargin, cropMargin]
// and per-channel OD gains.
func fillInput(x []float32, c *Crop, t, ox, oy int, gain [3]float32, lut *[256]float32, mean, inv [3]float32) {
	const s = classify.CNNSide
	k := 0
	for j := range s {
		for i := range s {
			u, v := i, j
			if t&1 != 0 {
				u = s - 1 - u
			}
			if t&2 != 0 {
				v = s - 1 - v
			}
			if t&4 != 0 {
				u, v = v, u
			}
			sx, sy := u+cropMargin+ox, v+cropMargin+oy
			o := (sy*CropSide + sx) * 3
			for ch := range 3 {
				x[k+ch] = (lut[c[o+ch]]*gain[ch] - mean[ch]) * inv[ch]
			}
			k += 3
		}
	}
}

// fillAugmented is fillInput with the wider stain, lamp and focus
// augmentation of CNNOptions.Stain and Blur: OD' = (gain_c·OD)^γ·… + offset_c
// per channel, then, with probability blur, a 3x3 binomial blur, then
// standardisation.
func fillAugmented(x, tmp []float32, c *Crop, t, ox, oy int, g0 float32, stain, blur float64, rng *rand.Rand, lut *[256]float32, mean, inv [3]float32) {
	const s = classify.CNNSide
	var gain, off [3]float32
	for ch := range 3 {
		gain[ch] = g0 * float32(1+stain*(2*rng.Float64()-1))
		off[ch] = float32(stain / 4 * (2*rng.Float64() - 1))
	}
	gamma := float32(math.Exp(stain / 2 * (2*rng.Float64() - 1)))
	fillInput(tmp, c, t, ox, oy, [3]float32{1, 1, 1}, lut, [3]float32{}, [3]float32{1, 1, 1})
	for k := 0; k < len(tmp); k += 3 {
		for ch := range 3 {
			v := max(tmp[k+ch], 0)
			if gamma != 1 && v > 0 {
				v = float32(math.Pow(float64(v), float64(gamma)))
			}
			tmp[k+ch] = gain[ch]*v + off[ch]
		}
	}
	src := tmp
	if rng.Float64() < blur {
		w := [3]float32{0.25, 0.5, 0.25}
		for j := range s {
			for i := range s {
				for ch := range 3 {
					var v float32
					for dj := -1; dj <= 1; dj++ {
						jj := min(max(j+dj, 0), s-1)
						for di := -1; di <= 1; di++ {
							ii := min(max(i+di, 0), s-1)
							v += w[dj+1] * w[di+1] * tmp[(jj*s+ii)*3+ch]
						}
					}
					x[(j*s+i)*3+ch] = v
				}
			}
		}
		src = x
	}
	for k := 0; k < len(x); k += 3 {
		for ch := range 3 {
			x[k+ch] = (src[k+ch] - mean[ch]) * inv[ch]
		}
	}
}

// BlurCrop writes into dst the crop src blurred by a Gaussian of standard
// deviation sx along x and sy along y (crop pixels; 0: none), in intensity
// (as the optics blur light), edges clamped, rounded to 8 bits.
func BlurCrop(dst, src *Crop, sx, sy float64) {
	const n = CropSide
	var tmp [CropSide * CropSide * 3]float32
	gauss.Blur(dst[:], n*3, src[:], n*3, n, n, 3, gauss.Kernel(sx, 2.5), gauss.Kernel(sy, 2.5), tmp[:])
}

// normalizeInput applies the per-crop normalisation norm to the raw OD
// input x (classify.CNNCropAffine, as the model does on a tile) and then
// the standardisation (mean, inv).
func normalizeInput(x []float32, norm string, mean, inv [3]float32) {
	a, b := classify.CNNCropAffine(norm, x)
	for k := 0; k < len(x); k += 3 {
		for ch := range 3 {
			x[k+ch] = (a[ch]*x[k+ch] + b[ch] - mean[ch]) * inv[ch]
		}
	}
}

// inputStatsNorm is inputStats on the crops' central windows after the
// per-crop normalisation norm.
func inputStatsNorm(crops []*Crop, norm string, lut *[256]float32) (mean, std [3]float64) {
	var n float64
	var s, ss [3]float64
	x := make([]float32, classify.CNNInputLen)
	for _, c := range crops {
		fillInput(x, c, 0, 0, 0, [3]float32{1, 1, 1}, lut, [3]float32{}, [3]float32{1, 1, 1})
		normalizeInput(x, norm, [3]float32{}, [3]float32{1, 1, 1})
		for k := 0; k < len(x); k += 3 {
			for ch := range 3 {
				v := float64(x[k+ch])
				s[ch] += v
				ss[ch] += v * v
			}
			n++
		}
	}
	for ch := range 3 {
		mean[ch] = s[ch] / n
		std[ch] = math.Sqrt(max(ss[ch]/n-mean[ch]*mean[ch], 1e-6))
		mean[ch] = math.Round(mean[ch]*1e4) / 1e4
		std[ch] = math.Round(std[ch]*1e4) / 1e4
	}
	return mean, std
}

// inputStats returns the per-channel OD mean and standard deviation of the
// central CNNSide window of the crops.
func inputStats(crops []*Crop, lut *[256]float32) (mean, std [3]float64) {
	var n float64
	var s, ss [3]float64
	for _, c := range crops {
		for j := cropMargin; j < cropMargin+classify.CNNSide; j++ {
			for i := cropMargin; i < cropMargin+classify.CNNSide; i++ {
				o := (j*CropSide + i) * 3
				for ch := range 3 {
					v := float64(lut[c[o+ch]])
					s[ch] += v
					ss[ch] += v * v
				}
				n++
			}
		}
	}
	for ch := range 3 {
		mean[ch] = s[ch] / n
		std[ch] = math.Sqrt(max(ss[ch]/n-mean[ch]*mean[ch], 1e-6))
		mean[ch] = math.Round(mean[ch]*1e4) / 1e4
		std[ch] = math.Round(std[ch]*1e4) / 1e4
	}
	return mean, std
}

// fitCNN trains the CNN on the samples (with crops) and returns its
// parameters. Deterministic for a given seed (single goroutine per fit).
func fitCNN(ctx context.Context, samples []Sample, o CNNOptions) (*classify.CNNParams, error) {
	switch o.Norm {
	case "", classify.CNNNormCropStd, classify.CNNNormCropGain:
	default:
		return nil, fmt.Errorf("train: cnn norm %q is not one of %q, %q, %q", o.Norm, "", classify.CNNNormCropStd, classify.CNNNormCropGain)
	}
	lut := classify.ODLUT()
	crops := make([]*Crop, 0, len(samples))
	var cnt [3]float64
	extra, other := 0, 0
	for _, s := range samples {
		crops = append(crops, s.Crop)
		switch {
		case s.Extra:
			extra++
		case s.Other:
			other++
		default:
			cnt[group(s.Class)]++
		}
	}
	mean, std := inputStats(crops, &lut)
	if o.Norm != "" {
		mean, std = inputStatsNorm(crops, o.Norm, &lut)
	}
	var m32, inv32 [3]float32
	for c := range 3 {
		m32[c], inv32[c] = float32(mean[c]), float32(1/std[c])
	}
	wts := make([]float32, len(samples))
	var tot float64
	for i, s := range samples {
		var w float64
		switch {
		case s.Extra:
			w = o.ExtraWeight / float64(extra)
		case s.Other:
			w = o.OtherWeight / float64(other)
		default:
			g := group(s.Class)
			w = 1 / cnt[g]
			if g == 2 {
				w *= o.HighWeight
			}
		}
		wts[i] = float32(w)
		tot += w
	}
	if o.FieldBalance > 0 {
		balanceFields(samples, wts, o.FieldBalance)
	}
	for i := range wts {
		wts[i] *= float32(float64(len(samples)) / tot)
	}
	rng := rand.New(rand.NewSource(o.Seed))
	net := newNet()
	heInit(rng, net.w[:], func(l int) int {
		if l == classify.CNNLayers {
			return classify.CNNWidths[classify.CNNLayers-1]
		}
		return classify.CNNLayerIn(l) * 9
	})
	m1, m2 := newNet(), newNet()
	grad := newNet()
	sc := newTrainScratch()
	odBlur := o.Blur
	var blurred Crop
	if o.BlurSigma > 0 {
		odBlur = 0
	}
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
				t := rng.Intn(8)
				ox, oy := rng.Intn(2*cropMargin+1)-cropMargin, rng.Intn(2*cropMargin+1)-cropMargin
				g0 := 0.8 + 0.4*rng.Float32()
				gain := [3]float32{g0 * (0.92 + 0.16*rng.Float32()), g0 * (0.92 + 0.16*rng.Float32()), g0 * (0.92 + 0.16*rng.Float32())}
				crop := crops[i]
				if o.BlurSigma > 0 && rng.Float64() < o.Blur {
					s := 0.25 + (o.BlurSigma-0.25)*rng.Float64()
					sx, sy := s, s
					switch rng.Intn(4) {
					case 0:
						sy = 0
					case 1:
						sx = 0
					}
					BlurCrop(&blurred, crop, sx, sy)
					crop = &blurred
				}
				switch {
				case o.Norm != "" && o.Stain > 0:
					fillAugmented(sc.x[:], sc.tmp[:], crop, t, ox, oy, g0, o.Stain, odBlur, rng, &lut, [3]float32{}, [3]float32{1, 1, 1})
					normalizeInput(sc.x[:], o.Norm, m32, inv32)
				case o.Norm != "":
					fillInput(sc.x[:], crop, t, ox, oy, gain, &lut, [3]float32{}, [3]float32{1, 1, 1})
					normalizeInput(sc.x[:], o.Norm, m32, inv32)
				case o.Stain > 0:
					fillAugmented(sc.x[:], sc.tmp[:], crop, t, ox, oy, g0, o.Stain, odBlur, rng, &lut, m32, inv32)
				default:
					fillInput(sc.x[:], crop, t, ox, oy, gain, &lut, m32, inv32)
				}
				p := net.forward(sc)
				if y := group(samples[i].Class); o.OtherBinary && samples[i].Other && y != 0 {
					net.backwardAbnormal(sc, p, wts[i])
				} else {
					net.backward(sc, p, y, wts[i])
				}
			}
			grad.zero()
			grad.add(sc.grad)
			opt.update(net.w[:], net.b[:], grad.w[:], grad.b[:], m1.w[:], m1.b[:], m2.w[:], m2.b[:], end-start)
		}
	}
	p := &classify.CNNParams{InMean: mean, InStd: std, InputNorm: o.Norm}
	for l := range classify.CNNLayers + 1 {
		p.Conv[l] = append([]float32(nil), net.w[l]...)
		p.Bias[l] = append([]float32(nil), net.b[l]...)
	}
	return p, nil
}

// predictCNN returns the group probabilities (NILM, low, high) of the
// crops (centre, no augmentation) with the trained parameters, as the
// model computes them on a tile.
func predictCNN(p *classify.CNNParams, crops []*Crop) [][classify.CNNGroups]float32 {
	lut := classify.ODLUT()
	var m32, inv32 [3]float32
	for c := range 3 {
		m32[c], inv32[c] = float32(p.InMean[c]), float32(1/p.InStd[c])
	}
	net := &cnnNet{w: p.Conv, b: p.Bias}
	out := make([][classify.CNNGroups]float32, len(crops))
	sc := newTrainScratch()
	for i, c := range crops {
		if p.InputNorm != "" {
			fillInput(sc.x[:], c, 0, 0, 0, [3]float32{1, 1, 1}, &lut, [3]float32{}, [3]float32{1, 1, 1})
			normalizeInput(sc.x[:], p.InputNorm, m32, inv32)
		} else {
			fillInput(sc.x[:], c, 0, 0, 0, [3]float32{1, 1, 1}, &lut, m32, inv32)
		}
		out[i] = net.forward(sc)
	}
	return out
}

// parallel runs jobs on up to GOMAXPROCS goroutines and returns the first
// error.
func parallel(n int, job func(i int) error) error {
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = job(i)
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// crossValidateCNN fits one CNN per fold (folds in parallel) and, unless
// cvOnly, the final one on all samples (index k), and returns them with the
// out-of-fold group probabilities of every sample.
func crossValidateCNN(ctx context.Context, samples []Sample, fold map[string]int, k int, o CNNOptions, cvOnly bool) ([]*classify.CNNParams, [][classify.CNNGroups]float32, error) {
	nets := make([]*classify.CNNParams, k+1)
	n := k + 1
	if cvOnly {
		n = k
	}
	err := parallel(n, func(f int) error {
		var tr []Sample
		for _, s := range samples {
			if f == k || fold[s.Field] != f {
				tr = append(tr, s)
			}
		}
		p, err := fitCNN(ctx, tr, o)
		nets[f] = p
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	oof := make([][classify.CNNGroups]float32, len(samples))
	for f := range k {
		var idx []int
		var crops []*Crop
		for i, s := range samples {
			if fold[s.Field] == f {
				idx = append(idx, i)
				crops = append(crops, s.Crop)
			}
		}
		for j, p := range predictCNN(nets[f], crops) {
			oof[idx[j]] = p
		}
	}
	return nets, oof, nil
}

// DefaultCNNNILMWeight is the CNN's weight in P(NILM): on the pooled
// out-of-fold predictions (30 epochs, with cric/more-fields) 0.5 raised the
// low-grade-vs-NILM AUC from 0.842 to 0.856 (0.3: 0.851, 0.7: 0.855, 1:
// 0.837) and left the high-grade ranking alone.
const DefaultCNNNILMWeight = 0.5

// DefaultCNNWeight is the weight of the CNN in the fused high-grade
// probability. On the pooled out-of-fold predictions 0.7 separated high
// grade from NILM best for every CNN configuration tried (0.5 and 1 lower).
const DefaultCNNWeight = 0.7

// CNNPixelUM is the pixel size of the CNN's input crop.
var CNNPixelUM = 0.5

// balanceFields rescales the weights of the labelled high-grade samples
// (not field negatives nor other labs' cells) by (mean n / n_f)^alpha, n_f
// the high-grade samples of their field, keeping their total.
func balanceFields(samples []Sample, wts []float32, alpha float64) {
	per := map[string]int{}
	var idx []int
	for i, s := range samples {
		if !s.Extra && !s.Other && s.Class.HighGrade() {
			per[s.Field]++
			idx = append(idx, i)
		}
	}
	if len(per) < 2 {
		return
	}
	mean := float64(len(idx)) / float64(len(per))
	var before, after float64
	for _, i := range idx {
		before += float64(wts[i])
		wts[i] *= float32(math.Pow(mean/float64(per[samples[i].Field]), alpha))
		after += float64(wts[i])
	}
	for _, i := range idx {
		wts[i] *= float32(before / after)
	}
}
