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
	// size.
	CNNSide = 32
	// CNNChannels is the number of input channels: optical density of
	// red, green and blue.
	CNNChannels = 3
	// CNNInputLen is the length of an input crop (HWC layout).
	CNNInputLen = CNNSide * CNNSide * CNNChannels
	// CNNGroups is the number of CNN outputs: NILM, low grade, high grade.
	CNNGroups = 3
	// CNNLayers is the number of 3x3 convolution layers.
	CNNLayers = 3
)

// CNNWidths are the output channels of the 3x3 convolution layers (each
// ReLU; 2x2 max-pooling after all but the last, global average pooling
// after the last, then a linear layer to CNNGroups logits).
var CNNWidths = [CNNLayers]int{6, 12, 16}

// CNNLayerSide returns the side (px) of the input of convolution layer l.
func CNNLayerSide(l int) int { return CNNSide >> l }

// CNNParams are the weights of the convolutional head. Conv[l] holds
// Widths[l] filters of 3·3·in values (layout [out][ky][kx][in]) and Bias[l]
// their biases; Conv[CNNLayers]/Bias[CNNLayers] is the final linear layer
// ([CNNGroups][Widths[CNNLayers-1]]).
type CNNParams struct {
	// InMean and InStd standardise each input channel's optical density.
	InMean [CNNChannels]float64     `json:"in_mean"`
	InStd  [CNNChannels]float64     `json:"in_std"`
	Conv   [CNNLayers + 1][]float32 `json:"conv"`
	Bias   [CNNLayers + 1][]float32 `json:"bias"`
	// InputNorm normalises each crop's optical densities before InMean and
	// InStd (see CNNCropAffine): "" (absent in older weights files) none,
	// CNNNormCropStd or CNNNormCropGain.
	InputNorm string `json:"input_norm,omitempty"`
}

// Per-crop input normalisations of the CNN (CNNParams.InputNorm).
const (
	// CNNNormCropStd standardises each OD channel by the crop's own mean
	// and standard deviation: invariant to per-channel stain gains and
	// lamp offsets (another lab's stain strength, hue and white balance).
	CNNNormCropStd = "crop-std"
	// CNNNormCropGain divides each OD channel by the crop's mean OD of
	// that channel: invariant to per-channel stain gains; glass stays
	// near 0.
	CNNNormCropGain = "crop-gain"
)

// cnnNormFloor bounds the divisor of the per-crop normalisations (OD): a
// crop of nearly uniform glass is not blown up into noise.
const cnnNormFloor = 0.02

// CNNCropAffine returns the per-channel affine map x' = a·x + b that the
// normalisation norm applies to the raw OD crop (HWC, CNNChannels per
// pixel) before the model's standardisation. Training and inference both
// call it, so they normalise identically.
func CNNCropAffine(norm string, crop []float32) (a, b [CNNChannels]float32) {
	a = [CNNChannels]float32{1, 1, 1}
	if norm == "" {
		return a, b
	}
	var s, ss [CNNChannels]float64
	n := 0
	for k := 0; k+CNNChannels <= len(crop); k += CNNChannels {
		for c := range CNNChannels {
			v := float64(crop[k+c])
			s[c] += v
			ss[c] += v * v
		}
		n++
	}
	if n == 0 {
		return a, b
	}
	for c := range CNNChannels {
		m := s[c] / float64(n)
		switch norm {
		case CNNNormCropStd:
			sd := math.Sqrt(max(ss[c]/float64(n)-m*m, 0))
			a[c] = float32(1 / max(sd, cnnNormFloor))
			b[c] = float32(-m) * a[c]
		case CNNNormCropGain:
			a[c] = float32(1 / max(m, cnnNormFloor))
		}
	}
	return a, b
}

// CNNLayerIn returns the input channels of layer l (0..CNNLayers).
func CNNLayerIn(l int) int {
	if l == 0 {
		return CNNChannels
	}
	return CNNWidths[l-1]
}

// CNNLayerOut returns the output channels of layer l (0..CNNLayers).
func CNNLayerOut(l int) int {
	if l == CNNLayers {
		return CNNGroups
	}
	return CNNWidths[l]
}

// CNNLayerSize returns the number of weights of layer l.
func CNNLayerSize(l int) int {
	if l == CNNLayers {
		return CNNGroups * CNNWidths[CNNLayers-1]
	}
	return CNNLayerOut(l) * 9 * CNNLayerIn(l)
}

// CNNMACs returns the multiply-adds of one forward pass.
func CNNMACs() int {
	n := 0
	for l := range CNNLayers {
		s := CNNLayerSide(l)
		n += s * s * CNNLayerSize(l)
	}
	return n + CNNLayerSize(CNNLayers)
}

// Check reports whether the parameters have the expected shapes.
func (p *CNNParams) Check() error {
	for l := range CNNLayers + 1 {
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
	switch p.InputNorm {
	case "", CNNNormCropStd, CNNNormCropGain:
	default:
		return fmt.Errorf("classify: cnn input_norm %q is not one of %q, %q, %q", p.InputNorm, "", CNNNormCropStd, CNNNormCropGain)
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

// cnnScratch holds the activations of one inference. The inputs of the
// convolutions (pin) are stored with a zero border of one pixel, so that
// every output pixel reads its 3x3 neighbourhood in place.
type cnnScratch struct {
	crop   *[CNNInputLen]float32 // raw OD crop to classify
	pin    [CNNLayers][]float32  // padded conv inputs
	act    []float32             // conv output (after ReLU), largest layer
	pooled []float32
}

func newCNNScratch() *cnnScratch {
	sc := &cnnScratch{pooled: make([]float32, CNNWidths[CNNLayers-1])}
	n := 0
	for l := range CNNLayers {
		s := CNNLayerSide(l)
		sc.pin[l] = make([]float32, (s+2)*(s+2)*CNNLayerIn(l))
		n = max(n, s*s*CNNWidths[l])
	}
	sc.act = make([]float32, n)
	return sc
}

// convPadded is Conv3x3 on an input stored with a zero border of one
// pixel ((h+2)×(w+2)×cin): in HWC a 3-pixel row segment is 3·cin
// contiguous values in the weights' order, so each output reads three
// slices in place. Output channels are computed four at a time (each input
// value loaded once for four filters).
func convPadded(out, in []float32, h, w, cin, cout int, wt, bias []float32, relu bool) {
	k := 9 * cin
	r := 3 * cin
	stride := (w + 2) * cin
	in = in[:(h+2)*stride]
	out = out[:h*w*cout]
	c := 0
	for ; c+4 <= cout; c += 4 {
		f := wt[c*k : (c+4)*k]
		b0, b1, b2, b3 := bias[c], bias[c+1], bias[c+2], bias[c+3]
		for y := range h {
			for x := range w {
				s0, s1, s2, s3 := b0, b1, b2, b3
				base := y*stride + x*cin
				for j := range 3 {
					row := in[base+j*stride : base+j*stride+r]
					f0 := f[j*r : j*r+len(row)]
					f1 := f[k+j*r : k+j*r+len(row)]
					f2 := f[2*k+j*r : 2*k+j*r+len(row)]
					f3 := f[3*k+j*r : 3*k+j*r+len(row)]
					for i, v := range row {
						s0 += f0[i] * v
						s1 += f1[i] * v
						s2 += f2[i] * v
						s3 += f3[i] * v
					}
				}
				if relu {
					s0, s1, s2, s3 = max(s0, 0), max(s1, 0), max(s2, 0), max(s3, 0)
				}
				o := out[(y*w+x)*cout+c : (y*w+x)*cout+c+4]
				o[0], o[1], o[2], o[3] = s0, s1, s2, s3
			}
		}
	}
	for ; c < cout; c++ {
		f := wt[c*k : (c+1)*k]
		for y := range h {
			for x := range w {
				s := bias[c]
				base := y*stride + x*cin
				for j := range 3 {
					row := in[base+j*stride : base+j*stride+r]
					fj := f[j*r : j*r+len(row)]
					for i, v := range row {
						s += fj[i] * v
					}
				}
				if relu {
					s = max(s, 0)
				}
				out[(y*w+x)*cout+c] = s
			}
		}
	}
}

// maxPoolPadded is MaxPool2 writing into the interior of a padded
// ((h/2+2)×(w/2+2)×c) map whose border stays zero.
func maxPoolPadded(out, in []float32, h, w, c int) {
	maxPool(out, in, h, w, c, 1)
}

// Conv3x3 computes out = conv(in) + bias with zero padding 1, in HWC
// layout (h×w×cin → h×w×cout), weights [cout][3][3][cin]. When relu is set
// negative outputs are clamped to 0. patch is scratch of at least 9·cin.
// Interior pixels read the three input rows in place (in HWC a 3-pixel row
// segment is 3·cin contiguous values, in the weights' order); only border
// pixels gather a zero-padded patch.
func Conv3x3(out, in []float32, h, w, cin, cout int, wt, bias, patch []float32, relu bool) {
	k := 9 * cin
	r := 3 * cin
	stride := w * cin
	wt = wt[:cout*k]
	bias = bias[:cout]
	for y := range h {
		for x := range w {
			o := out[(y*w+x)*cout : (y*w+x+1)*cout]
			if y == 0 || y == h-1 || x == 0 || x == w-1 {
				convBorder(o, in, y, x, h, w, cin, wt, bias, patch[:k], relu)
				continue
			}
			base := ((y-1)*w + x - 1) * cin
			r0 := in[base : base+r]
			r1 := in[base+stride : base+stride+r]
			r2 := in[base+2*stride : base+2*stride+r]
			c := 0
			for ; c+4 <= cout; c += 4 {
				v := dot3x4(wt[c*k:c*k+4*k], r0, r1, r2)
				for q := range 4 {
					v[q] += bias[c+q]
					if relu && v[q] < 0 {
						v[q] = 0
					}
				}
				copy(o[c:c+4], v[:])
			}
			for ; c < cout; c++ {
				v := bias[c] + dot3(wt[c*k:c*k+k], r0, r1, r2)
				if relu && v < 0 {
					v = 0
				}
				o[c] = v
			}
		}
	}
}

// dot3x4 returns the dot products of four consecutive filters of w (each
// 3·len(a) values) with a, b, c concatenated: each input value is loaded
// once for four filters.
func dot3x4(w, a, b, c []float32) [4]float32 {
	r := len(a)
	k := 3 * r
	w = w[:4*k]
	var s0, s1, s2, s3 float32
	for j, row := range [3][]float32{a, b, c} {
		row = row[:r]
		f0 := w[j*r : j*r+r]
		f1 := w[k+j*r : k+j*r+r]
		f2 := w[2*k+j*r : 2*k+j*r+r]
		f3 := w[3*k+j*r : 3*k+j*r+r]
		for i, v := range row {
			s0 += f0[i] * v
			s1 += f1[i] * v
			s2 += f2[i] * v
			s3 += f3[i] * v
		}
	}
	return [4]float32{s0, s1, s2, s3}
}

// convBorder computes one border pixel of Conv3x3 through a zero-padded
// patch.
func convBorder(o, in []float32, y, x, h, w, cin int, wt, bias, patch []float32, relu bool) {
	k := 9 * cin
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
	for c := range o {
		v := bias[c] + dot(wt[c*k:(c+1)*k], patch)
		if relu && v < 0 {
			v = 0
		}
		o[c] = v
	}
}

// dot3 returns the dot product of w (3·len(a)) with a, b, c concatenated.
func dot3(w, a, b, c []float32) float32 {
	r := len(a)
	w = w[:3*r]
	b = b[:r]
	c = c[:r]
	w0, w1, w2 := w[:r], w[r:2*r], w[2*r:3*r]
	var s0, s1, s2 float32
	for i, v := range a {
		s0 += w0[i] * v
		s1 += w1[i] * b[i]
		s2 += w2[i] * c[i]
	}
	return s0 + s1 + s2
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
	maxPool(out, in, h, w, c, 0)
}

// maxPool writes the 2x2 maxima of an h×w×c HWC map into out, a map of
// (h/2+2·pad)×(w/2+2·pad)×c whose border of pad pixels it leaves alone.
func maxPool(out, in []float32, h, w, c, pad int) {
	ow := w/2 + 2*pad
	for y := 0; y < h/2; y++ {
		for x := 0; x < w/2; x++ {
			o := out[((y+pad)*ow+x+pad)*c : ((y+pad)*ow+x+pad+1)*c]
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
// crop sc.crop.
func (n *cnn) forward(sc *cnnScratch) [CNNGroups]float32 {
	const s0 = CNNSide
	pin := sc.pin[0]
	if n.p.InputNorm == "" {
		for y := range s0 {
			src := sc.crop[y*s0*CNNChannels : (y+1)*s0*CNNChannels]
			dst := pin[((y+1)*(s0+2)+1)*CNNChannels : ((y+1)*(s0+2)+1+s0)*CNNChannels]
			for k := 0; k < len(src); k += CNNChannels {
				for c := range CNNChannels {
					dst[k+c] = (src[k+c] - n.mean[c]) * n.invStd[c]
				}
			}
		}
	} else {
		a, b := CNNCropAffine(n.p.InputNorm, sc.crop[:])
		for y := range s0 {
			src := sc.crop[y*s0*CNNChannels : (y+1)*s0*CNNChannels]
			dst := pin[((y+1)*(s0+2)+1)*CNNChannels : ((y+1)*(s0+2)+1+s0)*CNNChannels]
			for k := 0; k < len(src); k += CNNChannels {
				for c := range CNNChannels {
					dst[k+c] = (a[c]*src[k+c] + b[c] - n.mean[c]) * n.invStd[c]
				}
			}
		}
	}
	for l := range CNNLayers {
		s := CNNLayerSide(l)
		convPadded(sc.act, sc.pin[l], s, s, CNNLayerIn(l), CNNWidths[l], n.p.Conv[l], n.p.Bias[l], true)
		if l < CNNLayers-1 {
			maxPoolPadded(sc.pin[l+1], sc.act, s, s, CNNWidths[l])
		}
	}
	last := CNNLayerSide(CNNLayers - 1)
	wl := CNNWidths[CNNLayers-1]
	GlobalAvg(sc.pooled, sc.act, last*last, wl)
	var logit [CNNGroups]float32
	for g := range logit {
		row := n.p.Conv[CNNLayers][g*wl : (g+1)*wl]
		v := n.p.Bias[CNNLayers][g]
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
