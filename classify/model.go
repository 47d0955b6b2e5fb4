package classify

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math"
	"sync"
)

//go:embed model_weights.json
var defaultWeights []byte

// MaxHidden is the largest hidden layer a model may have.
const MaxHidden = 64

// Head is a classifier on the standardised feature vector: a multinomial
// logistic regression when Hidden is empty, else a one-hidden-layer
// perceptron (ReLU) followed by a softmax layer.
type Head struct {
	Mean []float64 `json:"mean"` // feature means (standardisation)
	Std  []float64 `json:"std"`  // feature standard deviations
	// Hidden has H <= MaxHidden rows of NumFeatures+1 values (last: bias).
	Hidden [][]float64 `json:"hidden,omitempty"`
	// Weights has NumClasses rows of (H or NumFeatures)+1 values; the last
	// is the bias.
	Weights [][]float64 `json:"weights"`
}

// Fold is one cross-validation model of the training run, kept so that
// evaluation can score every training cell with a model that never saw its
// source field.
type Fold struct {
	Head
	// High are the fold's high-grade heads (see ModelParams.High).
	High []Head `json:"high,omitempty"`
	// CNN is the fold's convolutional head (see ModelParams.CNN).
	CNN *CNNParams `json:"cnn,omitempty"`
	// ClassBias is the fold's own prior shift (see ModelParams.ClassBias),
	// fitted without the fold's held-out fields so that held-out scores
	// stay held out; nil: the model's.
	ClassBias []float64 `json:"class_bias,omitempty"`
	// Cascade is the fold's second-stage network (see
	// ModelParams.Cascade; gate, weight and temperature are the model's).
	Cascade *CascadeNet `json:"cascade,omitempty"`
	// Fields are the source fields (image file names) the fold's training
	// cells came from.
	Fields []string `json:"fields"`
}

// ModelParams is the on-disk (JSON) form of a per-cell model: feature
// extraction settings, the final classifier head and the cross-validation
// heads.
type ModelParams struct {
	Version  string     `json:"version"`
	Classes  []string   `json:"classes"`
	Features []string   `json:"features"`
	PixelUM  float64    `json:"pixel_um"`  // pixel size the features are measured at
	WindowUM float64    `json:"window_um"` // side of the analysis window around a nucleus
	Stain    [3]float64 `json:"stain"`     // nuclear projection vector (see DefaultStain)
	// WhiteBalance: the model reads images divided by their clear glass's
	// colour (see EstimateGlass, Model.ForModel); false for models trained
	// on the raw colours.
	WhiteBalance bool `json:"white_balance,omitempty"`
	Head
	// High is an optional ensemble of heads trained on NILM and high-grade
	// cells only (their P(ASC-H)+P(HSIL)+P(SCC) is averaged): it sets the
	// high-grade mass of the probabilities, the rest keeping the main
	// head's proportions. It separates high grade from NILM better than the
	// six-class head, which spends capacity on ASC-US versus LSIL.
	High []Head `json:"high,omitempty"`
	// CNN is an optional convolutional head on the nucleus-centred crop
	// (CNNSide px at PixelUM); its P(high grade) is averaged with the
	// feature head's with weight CNNWeight (late fusion).
	CNN       *CNNParams `json:"cnn,omitempty"`
	CNNWeight float64    `json:"cnn_weight,omitempty"`
	// CNNNILMWeight is the CNN's weight in P(NILM) (late fusion like
	// CNNWeight; the low-grade mass takes the rest, split as the feature
	// head splits it). 0: P(NILM) is the feature head's.
	CNNNILMWeight float64 `json:"cnn_nilm_weight,omitempty"`
	// Temperature calibrates the final probabilities: p_c ∝ p_c^(1/T)
	// (temperature scaling of the log-probabilities, fitted on out-of-fold
	// predictions); 0 or 1: none.
	Temperature float64 `json:"temperature,omitempty"`
	// ClassBias (NumClasses values or none) is added to the tempered
	// log-probabilities before renormalising: a prior shift fitted on
	// out-of-fold predictions for the six-class decision (macro-F1).
	ClassBias []float64 `json:"class_bias,omitempty"`
	// Cascade is the optional second stage: a deeper CNN on a wider crop
	// with a six-class head that re-scores the cells whose first-stage
	// suspicion reaches its gate (see CascadeParams).
	Cascade *CascadeParams `json:"cascade,omitempty"`
	// Folds are the grouped cross-validation models (optional).
	Folds []Fold `json:"folds,omitempty"`
	// Training holds free-form provenance and validation metrics.
	Training json.RawMessage `json:"training,omitempty"`
}

// head is a compiled Head.
type head struct {
	mean, invStd [NumFeatures]float32
	nh           int
	hidden       [][NumFeatures + 1]float32
	out          [NumClasses][]float32 // length nh+1 or NumFeatures+1
}

func compileHead(h Head) (*head, error) {
	if len(h.Mean) != NumFeatures || len(h.Std) != NumFeatures || len(h.Weights) != NumClasses {
		return nil, errors.New("classify: weights/mean/std have the wrong shape")
	}
	if len(h.Hidden) > MaxHidden {
		return nil, fmt.Errorf("classify: %d hidden units, at most %d", len(h.Hidden), MaxHidden)
	}
	c := &head{nh: len(h.Hidden)}
	for j := range NumFeatures {
		c.mean[j] = float32(h.Mean[j])
		s := h.Std[j]
		if s <= 0 || math.IsNaN(s) {
			s = 1
		}
		c.invStd[j] = float32(1 / s)
	}
	c.hidden = make([][NumFeatures + 1]float32, c.nh)
	for i, row := range h.Hidden {
		if len(row) != NumFeatures+1 {
			return nil, errors.New("classify: hidden row has the wrong length")
		}
		for j, v := range row {
			c.hidden[i][j] = float32(v)
		}
	}
	in := NumFeatures
	if c.nh > 0 {
		in = c.nh
	}
	for k, row := range h.Weights {
		if len(row) != in+1 {
			return nil, errors.New("classify: weights row has the wrong length")
		}
		c.out[k] = make([]float32, in+1)
		for j, v := range row {
			c.out[k][j] = float32(v)
		}
	}
	return c, nil
}

func (h *head) predict(f Features) [NumClasses]float32 {
	var z [NumFeatures]float32
	for j := range z {
		z[j] = (f[j] - h.mean[j]) * h.invStd[j]
		if math.IsNaN(float64(z[j])) || math.IsInf(float64(z[j]), 0) {
			z[j] = 0
		}
		// Clip far outliers (objects unlike any training cell).
		z[j] = min(max(z[j], -8), 8)
	}
	var act [MaxHidden]float32
	in := z[:]
	if h.nh > 0 {
		for i := range h.nh {
			row := &h.hidden[i]
			s := row[NumFeatures]
			for j, v := range z {
				s += row[j] * v
			}
			act[i] = max(s, 0)
		}
		in = act[:h.nh]
	}
	var logit [NumClasses]float64
	mx := math.Inf(-1)
	for c := range logit {
		w := h.out[c]
		s := w[len(in)]
		for j, v := range in {
			s += w[j] * v
		}
		logit[c] = float64(s)
		mx = math.Max(mx, logit[c])
	}
	var sum float64
	for c := range logit {
		logit[c] = math.Exp(logit[c] - mx)
		sum += logit[c]
	}
	var p [NumClasses]float32
	for c := range p {
		p[c] = float32(logit[c] / sum)
	}
	return p
}

// predictor is a compiled main head, its high-grade ensemble and the
// optional CNN.
type predictor struct {
	main  *head
	high  []*head
	cnn   *cnn
	wCNN  float32
	wNILM float32
	invT  float64 // 1/Temperature; 0: none
	bias  *[NumClasses]float64
	cas   *cascade // second stage; nil: none
}

func compilePredictor(main Head, high []Head, cp *CNNParams, wCNN, wNILM, temp float64, bias []float64) (*predictor, error) {
	m, err := compileHead(main)
	if err != nil {
		return nil, err
	}
	p := &predictor{main: m}
	if len(bias) != 0 {
		if len(bias) != NumClasses {
			return nil, fmt.Errorf("classify: class_bias has %d values, want %d", len(bias), NumClasses)
		}
		var b [NumClasses]float64
		for c, v := range bias {
			if !(v >= -10 && v <= 10) {
				return nil, fmt.Errorf("classify: class_bias[%d] %v must be in [-10, 10]", c, v)
			}
			b[c] = v
		}
		p.bias = &b
	}
	if temp != 0 {
		if !(temp >= 0.1 && temp <= 10) {
			return nil, fmt.Errorf("classify: temperature %v must be in [0.1, 10]", temp)
		}
		if temp != 1 {
			p.invT = 1 / temp
		}
	}
	if cp != nil {
		if !(wCNN >= 0 && wCNN <= 1) {
			return nil, fmt.Errorf("classify: cnn_weight %v must be in [0, 1]", wCNN)
		}
		if p.cnn, err = compileCNN(cp); err != nil {
			return nil, err
		}
		if !(wNILM >= 0 && wNILM <= 1) {
			return nil, fmt.Errorf("classify: cnn_nilm_weight %v must be in [0, 1]", wNILM)
		}
		p.wCNN, p.wNILM = float32(wCNN), float32(wNILM)
	}
	for i, h := range high {
		c, err := compileHead(h)
		if err != nil {
			return nil, fmt.Errorf("classify: high-grade head %d: %w", i, err)
		}
		p.high = append(p.high, c)
	}
	return p, nil
}

// predict returns the class probabilities of a cell from its features and,
// when the predictor has a CNN and sc is not nil, its raw crop sc.crop.
func (p *predictor) predict(f Features, sc *cnnScratch) [NumClasses]float32 {
	return Calibrate(p.fused(f, sc), p.invT, p.bias)
}

// Temper returns p_c^invT renormalised (temperature scaling with
// T = 1/invT); invT 0 or 1 returns p.
func Temper(p [NumClasses]float32, invT float64) [NumClasses]float32 {
	return Calibrate(p, invT, nil)
}

// Calibrate returns p_c^invT·e^bias_c renormalised (invT 0 means 1; bias
// nil means 0).
func Calibrate(p [NumClasses]float32, invT float64, bias *[NumClasses]float64) [NumClasses]float32 {
	if invT == 0 {
		invT = 1
	}
	if invT == 1 && bias == nil {
		return p
	}
	var s float64
	var q [NumClasses]float64
	for c, v := range p {
		if v > 0 {
			l := invT * math.Log(float64(v))
			if bias != nil {
				l += bias[c]
			}
			q[c] = math.Exp(l)
		}
		s += q[c]
	}
	if !(s > 0) {
		return p
	}
	for c := range p {
		p[c] = float32(q[c] / s)
	}
	return p
}

// fused is the fused probability before calibration.
func (p *predictor) fused(f Features, sc *cnnScratch) [NumClasses]float32 {
	pr := p.main.predict(f)
	if len(p.high) == 0 && (p.cnn == nil || sc == nil) {
		return pr
	}
	ph := HighGradeProb(pr)
	if len(p.high) > 0 {
		ph = 0
		for _, h := range p.high {
			ph += HighGradeProb(h.predict(f))
		}
		ph /= float32(len(p.high))
	}
	pn := float32(-1)
	if p.cnn != nil && sc != nil {
		g := p.cnn.forward(sc)
		ph = (1-p.wCNN)*ph + p.wCNN*g[2]
		if p.wNILM > 0 {
			pn = (1-p.wNILM)*pr[NILM] + p.wNILM*g[0]
		}
	}
	out := SetHighGrade(pr, ph)
	if pn >= 0 {
		out = SetNILM(out, pn)
	}
	return out
}

// SetNILM rescales p so that P(NILM) = pn (at most 1 − P(high grade)),
// keeping the high-grade classes and the proportions of the low-grade ones.
func SetNILM(p [NumClasses]float32, pn float32) [NumClasses]float32 {
	ph := HighGradeProb(p)
	pn = min(max(pn, 0), 1-ph)
	low := LowGradeProb(p)
	rest := 1 - ph - pn
	p[NILM] = pn
	if low > 0 {
		p[ASCUS] *= rest / low
		p[LSIL] *= rest / low
	} else {
		p[ASCUS], p[LSIL] = rest/2, rest/2
	}
	return p
}

// SetHighGrade rescales p so that P(ASC-H)+P(HSIL)+P(SCC) = ph, keeping the
// proportions within the high-grade and within the other classes.
func SetHighGrade(p [NumClasses]float32, ph float32) [NumClasses]float32 {
	h := HighGradeProb(p)
	rest := 1 - h
	var out [NumClasses]float32
	for c := range out {
		switch {
		case Class(c).HighGrade() && h > 0:
			out[c] = p[c] * ph / h
		case Class(c).HighGrade():
			out[c] = ph / 3
		case rest > 0:
			out[c] = p[c] * (1 - ph) / rest
		default:
			out[c] = (1 - ph) / 3
		}
	}
	return out
}

// Model is a per-cell Bethesda classifier: hand-crafted nuclear features →
// classifier head (see Head). A Model is immutable after loading and safe
// for concurrent use.
type Model struct {
	// Version is the model version string (e.g. "mlp-features-2").
	Version string
	// SHA256 is the hex SHA-256 of the weights file bytes.
	SHA256 string

	p     ModelParams
	lut   *stainLUT
	final *predictor
	folds []*predictor
	// heldOut maps a training field to the fold whose model did not see it.
	heldOut map[string]int
	pool    sync.Pool // of *scratch
	odLUT   [256]float32
}

// scratch holds the buffers of one Classify call.
type scratch struct {
	feat featureScratch
	cnn  *cnnScratch
	cas  *cascadeScratch
	in   Input
}

// Input is what the model measures of one cell: its feature vector and,
// for a model with a CNN, the raw optical densities of its crop.
type Input struct {
	F Features
	// Crop is the CNNSide² crop (HWC, OD of R, G, B) at the model's pixel
	// size centred on the nucleus; valid when HasCrop.
	Crop    [CNNInputLen]float32
	HasCrop bool
	// Wide is the second stage's CascadeSide² crop (HWC, OD of R, G, B)
	// at the model's pixel size centred on the nucleus; valid when HasWide.
	Wide    [CascadeInputLen]float32
	HasWide bool
}

// HasCNN reports whether the model has a convolutional head.
func (m *Model) HasCNN() bool { return m.p.CNN != nil }

// HasCascade reports whether the model has a second stage.
func (m *Model) HasCascade() bool { return m.p.Cascade != nil }

// defaultModel loads the embedded weights on first use.
var defaultModel = sync.OnceValues(func() (*Model, error) { return LoadModel(defaultWeights) })

// DefaultModel returns the model embedded in the binary (model_weights.json).
// It is loaded once and shared.
func DefaultModel() (*Model, error) {
	return defaultModel()
}

// LoadModel parses a weights file (JSON ModelParams). SHA256 is that of data.
func LoadModel(data []byte) (*Model, error) {
	var p ModelParams
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("classify: weights: %w", err)
	}
	m, err := NewModel(p)
	if err != nil {
		return nil, err
	}
	m.SHA256 = weightsSHA(data)
	return m, nil
}

// weightsSHA is the hex SHA-256 of a weights file, the identity every
// result carries (cell model and object filter alike).
func weightsSHA(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// NewModel builds a model from params. The head may be empty (no weights),
// in which case the model can only extract features (used by training).
func NewModel(p ModelParams) (*Model, error) {
	if !(p.PixelUM >= 0.05 && p.PixelUM <= 5) || !(p.WindowUM > 0 && p.WindowUM/p.PixelUM <= 1024) {
		return nil, fmt.Errorf("classify: model pixel_um %v must be in [0.05, 5] µm and window_um %v in (0, 1024 px]", p.PixelUM, p.WindowUM)
	}
	if len(p.Features) != 0 && len(p.Features) != NumFeatures {
		return nil, fmt.Errorf("classify: model has %d features, code has %d", len(p.Features), NumFeatures)
	}
	for i, f := range p.Features {
		if f != FeatureNames[i] {
			return nil, fmt.Errorf("classify: feature %d is %q, code expects %q", i, f, FeatureNames[i])
		}
	}
	m := &Model{Version: p.Version, p: p, lut: newStainLUT(p.Stain)}
	if len(p.Weights) > 0 {
		h, err := compilePredictor(p.Head, p.High, p.CNN, p.CNNWeight, p.CNNNILMWeight, p.Temperature, p.ClassBias)
		if err != nil {
			return nil, err
		}
		m.final = h
		if p.Cascade != nil {
			if h.cas, err = compileCascade(p.Cascade); err != nil {
				return nil, err
			}
		}
	}
	if len(p.Folds) > 0 {
		trainedOn := map[string]int{}
		for _, f := range p.Folds {
			for _, name := range f.Fields {
				trainedOn[name]++
			}
		}
		m.heldOut = map[string]int{}
		for k, f := range p.Folds {
			bias := p.ClassBias
			if f.ClassBias != nil {
				bias = f.ClassBias
			}
			h, err := compilePredictor(f.Head, f.High, f.CNN, p.CNNWeight, p.CNNNILMWeight, p.Temperature, bias)
			if err != nil {
				return nil, fmt.Errorf("classify: fold %d: %w", k, err)
			}
			if p.Cascade != nil {
				if f.Cascade == nil {
					return nil, fmt.Errorf("classify: fold %d has no cascade network", k)
				}
				cp := *p.Cascade
				cp.Net = *f.Cascade
				if h.cas, err = compileCascade(&cp); err != nil {
					return nil, fmt.Errorf("classify: fold %d: %w", k, err)
				}
			}
			m.folds = append(m.folds, h)
			in := make(map[string]bool, len(f.Fields))
			for _, name := range f.Fields {
				in[name] = true
			}
			for name := range trainedOn {
				if !in[name] {
					if _, dup := m.heldOut[name]; dup {
						return nil, fmt.Errorf("classify: field %s is held out by two folds", name)
					}
					m.heldOut[name] = k
				}
			}
		}
	}
	m.pool.New = func() any {
		sc := &scratch{cnn: newCNNScratch()}
		if p.Cascade != nil {
			sc.cas = newCascadeScratch()
		}
		return sc
	}
	m.odLUT = ODLUT()
	return m, nil
}

// Params returns a copy of the model's parameters.
func (m *Model) Params() ModelParams { return m.p }

// Features extracts the feature vector of the nucleus n in img. ok is false
// when the nucleus cannot be re-segmented (blank window).
func (m *Model) Features(img *image.RGBA, n Nucleus) (Features, bool) {
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	ok := m.measure(img, n, &sc.in, &sc.feat, false)
	return sc.in.F, ok
}

// Measure fills in with the features of the nucleus n in img and, when the
// model has a CNN, its crop. ok is false when the nucleus cannot be
// re-segmented (blank window).
func (m *Model) Measure(img *image.RGBA, n Nucleus, in *Input) bool {
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	ok := m.measure(img, n, in, &sc.feat, m.HasCNN())
	in.HasWide = false
	if ok && m.HasCascade() {
		m.MeasureWide(img, n.X, n.Y, n.PixelUM, in)
	}
	return ok
}

// MeasureWide fills in.Wide with the second stage's crop of img (pixel
// size px µm; 0: the model's) centred on (x, y). Evaluation uses it to
// take the wide crop from the whole field when the features were measured
// on a smaller labelled crop.
func (m *Model) MeasureWide(img *image.RGBA, x, y, px float64, in *Input) {
	if px <= 0 {
		px = m.p.PixelUM
	}
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	m.cutWide(img, x, y, px, in, sc.cas)
}

func (m *Model) cutWide(img *image.RGBA, x, y, px float64, in *Input, cs *cascadeScratch) {
	if cs == nil {
		cs = newCascadeScratch()
	}
	if px <= 0 {
		px = m.p.PixelUM
	}
	CascadeInput(&in.Wide, img, x, y, px, m.p.PixelUM, &cs.win, &m.odLUT)
	in.HasWide = true
}

func (m *Model) measure(img *image.RGBA, n Nucleus, in *Input, sc *featureScratch, crop bool) bool {
	px := n.PixelUM
	if px <= 0 {
		px = m.p.PixelUM
	}
	if r := px / m.p.PixelUM; r < 0.97 || r > 1.03 {
		// Resample the window to the model's pixel size: the features
		// (texture, gradients, areas in px) are then measured at the scale
		// the model was trained at, whatever the camera's pixel size.
		side := max(16, int(math.Round(m.p.WindowUM/m.p.PixelUM)))
		sc.win = resampleWindow(sc.win, img, n.X, n.Y, px, m.p.PixelUM, side)
		c := float64(side)/2 - 0.5
		n.AreaPx = int(math.Round(float64(n.AreaPx) * r * r))
		n.X, n.Y, n.PixelUM = c, c, m.p.PixelUM
		img = sc.win
	}
	in.HasCrop = false
	f, ok := extractFeatures(img, n, m.lut, m.p.PixelUM, m.p.WindowUM, sc)
	in.F = f
	if ok && crop {
		CNNInput(in.Crop[:], img, n.X, n.Y, 0, 0, &m.odLUT)
		in.HasCrop = true
	}
	return ok
}

// PredictInput returns the class probabilities of a measured cell with
// the final model (features and, when present, the CNN on the crop).
func (m *Model) PredictInput(in *Input) [NumClasses]float32 {
	return m.predictWith(m.final, in)
}

// PredictHeldOutInput is PredictHeldOut for a measured cell.
func (m *Model) PredictHeldOutInput(field string, in *Input) (p [NumClasses]float32, fold int) {
	if k, ok := m.heldOut[field]; ok {
		return m.predictWith(m.folds[k], in), k
	}
	return m.PredictInput(in), -1
}

func (m *Model) predictWith(pr *predictor, in *Input) [NumClasses]float32 {
	if pr == nil {
		return m.Predict(in.F)
	}
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	var p [NumClasses]float32
	if !in.HasCrop || pr.cnn == nil {
		p = pr.predict(in.F, nil)
	} else {
		sc.cnn.crop = &in.Crop
		p = pr.predict(in.F, sc.cnn)
	}
	if pr.cas != nil && in.HasWide && pr.cas.gated(p) {
		p = MixCascade(p, pr.cas.probs(&in.Wide, sc.cas), pr.cas.w)
	}
	return p
}

// StageOne returns the first-stage probabilities of a measured cell by the
// model that never saw field (as PredictHeldOutInput, without the second
// stage): what the gate of the second stage sees. Training uses it.
func (m *Model) StageOne(field string, in *Input) [NumClasses]float32 {
	pr := m.final
	if k, ok := m.heldOut[field]; ok {
		pr = m.folds[k]
	}
	if pr == nil {
		return m.Predict(in.F)
	}
	if !in.HasCrop || pr.cnn == nil {
		return pr.predict(in.F, nil)
	}
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	sc.cnn.crop = &in.Crop
	return pr.predict(in.F, sc.cnn)
}

// HeldOutFold returns the fold whose model never saw field, or -1 when the
// final model did not train on it.
func (m *Model) HeldOutFold(field string) int {
	if k, ok := m.heldOut[field]; ok {
		return k
	}
	return -1
}

// Predict turns a feature vector into class probabilities with the final
// model (uniform probabilities for a model without weights).
func (m *Model) Predict(f Features) [NumClasses]float32 {
	if m.final == nil {
		var p [NumClasses]float32
		for c := range p {
			p[c] = 1.0 / NumClasses
		}
		return p
	}
	return m.final.predict(f, nil)
}

// PredictHeldOut predicts the class probabilities of a cell from the source
// field named field without using any model that was trained on that field:
// the cross-validation fold that held the field out when it was part of the
// training data (fold >= 0), else the final model (fold -1).
func (m *Model) PredictHeldOut(field string, f Features) (p [NumClasses]float32, fold int) {
	if k, ok := m.heldOut[field]; ok {
		return m.folds[k].predict(f, nil), k
	}
	return m.Predict(f), -1
}

// TrainedOn reports whether the final model was trained on cells of field.
func (m *Model) TrainedOn(field string) bool {
	_, ok := m.heldOut[field]
	return ok
}

// HighGradeProb returns P(ASC-H)+P(HSIL)+P(SCC).
func HighGradeProb(p [NumClasses]float32) float32 { return p[ASCH] + p[HSIL] + p[SCC] }

// LowGradeProb returns P(ASC-US)+P(LSIL).
func LowGradeProb(p [NumClasses]float32) float32 { return p[ASCUS] + p[LSIL] }

// SuspicionScore is the cell's suspicion used to rank the gallery: the
// probability that it is not NILM, 1 − P(NILM), in [0, 1]. The caption
// says which grade the model suspects (the most probable class).
func SuspicionScore(p [NumClasses]float32) float32 { return AbnormalProb(p) }

// Classify measures the nucleus n of img and returns the classified cell
// (without crop, stage coordinates or tile index: see Analyzer). When the
// nucleus cannot be re-segmented the cell is NILM with probability 1 and
// score 0.
func (m *Model) Classify(img *image.RGBA, n Nucleus) Cell {
	c := Cell{Nucleus: n}
	sc := m.pool.Get().(*scratch)
	defer m.pool.Put(sc)
	hasCNN := m.final != nil && m.final.cnn != nil
	if !m.measure(img, n, &sc.in, &sc.feat, hasCNN) {
		c.Probs[NILM] = 1
		return c
	}
	if m.final == nil {
		c.Probs = m.Predict(sc.in.F)
	} else if hasCNN {
		sc.cnn.crop = &sc.in.Crop
		c.Probs = m.final.predict(sc.in.F, sc.cnn)
	} else {
		c.Probs = m.final.predict(sc.in.F, nil)
	}
	if cs := m.final; cs != nil && cs.cas != nil && cs.cas.gated(c.Probs) {
		// Second stage: only the suspicious few pay for the wide crop.
		m.cutWide(img, n.X, n.Y, n.PixelUM, &sc.in, sc.cas)
		c.Probs = MixCascade(c.Probs, cs.cas.probs(&sc.in.Wide, sc.cas), cs.cas.w)
	}
	best := 0
	for i, p := range c.Probs {
		if p > c.Probs[best] {
			best = i
		}
	}
	c.Class = Class(best)
	c.Score = SuspicionScore(c.Probs)
	return c
}
