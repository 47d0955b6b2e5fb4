package classify

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
)

// SlideLevel is one half of a SlideRule: how many cells of a slide must
// reach a cell probability, given how many a negative slide of the same
// size shows.
type SlideLevel struct {
	// Prob is the cell probability counted: P(ASC-H+HSIL+SCC) for the
	// high-grade level, P(not NILM) = 1 − P(NILM) for the abnormal one.
	Prob float64 `json:"prob"`
	// Rate is the background: the fraction of the cells of negative
	// slides at or above Prob.
	Rate float64 `json:"rate"`
	// Dispersion is the variance of the negative count over its mean
	// (1: Poisson; larger: suspicious cells of negative slides come in
	// clusters, a field at a time). 0 means 1.
	Dispersion float64 `json:"dispersion"`
	// Z is the excess needed: the slide's count n of cells at or above
	// Prob among N cells fires the level when
	// (n − Rate·N) / sqrt(Dispersion·Rate·N + 1) >= Z (see Excess).
	Z float64 `json:"z"`
}

// Excess is the number of standard deviations by which n cells at or above
// Prob among cells exceed the negative background.
func (l SlideLevel) Excess(n, cells int) float64 {
	mu := l.Rate * float64(cells)
	return (float64(n) - mu) / math.Sqrt(max(l.Dispersion, 1)*mu+1)
}

// Fires reports whether n cells at or above Prob among cells are enough.
func (l SlideLevel) Fires(n, cells int) bool { return l.Excess(n, cells) >= l.Z }

func (l SlideLevel) check(name string) error {
	switch {
	case !(l.Prob > 0 && l.Prob <= 1):
		return fmt.Errorf("classify: slide rule: %s.prob %v not in (0, 1]", name, l.Prob)
	case !(l.Rate >= 0 && l.Rate < 1):
		return fmt.Errorf("classify: slide rule: %s.rate %v not in [0, 1)", name, l.Rate)
	case !(l.Dispersion >= 0 && l.Dispersion < 1e6):
		return fmt.Errorf("classify: slide rule: %s.dispersion %v not in [0, 1e6)", name, l.Dispersion)
	case math.IsNaN(l.Z) || math.IsInf(l.Z, 0):
		return fmt.Errorf("classify: slide rule: %s.z %v is not finite", name, l.Z)
	}
	return nil
}

// SlideRule turns a slide's distribution of cell scores into a verdict:
// HIGH_GRADE when the high-grade level fires, else LOW_GRADE when the
// abnormal level fires, else NILM. Its parameters are fitted on
// out-of-fold slide scores (classify/eval, `papscan eval --fit-slide-rule`),
// not set by hand; the counts are normalised to the slide's number of cells
// through the negative background rate, so the rule applies to slides of
// any size.
type SlideRule struct {
	Version string `json:"version"`
	// High counts P(ASC-H+HSIL+SCC); Abnormal counts P(not NILM).
	High     SlideLevel `json:"high"`
	Abnormal SlideLevel `json:"abnormal"`
	// Gallery spreads the slide's gallery over the slide (zero: ranked
	// by suspicion alone); it does not change the verdict.
	Gallery GallerySpread `json:"gallery"`
	// ModelVersion and ModelSHA256 name the cell model whose scores the
	// rule was fitted on: a retrained model needs a refitted rule.
	ModelVersion string `json:"model_version"`
	ModelSHA256  string `json:"model_sha256"`
	// Fit holds the provenance and the measured figures of the fit.
	Fit json.RawMessage `json:"fit,omitempty"`
	// SHA256 is the hex SHA-256 of the rule file (not serialised).
	SHA256 string `json:"-"`
}

// Verdict is the rule's verdict for a complete, adequate slide of cells
// analysed cells, high of them at or above High.Prob and abnormal at or
// above Abnormal.Prob.
func (r *SlideRule) Verdict(high, abnormal, cells int) Verdict {
	switch {
	case r.High.Fires(high, cells):
		return VerdictHighGrade
	case r.Abnormal.Fires(abnormal, cells):
		return VerdictLowGrade
	}
	return VerdictNILM
}

// CheckSlideRule reports the first invalid parameter of r.
func CheckSlideRule(r *SlideRule) error {
	if r == nil {
		return errors.New("classify: no slide rule")
	}
	if err := r.High.check("high"); err != nil {
		return err
	}
	if err := r.Abnormal.check("abnormal"); err != nil {
		return err
	}
	return r.Gallery.check()
}

// AbnormalProb is P(not NILM), the cell probability the rule's abnormal
// level counts.
func AbnormalProb(p [NumClasses]float32) float32 { return 1 - p[NILM] }

//go:embed slide_rule.json
var defaultSlideRuleFile []byte

var defaultSlideRule = sync.OnceValues(func() (*SlideRule, error) { return LoadSlideRule(defaultSlideRuleFile) })

// DefaultSlideRule returns the rule embedded in the binary
// (slide_rule.json), loaded once and shared.
func DefaultSlideRule() (*SlideRule, error) { return defaultSlideRule() }

// LoadSlideRule parses a rule file (JSON SlideRule); SHA256 is that of data.
func LoadSlideRule(data []byte) (*SlideRule, error) {
	var r SlideRule
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("classify: slide rule: %w", err)
	}
	if err := CheckSlideRule(&r); err != nil {
		return nil, err
	}
	r.SHA256 = weightsSHA(data)
	return &r, nil
}
