package classify

import (
	"fmt"
	"sort"
	"sync"
)

// Thresholds turn per-cell probabilities into a slide verdict.
type Thresholds struct {
	// HighGrade: a cell is high grade when P(ASC-H)+P(HSIL)+P(SCC) >= HighGrade.
	HighGrade float64 `json:"high_grade"`
	// LowGrade: a cell is low grade when P(ASC-US)+P(LSIL) >= LowGrade.
	LowGrade float64 `json:"low_grade"`
	// Rule gives the verdict of a complete, adequate slide (nil: the
	// embedded DefaultSlideRule). It is fitted, not set by hand: see
	// SlideRule.
	Rule *SlideRule `json:"-"`
	// MinSquamousCells: fewer analysed cells make a complete slide UNSATISFACTORY.
	MinSquamousCells int `json:"min_squamous_cells"`
	// GallerySize is the number of most suspicious cells kept with crops.
	GallerySize int `json:"gallery_size"`
}

// DefaultThresholds returns the values of the shipped configuration: the
// cell operating point chosen on the model's held-out folds and the
// embedded slide rule.
func DefaultThresholds() Thresholds {
	return Thresholds{
		HighGrade:        0.32,
		LowGrade:         0.5,
		MinSquamousCells: 5000, // Bethesda adequacy: ≥5000 (LBC) / 8000–12000 (conventional)
		GallerySize:      24,
	}
}

// Verdict is the slide-level triage result.
type Verdict string

// Verdicts.
const (
	VerdictNILM           Verdict = "NILM"
	VerdictLowGrade       Verdict = "LOW_GRADE"
	VerdictHighGrade      Verdict = "HIGH_GRADE"
	VerdictIncomplete     Verdict = "INCOMPLETE"
	VerdictUnsatisfactory Verdict = "UNSATISFACTORY"
)

// SlideResult is the outcome of one slide.
type SlideResult struct {
	Verdict        Verdict        `json:"verdict"`
	Counts         map[string]int `json:"counts"` // cells per most-probable class, by class name
	Cells          int            `json:"cells"`
	HighGradeCells int            `json:"high_grade_cells"` // at Thresholds.HighGrade
	LowGradeCells  int            `json:"low_grade_cells"`  // at Thresholds.LowGrade
	// SlideHighGradeCells and SlideAbnormalCells are counted at the slide
	// rule's levels (P(high grade) >= Rule.High.Prob, P(not NILM) >=
	// Rule.Abnormal.Prob) and decide the verdict.
	SlideHighGradeCells int        `json:"slide_high_grade_cells"`
	SlideAbnormalCells  int        `json:"slide_abnormal_cells"`
	Top                 []Cell     `json:"top"` // most suspicious first; crops are not serialised
	Reason              string     `json:"reason"`
	ModelVersion        string     `json:"model_version"`
	ModelSHA256         string     `json:"model_sha256"`
	Thresholds          Thresholds `json:"thresholds"`
	// SlideRule names the rule that gave the verdict.
	SlideRule SlideRuleID `json:"slide_rule"`
}

// SlideRuleID identifies a slide rule in a result.
type SlideRuleID struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// SlideSummary accumulates the cells of one slide tile by tile. It is safe
// for concurrent use (Add from several workers). Memory is bounded: only counts
// and the GalleryCandidates(GallerySize) most suspicious distinct objects
// (with their crops) are kept; the gallery is chosen among them
// (SlideRule.Gallery).
type SlideSummary struct {
	mu           sync.Mutex
	th           Thresholds
	modelVersion string
	modelSHA     string
	rule         *SlideRule
	ruleErr      error
	counts       [NumClasses]int
	cells        int
	high, low    int
	sHigh, sAbn  int
	top          cellHeap
}

// NewSlideSummary starts a slide. m (may be nil) provides the model version
// and hash reported in the result; th.Rule (nil: DefaultSlideRule) gives
// the verdict.
func NewSlideSummary(th Thresholds, m *Model) *SlideSummary {
	s := &SlideSummary{th: th, rule: th.Rule}
	if s.rule == nil {
		s.rule, s.ruleErr = DefaultSlideRule()
	}
	if m != nil {
		s.modelVersion, s.modelSHA = m.Version, m.SHA256
	}
	return s
}

// Add counts cells. Cells entering the gallery are copied (their Crop pointer
// is kept, so do not modify a crop after Add); the slice may be reused.
func (s *SlideSummary) Add(cells []Cell) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := GalleryCandidates(s.th.GallerySize)
	for i := range cells {
		c := &cells[i]
		s.cells++
		if c.Class >= 0 && int(c.Class) < NumClasses {
			s.counts[c.Class]++
		}
		hg := c.HighGrade(s.th.HighGrade)
		if hg {
			s.high++
		}
		if c.LowGrade(s.th.LowGrade) {
			s.low++
		}
		if s.rule != nil {
			if c.HighGrade(s.rule.High.Prob) {
				s.sHigh++
			}
			if float64(AbnormalProb(c.Probs)) >= s.rule.Abnormal.Prob {
				s.sAbn++
			}
		}
		s.top.offer(c, k)
	}
}

// Result returns the slide result; complete says whether the whole slide was
// scanned. An incomplete slide is always INCOMPLETE, never negative.
func (s *SlideSummary) Result(complete bool) SlideResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := SlideResult{
		Counts:              make(map[string]int, NumClasses),
		Cells:               s.cells,
		HighGradeCells:      s.high,
		LowGradeCells:       s.low,
		SlideHighGradeCells: s.sHigh,
		SlideAbnormalCells:  s.sAbn,
		ModelVersion:        s.modelVersion,
		ModelSHA256:         s.modelSHA,
		Thresholds:          s.th,
	}
	for c := range NumClasses {
		r.Counts[Class(c).String()] = s.counts[c]
	}
	cands := append([]Cell(nil), s.top...)
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].Score > cands[j].Score })
	var spread GallerySpread
	if s.rule != nil {
		spread = s.rule.Gallery
	}
	pick := spread.PickGallery(len(cands), s.th.GallerySize, func(i int) (float64, float64, bool) {
		c := &cands[i]
		return c.StageX, c.StageY, c.StageX != 0 || c.StageY != 0
	})
	r.Top = make([]Cell, 0, len(pick))
	for _, i := range pick {
		r.Top = append(r.Top, cands[i])
	}
	sort.SliceStable(r.Top, func(i, j int) bool { return r.Top[i].Score > r.Top[j].Score })
	var counts string
	if s.rule != nil {
		r.SlideRule = SlideRuleID{s.rule.Version, s.rule.SHA256}
		hi, ab := s.rule.High, s.rule.Abnormal
		counts = fmt.Sprintf("%d cells analysed; %d at P(high grade)>=%.2f (excess %.1f, need %.1f), %d at P>=%.3f; %d at P(abnormal)>=%.2f (excess %.1f, need %.1f), %d low grade at P>=%.2f",
			s.cells, s.sHigh, hi.Prob, hi.Excess(s.sHigh, s.cells), hi.Z, s.high, s.th.HighGrade,
			s.sAbn, ab.Prob, ab.Excess(s.sAbn, s.cells), ab.Z, s.low, s.th.LowGrade)
	}
	switch {
	case !complete:
		r.Verdict = VerdictIncomplete
		r.Reason = "scan not complete: " + counts
	case s.rule == nil:
		r.Verdict = VerdictIncomplete
		r.Reason = fmt.Sprintf("no slide rule (%v): %d cells analysed", s.ruleErr, s.cells)
	case s.cells < s.th.MinSquamousCells:
		r.Verdict = VerdictUnsatisfactory
		r.Reason = fmt.Sprintf("only %d cells analysed, fewer than the %d required: %s", s.cells, s.th.MinSquamousCells, counts)
	default:
		r.Verdict = s.rule.Verdict(s.sHigh, s.sAbn, s.cells)
		switch r.Verdict {
		case VerdictHighGrade:
			r.Reason = "high-grade cells above the negative background: " + counts
		case VerdictLowGrade:
			r.Reason = "abnormal cells above the negative background: " + counts
		default:
			r.Reason = "no abnormal cells above the negative background: " + counts
		}
	}
	return r
}

// cellHeap is a min-heap on Score.
type cellHeap []Cell

func (h cellHeap) Len() int           { return len(h) }
func (h cellHeap) Less(i, j int) bool { return h[i].Score < h[j].Score }
func (h cellHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cellHeap) Push(x any)        { *h = append(*h, x.(Cell)) }
func (h *cellHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
