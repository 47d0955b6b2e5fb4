package classify

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// The optional second stage of a model (the cascade): a deeper CNN on a
// wider crop around the nucleus with a six-class head, run only on cells
// whose first-stage suspicion (1 − P(NILM)) reaches CascadeParams.Gate.
// Its calibrated probabilities are mixed into the first stage's (weight
// CascadeParams.Weight), so a cell's Probs, Class and Score already carry
// the second opinion wherever it ran.
const (
	// CascadeSide is the side (px) of the second stage's input crop at the
	// model's pixel size.
	CascadeSide = 48
	// CascadeInputLen is the length of a second-stage input crop (HWC, OD
	// of R, G, B).
	CascadeInputLen = CascadeSide * CascadeSide * CNNChannels
	// CascadeLayers is the number of 3x3 convolution layers of the second
	// stage.
	CascadeLayers = 4
)

// CascadeWidths are the output channels of the second stage's 3x3
// convolutions (each ReLU; 2x2 max-pooling after all but the last, global
// average pooling after the last, then a linear layer to NumClasses
// logits).
var CascadeWidths = [CascadeLayers]int{8, 16, 32, 32}

// CascadeLayerSide returns the side (px) of the input of layer l.
func CascadeLayerSide(l int) int { return CascadeSide >> l }

// CascadeLayerIn returns the input channels of layer l (0..CascadeLayers).
func CascadeLayerIn(l int) int {
	if l == 0 {
		return CNNChannels
	}
	return CascadeWidths[l-1]
}

// CascadeLayerOut returns the output channels of layer l (0..CascadeLayers).
func CascadeLayerOut(l int) int {
	if l == CascadeLayers {
		return NumClasses
	}
	return CascadeWidths[l]
}

// CascadeLayerSize returns the number of weights of layer l.
func CascadeLayerSize(l int) int {
	if l == CascadeLayers {
		return NumClasses * CascadeWidths[CascadeLayers-1]
	}
	return CascadeLayerOut(l) * 9 * CascadeLayerIn(l)
}

// CascadeMACs returns the multiply-adds of one second-stage forward pass.
func CascadeMACs() int {
	n := 0
	for l := range CascadeLayers {
		s := CascadeLayerSide(l)
		n += s * s * CascadeLayerSize(l)
	}
	return n + CascadeLayerSize(CascadeLayers)
}

// CascadeNet are the weights of one second-stage network. Conv[l] holds
// Widths[l] filters of 3·3·in values (layout [out][ky][kx][in]);
// Conv[CascadeLayers] is the final linear layer ([NumClasses][last width]).
type CascadeNet struct {
	InMean [CNNChannels]float64         `json:"in_mean"`
	InStd  [CNNChannels]float64         `json:"in_std"`
	Conv   [CascadeLayers + 1][]float32 `json:"conv"`
	Bias   [CascadeLayers + 1][]float32 `json:"bias"`
}

// CascadeParams is the second stage of a model (see ModelParams.Cascade):
// the settings shared by the final model and the fold models, and the
// final network.
type CascadeParams struct {
	// Gate is the first-stage suspicion 1 − P(NILM) at or above which the
	// second stage runs.
	Gate float64 `json:"gate"`
	// Weight of the second stage's probabilities in the mixture with the
	// first stage's: p = (1−Weight)·p1 + Weight·p2.
	Weight float64 `json:"weight"`
	// Temperature calibrates the second stage's probabilities before the
	// mixture (fitted on its out-of-fold predictions); 0 or 1: none.
	Temperature float64 `json:"temperature,omitempty"`
	// Net is the network (the final model's, or the fold's in a Fold).
	Net CascadeNet `json:"net"`
}

// Check reports whether the network has the expected shapes.
func (p *CascadeNet) Check() error {
	for l := range CascadeLayers + 1 {
		if len(p.Conv[l]) != CascadeLayerSize(l) || len(p.Bias[l]) != CascadeLayerOut(l) {
			return fmt.Errorf("classify: cascade layer %d has %d weights and %d biases, want %d and %d",
				l, len(p.Conv[l]), len(p.Bias[l]), CascadeLayerSize(l), CascadeLayerOut(l))
		}
		for _, v := range p.Conv[l] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return errors.New("classify: cascade weight is not finite")
			}
		}
	}
	for c := range CNNChannels {
		if !(p.InStd[c] > 0) {
			return errors.New("classify: cascade in_std must be > 0")
		}
	}
	return nil
}

// cascade is a compiled CascadeParams.
type cascade struct {
	net    CascadeNet
	mean   [CNNChannels]float32
	invStd [CNNChannels]float32
	gate   float32
	w      float32
	invT   float64
}

func compileCascade(p *CascadeParams) (*cascade, error) {
	if err := p.Net.Check(); err != nil {
		return nil, err
	}
	if !(p.Gate >= 0 && p.Gate <= 1) {
		return nil, fmt.Errorf("classify: cascade gate %v must be in [0, 1]", p.Gate)
	}
	if !(p.Weight >= 0 && p.Weight <= 1) {
		return nil, fmt.Errorf("classify: cascade weight %v must be in [0, 1]", p.Weight)
	}
	c := &cascade{net: p.Net, gate: float32(p.Gate), w: float32(p.Weight)}
	if t := p.Temperature; t != 0 {
		if !(t >= 0.1 && t <= 10) {
			return nil, fmt.Errorf("classify: cascade temperature %v must be in [0.1, 10]", t)
		}
		if t != 1 {
			c.invT = 1 / t
		}
	}
	for i := range CNNChannels {
		c.mean[i] = float32(p.Net.InMean[i])
		c.invStd[i] = float32(1 / p.Net.InStd[i])
	}
	return c, nil
}

// cascadeScratch holds the activations of one second-stage inference; the
// convolution inputs carry a zero border of one pixel (see convPadded).
type cascadeScratch struct {
	pin    [CascadeLayers][]float32
	act    []float32
	pooled []float32
	win    *image.RGBA // resampled window (tiles at another pixel size)
}

func newCascadeScratch() *cascadeScratch {
	sc := &cascadeScratch{pooled: make([]float32, CascadeWidths[CascadeLayers-1])}
	n := 0
	for l := range CascadeLayers {
		s := CascadeLayerSide(l)
		sc.pin[l] = make([]float32, (s+2)*(s+2)*CascadeLayerIn(l))
		n = max(n, s*s*CascadeWidths[l])
	}
	sc.act = make([]float32, n)
	return sc
}

// CascadeRunner runs one second-stage network (training and tests use it
// for out-of-fold predictions with the arithmetic of inference). Not safe
// for concurrent use.
type CascadeRunner struct {
	c  *cascade
	sc *cascadeScratch
}

// NewCascadeRunner compiles net.
func NewCascadeRunner(net *CascadeNet) (*CascadeRunner, error) {
	c, err := compileCascade(&CascadeParams{Net: *net})
	if err != nil {
		return nil, err
	}
	return &CascadeRunner{c: c, sc: newCascadeScratch()}, nil
}

// Logits returns the six class logits of the raw OD crop.
func (r *CascadeRunner) Logits(crop *[CascadeInputLen]float32) [NumClasses]float32 {
	return r.c.logits(crop, r.sc)
}

// logits returns the six class logits of the raw OD crop (CascadeInputLen,
// HWC) into sc.
func (c *cascade) logits(crop *[CascadeInputLen]float32, sc *cascadeScratch) [NumClasses]float32 {
	const s0 = CascadeSide
	pin := sc.pin[0]
	for y := range s0 {
		src := crop[y*s0*CNNChannels : (y+1)*s0*CNNChannels]
		dst := pin[((y+1)*(s0+2)+1)*CNNChannels : ((y+1)*(s0+2)+1+s0)*CNNChannels]
		for k := 0; k < len(src); k += CNNChannels {
			for ch := range CNNChannels {
				dst[k+ch] = (src[k+ch] - c.mean[ch]) * c.invStd[ch]
			}
		}
	}
	for l := range CascadeLayers {
		s := CascadeLayerSide(l)
		convPadded(sc.act, sc.pin[l], s, s, CascadeLayerIn(l), CascadeWidths[l], c.net.Conv[l], c.net.Bias[l], true)
		if l < CascadeLayers-1 {
			maxPoolPadded(sc.pin[l+1], sc.act, s, s, CascadeWidths[l])
		}
	}
	last := CascadeLayerSide(CascadeLayers - 1)
	wl := CascadeWidths[CascadeLayers-1]
	GlobalAvg(sc.pooled, sc.act, last*last, wl)
	var logit [NumClasses]float32
	for g := range logit {
		row := c.net.Conv[CascadeLayers][g*wl : (g+1)*wl]
		v := c.net.Bias[CascadeLayers][g]
		for i, x := range sc.pooled {
			v += row[i] * x
		}
		logit[g] = v
	}
	return logit
}

// probs returns the calibrated second-stage probabilities of crop.
func (c *cascade) probs(crop *[CascadeInputLen]float32, sc *cascadeScratch) [NumClasses]float32 {
	return CascadeProbs(c.logits(crop, sc), c.invT)
}

// CascadeProbs turns second-stage logits into probabilities tempered by
// 1/invT (invT 0: none).
func CascadeProbs(logit [NumClasses]float32, invT float64) [NumClasses]float32 {
	if invT == 0 {
		invT = 1
	}
	mx := logit[0]
	for _, v := range logit[1:] {
		mx = max(mx, v)
	}
	var p [NumClasses]float32
	var s float64
	var q [NumClasses]float64
	for i, v := range logit {
		q[i] = math.Exp(invT * float64(v-mx))
		s += q[i]
	}
	for i := range p {
		p[i] = float32(q[i] / s)
	}
	return p
}

// MixCascade returns (1−w)·p1 + w·p2 (both distributions).
func MixCascade(p1, p2 [NumClasses]float32, w float32) [NumClasses]float32 {
	var out [NumClasses]float32
	for c := range out {
		out[c] = (1-w)*p1[c] + w*p2[c]
	}
	return out
}

// Gated reports whether a first-stage probability vector reaches the
// second stage's gate.
func (c *cascade) gated(p [NumClasses]float32) bool {
	return SuspicionScore(p) >= c.gate
}

// CascadeInput fills dst (CascadeInputLen, HWC) with the raw optical
// densities of the CascadeSide² window of img centred on (cx, cy) at the
// model's pixel size dstUM (img has pixel size srcUM; the window is
// resampled when they differ, into *win). Pixels outside img are white
// (OD 0).
func CascadeInput(dst *[CascadeInputLen]float32, img *image.RGBA, cx, cy, srcUM, dstUM float64, win **image.RGBA, lut *[256]float32) {
	if r := srcUM / dstUM; srcUM > 0 && (r < 0.97 || r > 1.03) {
		*win = resampleWindow(*win, img, cx, cy, srcUM, dstUM, CascadeSide)
		img = *win
		cx, cy = float64(CascadeSide)/2-0.5, float64(CascadeSide)/2-0.5
	}
	b := img.Bounds()
	// The window of an even side centred on the pixel-centre coordinate cx
	// starts at cx − side/2 + 0.5 (rounded), as resampleWindow's does.
	x0 := int(math.Round(cx - CascadeSide/2 + 0.5))
	y0 := int(math.Round(cy - CascadeSide/2 + 0.5))
	k := 0
	for j := range CascadeSide {
		y := y0 + j
		for i := range CascadeSide {
			x := x0 + i
			if x < b.Min.X || y < b.Min.Y || x >= b.Max.X || y >= b.Max.Y {
				dst[k], dst[k+1], dst[k+2] = 0, 0, 0
			} else {
				o := img.PixOffset(x, y)
				dst[k], dst[k+1], dst[k+2] = lut[img.Pix[o]], lut[img.Pix[o+1]], lut[img.Pix[o+2]]
			}
			k += 3
		}
	}
}
