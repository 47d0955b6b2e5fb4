package classify

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// The optional convolutional head of a model: a small CNN on the
// nucleus-centred crop at the model's pixel size, fused with the feature
// head on the high-grade probability (see ModelParams.CNN).
const (
	// CNNSide is the side (px) of the CNN's input crop at the model's pixel
	// size: 16 µm at 0.5 µm/px, the nucleus and its nearest cytoplasm.
	CNNSide = 32
	// CNNChannels is the number of input channels: optical density of
	// red, green and blue.
	CNNChannels = 3
	// CNNInputLen is the length of an input crop (HWC layout).
	CNNInputLen = CNNSide * CNNSide * CNNChannels
	// CNNGroups is the number of CNN outputs: NILM, low grade, high grade.
	CNNGroups = 3
)

// CNNWidths are the output channels of the three 3x3 convolution layers
// (each ReLU; max-pooling 2x2 after the first two, global average pooling
// after the third, then a linear layer to CNNGroups logits).
var CNNWidths = [3]int{6, 12, 16}

// CNNParams are the weights of the convolutional head. Conv[l] holds
// Widths[l] filters of 3·3·in values (layout [out][ky][kx][in]) and Bias[l]
// their biases; Conv[3]/Bias[3] is the final linear layer
// ([CNNGroups][Widths[2]]).
type CNNParams struct {
	// InMean and InStd standardise each input channel's optical density.
	InMean [CNNChannels]float64 `json:"in_mean"`
	InStd  [CNNChannels]float64 `json:"in_std"`
	Conv   [4][]float32         `json:"conv"`
	Bias   [4][]float32         `json:"bias"`
}

// CNNLayerIn returns the input channels of layer l (0..3).
func CNNLayerIn(l int) int {
	if l == 0 {
		return CNNChannels
	}
	return CNNWidths[l-1]
}

// CNNLayerOut returns the output channels of layer l (0..3).
func CNNLayerOut(l int) int {
	if l == 3 {
		return CNNGroups
	}
	return CNNWidths[l]
}

// CNNLayerSize returns the number of weights of layer l.
func CNNLayerSize(l int) int {
	if l == 3 {
		return CNNGroups * CNNWidths[2]
	}
	return CNNLayerOut(l) * 9 * CNNLayerIn(l)
}

// Check reports whether the parameters have the expected shapes.
func (p *CNNParams) Check() error {
	for l := range 4 {
		if len(p.Conv[l]) != CNNLayerSize(l) || len(p.Bias[l]) != CNNLayerOut(l) {
			return fmt.Errorf("classify: cnn layer %d has %d weights and %d biases, want %d and %d",
				l, len(p.Conv[l]), len(p.Bias[l]), CNNLayerSize(l), CNNLayerOut(l))
		}
		for _, v := range p.Conv[l] {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return errors.New("classify: cnn weight is not finite")
			}
		}
	}
	for c := range CNNChannels {
		if !(p.InStd[c] > 0) {
			return errors.New("classify: cnn in_std must be > 0")
		}
	}
	return nil
}

// ODLUT maps an 8-bit intensity to optical density -log10((v+1)/256).
func ODLUT() [256]float32 {
	var t [256]float32
	for v := range t {
		t[v] = float32(-math.Log10((float64(v) + 1) / 256))
	}
	return t
}

// CNNInput fills dst (CNNInputLen, HWC) with the raw optical densities of
// the CNNSide×CNNSide window of img centred on (cx, cy) (pixels outside img
// are white: OD 0). The window is taken at img's pixel size, which must be
// the model's. ox, oy shift the window (training augmentation).
func CNNInput(dst []float32, img *image.RGBA, cx, cy float64, ox, oy int, lut *[256]float32) {
	b := img.Bounds()
	x0 := int(math.Round(cx)) - CNNSide/2 + ox
	y0 := int(math.Round(cy)) - CNNSide/2 + oy
	k := 0
	for j := range CNNSide {
		y := y0 + j
		for i := range CNNSide {
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

// cnnScratch holds the activations of one inference.
type cnnScratch struct {
	in     [CNNInputLen]float32
	a1     []float32 // 32x32xW0
	p1     []float32 // 16x16xW0
	a2     []float32 // 16x16xW1
	p2     []float32 // 8x8xW1
	a3     []float32 // 8x8xW2
	pooled []float32
	patch  []float32
}

func newCNNScratch() *cnnScratch {
	s := CNNSide
	return &cnnScratch{
		a1:     make([]float32, s*s*CNNWidths[0]),
		p1:     make([]float32, s*s/4*CNNWidths[0]),
		a2:     make([]float32, s*s/4*CNNWidths[1]),
		p2:     make([]float32, s*s/16*CNNWidths[1]),
		a3:     make([]float32, s*s/16*CNNWidths[2]),
		pooled: make([]float32, CNNWidths[2]),
		patch:  make([]float32, 9*max(CNNChannels, CNNWidths[0], CNNWidths[1])),
	}
}

// Conv3x3 computes out = conv(in) + bias with zero padding 1, in HWC
// layout (h×w×cin → h×w×cout), weights [cout][3][3][cin]. When relu is set
// negative outputs are clamped to 0. patch is scratch of at least 9·cin.
func Conv3x3(out, in []float32, h, w, cin, cout int, wt, bias, patch []float32, relu bool) {
	k := 9 * cin
	patch = patch[:k]
	for y := range h {
		for x := range w {
			// Gather the 3x3 neighbourhood (zeros outside) in weight order.
			for ky := range 3 {
				yy := y + ky - 1
				for kx := range 3 {
					xx := x + kx - 1
					dst := patch[(ky*3+kx)*cin : (ky*3+kx+1)*cin]
					if yy < 0 || yy >= h || xx < 0 || xx >= w {
						clear(dst)
						continue
					}
					copy(dst, in[(yy*w+xx)*cin:(yy*w+xx+1)*cin])
				}
			}
			o := out[(y*w+x)*cout : (y*w+x+1)*cout]
			for c := range o {
				o[c] = bias[c] + dot(wt[c*k:(c+1)*k], patch)
				if relu && o[c] < 0 {
					o[c] = 0
				}
			}
		}
	}
}

// dot returns the dot product of a and b (len(b) >= len(a)).
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// MaxPool2 halves an h×w×c HWC map (h, w even) by 2x2 maxima.
func MaxPool2(out, in []float32, h, w, c int) {
	for y := 0; y < h/2; y++ {
		for x := 0; x < w/2; x++ {
			o := out[(y*(w/2)+x)*c : (y*(w/2)+x+1)*c]
			a := in[((2*y)*w+2*x)*c:]
			b := in[((2*y)*w+2*x+1)*c:]
			d := in[((2*y+1)*w+2*x)*c:]
			e := in[((2*y+1)*w+2*x+1)*c:]
			for k := range o {
				o[k] = max(a[k], b[k], d[k], e[k])
			}
		}
	}
}

// cnn is a compiled CNNParams.
type cnn struct {
	p      CNNParams
	mean   [CNNChannels]float32
	invStd [CNNChannels]float32
}

func compileCNN(p *CNNParams) (*cnn, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	c := &cnn{p: *p}
	for i := range CNNChannels {
		c.mean[i] = float32(p.InMean[i])
		c.invStd[i] = float32(1 / p.InStd[i])
	}
	return c, nil
}

// forward returns the group probabilities (NILM, low, high) of the raw OD
// crop in sc.in (standardised in place).
func (n *cnn) forward(sc *cnnScratch) [CNNGroups]float32 {
	in := sc.in[:]
	for k := 0; k < len(in); k += 3 {
		for c := range CNNChannels {
			in[k+c] = (in[k+c] - n.mean[c]) * n.invStd[c]
		}
	}
	s, w := CNNSide, CNNWidths
	Conv3x3(sc.a1, in, s, s, CNNChannels, w[0], n.p.Conv[0], n.p.Bias[0], sc.patch, true)
	MaxPool2(sc.p1, sc.a1, s, s, w[0])
	Conv3x3(sc.a2, sc.p1, s/2, s/2, w[0], w[1], n.p.Conv[1], n.p.Bias[1], sc.patch, true)
	MaxPool2(sc.p2, sc.a2, s/2, s/2, w[1])
	Conv3x3(sc.a3, sc.p2, s/4, s/4, w[1], w[2], n.p.Conv[2], n.p.Bias[2], sc.patch, true)
	GlobalAvg(sc.pooled, sc.a3, s/4*s/4, w[2])
	var logit [CNNGroups]float32
	for g := range logit {
		row := n.p.Conv[3][g*w[2] : (g+1)*w[2]]
		v := n.p.Bias[3][g]
		for i, x := range sc.pooled {
			v += row[i] * x
		}
		logit[g] = v
	}
	return Softmax3(logit)
}

// GlobalAvg averages an n-pixel HWC map of c channels into out (c).
func GlobalAvg(out, in []float32, n, c int) {
	for k := range out[:c] {
		out[k] = 0
	}
	for p := range n {
		for k, v := range in[p*c : (p+1)*c] {
			out[k] += v
		}
	}
	inv := 1 / float32(n)
	for k := range out[:c] {
		out[k] *= inv
	}
}

// Softmax3 returns the softmax of three logits.
func Softmax3(l [CNNGroups]float32) [CNNGroups]float32 {
	mx := max(l[0], l[1], l[2])
	var p [CNNGroups]float32
	var s float32
	for i, v := range l {
		p[i] = float32(math.Exp(float64(v - mx)))
		s += p[i]
	}
	for i := range p {
		p[i] /= s
	}
	return p
}
