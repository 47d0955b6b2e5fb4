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

// ModelParams is the on-disk (JSON) form of a per-cell model: feature
// extraction settings, standardisation and softmax-regression weights.
type ModelParams struct {
	Version  string     `json:"version"`
	Classes  []string   `json:"classes"`
	Features []string   `json:"features"`
	PixelUM  float64    `json:"pixel_um"`  // pixel size of the training images
	WindowUM float64    `json:"window_um"` // side of the analysis window around a nucleus
	Stain    [3]float64 `json:"stain"`     // nuclear projection vector (see DefaultStain)
	Mean     []float64  `json:"mean"`      // feature means (standardisation)
	Std      []float64  `json:"std"`       // feature standard deviations
	// Weights has NumClasses rows of NumFeatures+1 values; the last is the bias.
	Weights [][]float64 `json:"weights"`
	// Training holds free-form provenance and validation metrics.
	Training json.RawMessage `json:"training,omitempty"`
}

// Model is a per-cell Bethesda classifier: hand-crafted nuclear features →
// multinomial logistic regression. A Model is immutable after loading and safe
// for concurrent use.
type Model struct {
	// Version is the model version string (e.g. "lr-features-1").
	Version string
	// SHA256 is the hex SHA-256 of the weights file bytes.
	SHA256 string

	p      ModelParams
	lut    *stainLUT
	w      [NumClasses][NumFeatures + 1]float32
	mean   [NumFeatures]float32
	invStd [NumFeatures]float32
	pool   sync.Pool
}

var (
	defaultOnce  sync.Once
	defaultModel *Model
	defaultErr   error
)

// DefaultModel returns the model embedded in the binary (model_weights.json).
// It is loaded once and shared.
func DefaultModel() (*Model, error) {
	defaultOnce.Do(func() { defaultModel, defaultErr = LoadModel(defaultWeights) })
	return defaultModel, defaultErr
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
	sum := sha256.Sum256(data)
	m.SHA256 = hex.EncodeToString(sum[:])
	return m, nil
}

// NewModel builds a model from params. Weights, Mean and Std may be empty, in
// which case the model can only extract features (used by training).
func NewModel(p ModelParams) (*Model, error) {
	if p.PixelUM <= 0 || p.WindowUM <= 0 {
		return nil, errors.New("classify: model needs pixel_um and window_um")
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
		if len(p.Weights) != NumClasses || len(p.Mean) != NumFeatures || len(p.Std) != NumFeatures {
			return nil, errors.New("classify: weights/mean/std have the wrong shape")
		}
		for c := range p.Weights {
			if len(p.Weights[c]) != NumFeatures+1 {
				return nil, errors.New("classify: weights row has the wrong length")
			}
			for j, v := range p.Weights[c] {
				m.w[c][j] = float32(v)
			}
		}
		for j := range NumFeatures {
			m.mean[j] = float32(p.Mean[j])
			s := p.Std[j]
			if s <= 0 || math.IsNaN(s) {
				s = 1
			}
			m.invStd[j] = float32(1 / s)
		}
	}
	m.pool.New = func() any { return new(featureScratch) }
	return m, nil
}

// Params returns a copy of the model's parameters.
func (m *Model) Params() ModelParams { return m.p }

// Features extracts the feature vector of the nucleus n in img. ok is false
// when the nucleus cannot be re-segmented (blank window).
func (m *Model) Features(img *image.RGBA, n Nucleus) (Features, bool) {
	sc := m.pool.Get().(*featureScratch)
	f, ok := extractFeatures(img, n, m.lut, m.p.PixelUM, m.p.WindowUM, sc)
	m.pool.Put(sc)
	return f, ok
}

// Predict turns a feature vector into class probabilities.
func (m *Model) Predict(f Features) [NumClasses]float32 {
	var z [NumFeatures]float32
	for j := range z {
		z[j] = (f[j] - m.mean[j]) * m.invStd[j]
		if math.IsNaN(float64(z[j])) || math.IsInf(float64(z[j]), 0) {
			z[j] = 0
		}
	}
	var logit [NumClasses]float64
	mx := math.Inf(-1)
	for c := range logit {
		s := m.w[c][NumFeatures]
		for j, v := range z {
			s += m.w[c][j] * v
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

// HighGradeProb returns P(ASC-H)+P(HSIL)+P(SCC).
func HighGradeProb(p [NumClasses]float32) float32 { return p[ASCH] + p[HSIL] + p[SCC] }

// LowGradeProb returns P(ASC-US)+P(LSIL).
func LowGradeProb(p [NumClasses]float32) float32 { return p[ASCUS] + p[LSIL] }

// SuspicionScore is the cell's suspicion used to rank the gallery:
// P(high grade) + 0.5·P(low grade), in [0, 1].
func SuspicionScore(p [NumClasses]float32) float32 { return HighGradeProb(p) + 0.5*LowGradeProb(p) }

// Classify measures the nucleus n of img and returns the classified cell
// (without crop, stage coordinates or tile index: see Analyzer). When the
// nucleus cannot be re-segmented the cell is NILM with probability 1 and
// score 0.
func (m *Model) Classify(img *image.RGBA, n Nucleus) Cell {
	c := Cell{Nucleus: n}
	f, ok := m.Features(img, n)
	if !ok {
		c.Probs[NILM] = 1
		return c
	}
	c.Probs = m.Predict(f)
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
