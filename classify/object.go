package classify

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"math"
	"sync"
)

// Object filter: a small learned model, applied after detection, that
// answers "is this component a squamous-cell nucleus?" from density-only
// (colour-free) measurements of the haematoxylin / grey optical density
// around it. It removes what the hand rules of the detector cannot without
// losing pale abnormal nuclei: neutrophils, dark specks and debris, and
// irregular dense cytoplasm. Trained by classify/train/object (see
// cmd/objtrain); the weights are embedded (object_weights.json).

// ObjectFeatureNames name the object filter's inputs, in order. Scales are
// in µm, so the features do not depend on the pixel size; densities are OD.
var ObjectFeatureNames = []string{
	"log_area_um2",   // log of the area in µm²
	"contrast",       // mean density minus the tile's nuclear threshold
	"core",           // max minus mean density
	"ring_contrast",  // mean density minus the ring around the box
	"surround",       // outer ring above the tile background
	"fill",           // area / box area
	"circularity",    // 4πA/P²
	"log_elongation", // log of the moment-ellipse axis ratio
	"std",            // density standard deviation over the nucleus pixels
	"laplacian",      // mean |4-neighbour Laplacian| over the nucleus pixels (chromatin texture)
	"dog_small",      // box difference of Gaussians, 2 µm core vs 6 µm
	"dog_nuclear",    // 5 µm core vs 15 µm (nuclear scale blob response)
	"dog_large",      // 10 µm core vs 30 µm (dense cytoplasm, clusters)
	"centre",         // density in the central half of the box minus the mean
	"edge",           // mean density step across the nucleus boundary (OD/µm)
	"maxima",         // local density maxima per 10 µm² (lobulation)
	"box_dense",      // pixels above threshold in the box / area (other dense matter)
	"density",        // mean density above the tile background
}

// NumObjectFeatures is len(ObjectFeatureNames).
const NumObjectFeatures = 18

// ObjectVector holds one component's object features.
type ObjectVector [NumObjectFeatures]float64

// MaxObjectHidden bounds the hidden layer of the object filter (stack
// scratch).
const MaxObjectHidden = 32

// ObjectHead is a binary classifier on the standardised object features: a
// logistic regression when Hidden is empty, else one hidden ReLU layer.
type ObjectHead struct {
	Mean []float64 `json:"mean"`
	Std  []float64 `json:"std"`
	// Hidden has H <= 32 rows of NumObjectFeatures+1 values (last: bias).
	Hidden [][]float64 `json:"hidden,omitempty"`
	// Weights has (H or NumObjectFeatures)+1 values; the last is the bias.
	Weights []float64 `json:"weights"`
}

// ObjectFold is one cross-validation model, with the images it trained on.
type ObjectFold struct {
	ObjectHead
	// Fields are the training images, named "isbi2014/<file>" or
	// "cric/<file>" (see ObjectField).
	Fields []string `json:"fields"`
}

// ObjectParams is the on-disk (JSON) form of the object filter.
type ObjectParams struct {
	Version  string   `json:"version"`
	Features []string `json:"features"`
	// Threshold: a component is kept when its score (probability of a
	// squamous nucleus) is >= Threshold.
	Threshold float64 `json:"threshold"`
	ObjectHead
	Folds []ObjectFold `json:"folds,omitempty"`
	// Report is the training run's out-of-fold summary (informational).
	Report map[string]float64 `json:"report,omitempty"`
}

// ObjectFilter is a compiled object filter. It is immutable and safe for
// concurrent use.
type ObjectFilter struct {
	Version string
	// SHA256 is the hex SHA-256 of the weights file bytes.
	SHA256    string
	Threshold float64
	p         ObjectParams
	final     *ObjectHead
	folds     []*ObjectHead
	heldOut   map[string]int
}

// ObjectField names an image for the object filter's fold bookkeeping:
// source is "isbi2014" or "cric".
func ObjectField(source, file string) string { return source + "/" + file }

//go:embed object_weights.json
var defaultObjectWeights []byte

// defaultObjectFilter loads the embedded weights on first use.
var defaultObjectFilter = sync.OnceValues(func() (*ObjectFilter, error) { return LoadObjectFilter(defaultObjectWeights) })

// DefaultObjectFilter returns the filter embedded in the binary
// (object_weights.json), loaded once and shared.
func DefaultObjectFilter() (*ObjectFilter, error) {
	return defaultObjectFilter()
}

// LoadObjectFilter parses a weights file (JSON ObjectParams).
func LoadObjectFilter(data []byte) (*ObjectFilter, error) {
	var p ObjectParams
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("classify: object weights: %w", err)
	}
	f, err := NewObjectFilter(p)
	if err != nil {
		return nil, err
	}
	f.SHA256 = weightsSHA(data)
	return f, nil
}

func checkObjectHead(h *ObjectHead) error {
	if len(h.Mean) != NumObjectFeatures || len(h.Std) != NumObjectFeatures {
		return fmt.Errorf("mean/std have %d/%d values, want %d", len(h.Mean), len(h.Std), NumObjectFeatures)
	}
	if len(h.Hidden) > MaxObjectHidden {
		return fmt.Errorf("hidden has %d units, at most %d", len(h.Hidden), MaxObjectHidden)
	}
	for i, r := range h.Hidden {
		if len(r) != NumObjectFeatures+1 {
			return fmt.Errorf("hidden row %d has %d values, want %d", i, len(r), NumObjectFeatures+1)
		}
	}
	in := NumObjectFeatures
	if len(h.Hidden) > 0 {
		in = len(h.Hidden)
	}
	if len(h.Weights) != in+1 {
		return fmt.Errorf("weights have %d values, want %d", len(h.Weights), in+1)
	}
	for _, s := range h.Std {
		if !(s > 0) {
			return fmt.Errorf("std %v must be > 0", s)
		}
	}
	return nil
}

// NewObjectFilter compiles params.
func NewObjectFilter(p ObjectParams) (*ObjectFilter, error) {
	if len(p.Features) != NumObjectFeatures {
		return nil, fmt.Errorf("classify: object filter has %d features, code has %d", len(p.Features), NumObjectFeatures)
	}
	for i, f := range p.Features {
		if f != ObjectFeatureNames[i] {
			return nil, fmt.Errorf("classify: object feature %d is %q, code expects %q", i, f, ObjectFeatureNames[i])
		}
	}
	if !(p.Threshold >= 0 && p.Threshold <= 1) {
		return nil, fmt.Errorf("classify: object threshold %v must be in [0, 1]", p.Threshold)
	}
	if err := checkObjectHead(&p.ObjectHead); err != nil {
		return nil, fmt.Errorf("classify: object filter: %w", err)
	}
	f := &ObjectFilter{Version: p.Version, Threshold: p.Threshold, p: p}
	fh := p.ObjectHead
	f.final = &fh
	trainedOn := map[string]bool{}
	for _, fo := range p.Folds {
		for _, name := range fo.Fields {
			trainedOn[name] = true
		}
	}
	f.heldOut = map[string]int{}
	for k := range p.Folds {
		fo := p.Folds[k]
		if err := checkObjectHead(&fo.ObjectHead); err != nil {
			return nil, fmt.Errorf("classify: object fold %d: %w", k, err)
		}
		h := fo.ObjectHead
		f.folds = append(f.folds, &h)
		in := make(map[string]bool, len(fo.Fields))
		for _, name := range fo.Fields {
			in[name] = true
		}
		for name := range trainedOn {
			if !in[name] {
				if _, dup := f.heldOut[name]; dup {
					return nil, fmt.Errorf("classify: object field %s is held out by two folds", name)
				}
				f.heldOut[name] = k
			}
		}
	}
	return f, nil
}

// Params returns the filter's parameters.
func (f *ObjectFilter) Params() ObjectParams { return f.p }

// Score returns the final model's probability that v is a squamous nucleus.
func (f *ObjectFilter) Score(v *ObjectVector) float64 { return f.final.score(v) }

// Keep reports whether the final model keeps v.
func (f *ObjectFilter) Keep(v *ObjectVector) bool { return f.final.score(v) >= f.Threshold }

// head returns the model to score an image with: the fold that held it out
// when the filter was trained on it (fold >= 0), else the final model
// (fold -1).
func (f *ObjectFilter) head(field string) (*ObjectHead, int) {
	if k, ok := f.heldOut[field]; ok && field != "" {
		return f.folds[k], k
	}
	return f.final, -1
}

// TrainedOn reports whether field (see ObjectField) was in the training set.
func (f *ObjectFilter) TrainedOn(field string) bool {
	_, ok := f.heldOut[field]
	return ok
}

// ObjectClipZ bounds the standardised features: a component far outside
// the training range (an extremely dense nucleus, say) is scored as if at
// the edge of that range rather than by extrapolation.
const ObjectClipZ = 3

// ClipZ clips a standardised feature to ±ObjectClipZ.
func ClipZ(z float64) float64 { return max(-ObjectClipZ, min(ObjectClipZ, z)) }

// Score returns the head's probability that v is a squamous nucleus.
func (h *ObjectHead) Score(v *ObjectVector) float64 { return h.score(v) }

func (h *ObjectHead) score(v *ObjectVector) float64 {
	var z [NumObjectFeatures]float64
	for i := range z {
		z[i] = ClipZ((v[i] - h.Mean[i]) / h.Std[i])
	}
	w := h.Weights
	s := w[len(w)-1]
	if len(h.Hidden) == 0 {
		for i, x := range z {
			s += w[i] * x
		}
	} else {
		for j, r := range h.Hidden {
			a := r[NumObjectFeatures]
			for i, x := range z {
				a += r[i] * x
			}
			if a > 0 {
				s += w[j] * a
			}
		}
	}
	return 1 / (1 + math.Exp(-s))
}

// ObjectFeatures measures the object features of n, a nucleus returned by
// the Detector's most recent Detect call (it reads that call's density
// buffers).
func (d *Detector) ObjectFeatures(n *Nucleus, v *ObjectVector) {
	w, hgt := d.w, d.hgt
	px := d.opts.PixelUM
	t := int32(d.lastThreshold)
	hb := d.h
	box := n.Box.Sub(d.origin)
	x0, y0 := max(0, box.Min.X), max(0, box.Min.Y)
	x1, y1 := min(w, box.Max.X), min(hgt, box.Max.Y)
	var cnt, sum, sum2, lap, edgeSum, edgeN, maxima int64
	for y := y0; y < y1; y++ {
		row := hb[y*w : y*w+w]
		for x := x0; x < x1; x++ {
			c := int32(row[x])
			if c < t {
				continue
			}
			cnt++
			sum += int64(c)
			sum2 += int64(c) * int64(c)
			l, r, u, dn := c, c, c, c
			if x > 0 {
				l = int32(row[x-1])
			}
			if x < w-1 {
				r = int32(row[x+1])
			}
			if y > 0 {
				u = int32(hb[(y-1)*w+x])
			}
			if y < hgt-1 {
				dn = int32(hb[(y+1)*w+x])
			}
			lp := 4*c - l - r - u - dn
			if lp < 0 {
				lp = -lp
			}
			lap += int64(lp)
			for _, nb := range [4]int32{l, r, u, dn} {
				if nb < t {
					edgeSum += int64(c - nb)
					edgeN++
				}
			}
			if c > l && c >= r && c > u && c >= dn && x > 0 && y > 0 && x < w-1 && y < hgt-1 &&
				c > int32(hb[(y-1)*w+x-1]) && c >= int32(hb[(y+1)*w+x+1]) &&
				c > int32(hb[(y-1)*w+x+1]) && c >= int32(hb[(y+1)*w+x-1]) {
				maxima++
			}
		}
	}
	mean := float64(n.MeanH)
	std, lapM, edge := 0.0, 0.0, 0.0
	if cnt > 0 {
		m := float64(sum) / float64(cnt)
		std = math.Sqrt(math.Max(0, float64(sum2)/float64(cnt)-m*m)) / hScale
		lapM = float64(lap) / float64(cnt) / hScale
	}
	if edgeN > 0 {
		edge = float64(edgeSum) / float64(edgeN) / hScale / px
	}
	cx, cy := n.X-float64(d.origin.X), n.Y-float64(d.origin.Y)
	bw, bh := float64(box.Dx()), float64(box.Dy())
	centre := d.boxMean(cx-bw/4, cy-bh/4, cx+bw/4, cy+bh/4) - mean
	area := float64(n.AreaPx)
	v[0] = math.Log(math.Max(n.AreaUM2, 1e-3))
	v[1] = float64(n.Contrast)
	v[2] = float64(n.MaxH) - mean
	v[3] = float64(n.RingContrast)
	v[4] = float64(n.Surround)
	v[5] = float64(n.Fill)
	v[6] = float64(n.Circularity)
	v[7] = math.Log(math.Max(float64(n.Elongation), 1))
	v[8] = std
	v[9] = lapM
	v[10] = d.dog(cx, cy, 2/px)
	v[11] = d.dog(cx, cy, 5/px)
	v[12] = d.dog(cx, cy, 10/px)
	v[13] = centre
	v[14] = edge
	v[15] = float64(maxima) / (area * px * px) * 10
	v[16] = float64(cnt) / area
	v[17] = mean - d.bg
}

// dog is a box difference of Gaussians at (cx, cy): the mean density over a
// square of side s minus the mean over the square of side 3s around it.
func (d *Detector) dog(cx, cy, s float64) float64 {
	in := d.boxMean(cx-s/2, cy-s/2, cx+s/2, cy+s/2)
	out := d.boxMean(cx-1.5*s, cy-1.5*s, cx+1.5*s, cy+1.5*s)
	return in - out
}

// boxMean is the mean density (OD) over the pixels whose centres lie in
// [x0, x1]×[y0, y1], clipped to the tile, from the integral image.
func (d *Detector) boxMean(x0, y0, x1, y1 float64) float64 {
	w, hgt := d.w, d.hgt
	ix0 := min(max(0, int(math.Ceil(x0))), w-1)
	iy0 := min(max(0, int(math.Ceil(y0))), hgt-1)
	ix1 := max(min(w, int(math.Floor(x1))+1), ix0+1)
	iy1 := max(min(hgt, int(math.Floor(y1))+1), iy0+1)
	s := d.rectSum(int32(ix0), int32(iy0), int32(ix1), int32(iy1))
	return float64(s) / float64((ix1-ix0)*(iy1-iy0)) / hScale
}

// filterObjects drops from d.out the nuclei the object filter head rejects.
func (d *Detector) filterObjects(h *ObjectHead, th float64) {
	var v ObjectVector
	k := 0
	for i := range d.out {
		d.ObjectFeatures(&d.out[i], &v)
		if h.score(&v) >= th {
			d.out[k] = d.out[i]
			k++
		}
	}
	d.out = d.out[:k]
}
