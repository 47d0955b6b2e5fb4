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
	// SlideHighGrade and SlideLowGrade are the (stricter) probabilities a
	// cell must reach to count toward the slide verdict; 0 means HighGrade
	// and LowGrade. A slide holds thousands of cells, so the cell operating
	// point's false positives would swamp the counts.
	SlideHighGrade float64 `json:"slide_high_grade"`
	SlideLowGrade  float64 `json:"slide_low_grade"`
	// MinHighGradeCells cells at or above SlideHighGrade make a HIGH_GRADE
	// slide (0 disables), provided they are also at least
	// MinHighGradeFraction of all cells.
	MinHighGradeCells    int     `json:"min_high_grade_cells"`
	MinHighGradeFraction float64 `json:"min_high_grade_fraction"`
	// MinLowGradeCells cells at or above SlideLowGrade make a LOW_GRADE
	// slide (0 disables), provided they are also at least
	// MinLowGradeFraction of all cells.
	MinLowGradeCells    int     `json:"min_low_grade_cells"`
	MinLowGradeFraction float64 `json:"min_low_grade_fraction"`
	// MinSquamousCells: fewer analysed cells make a complete slide UNSATISFACTORY.
	MinSquamousCells int `json:"min_squamous_cells"`
	// GallerySize is the number of most suspicious cells kept with crops.
	GallerySize int `json:"gallery_size"`
}

// DefaultThresholds returns the values of the shipped configuration: the
// cell operating point chosen on the model's held-out folds, slide counts
// set on CRIC-tiled simulated slides (see doc.go).
func DefaultThresholds() Thresholds {
	return Thresholds{
		HighGrade:            0.276,
		LowGrade:             0.5,
		SlideHighGrade:       0.95,
		SlideLowGrade:        0.95,
		MinHighGradeCells:    12,
		MinHighGradeFraction: 0.00005,
		MinLowGradeCells:     5,
		MinLowGradeFraction:  0.005,
		MinSquamousCells:     5000, // Bethesda adequacy: ≥5000 (LBC) / 8000–12000 (conventional)
		GallerySize:          24,
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
	// SlideHighGradeCells and SlideLowGradeCells are counted at the slide
	// thresholds and decide the verdict.
	SlideHighGradeCells int        `json:"slide_high_grade_cells"`
	SlideLowGradeCells  int        `json:"slide_low_grade_cells"`
	Top                 []Cell     `json:"top"` // most suspicious first; crops are not serialised
	Reason              string     `json:"reason"`
	ModelVersion        string     `json:"model_version"`
	ModelSHA256         string     `json:"model_sha256"`
	Thresholds          Thresholds `json:"thresholds"`
}

// SlideSummary accumulates the cells of one slide tile by tile. It is safe
// for concurrent use (Add from several workers). Memory is bounded: only counts
// and the GallerySize most suspicious cells (with their crops) are kept.
type SlideSummary struct {
	mu           sync.Mutex
	th           Thresholds
	modelVersion string
	modelSHA     string
	counts       [NumClasses]int
	cells        int
	high, low    int
	sHigh, sLow  int
	top          cellHeap
}

// NewSlideSummary starts a slide. m (may be nil) provides the model version
// and hash reported in the result.
func NewSlideSummary(th Thresholds, m *Model) *SlideSummary {
	s := &SlideSummary{th: th}
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
	k := s.th.GallerySize
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
		if c.HighGrade(orDefault(s.th.SlideHighGrade, s.th.HighGrade)) {
			s.sHigh++
		}
		if c.LowGrade(orDefault(s.th.SlideLowGrade, s.th.LowGrade)) {
			s.sLow++
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
		SlideLowGradeCells:  s.sLow,
		ModelVersion:        s.modelVersion,
		ModelSHA256:         s.modelSHA,
		Thresholds:          s.th,
	}
	for c := range NumClasses {
		r.Counts[Class(c).String()] = s.counts[c]
	}
	r.Top = append([]Cell(nil), s.top...)
	sort.SliceStable(r.Top, func(i, j int) bool { return r.Top[i].Score > r.Top[j].Score })
	sh, sl := orDefault(s.th.SlideHighGrade, s.th.HighGrade), orDefault(s.th.SlideLowGrade, s.th.LowGrade)
	counts := fmt.Sprintf("%d cells analysed; %d high-grade at P>=%.2f (need %d and %.2f%% of cells), %d at P>=%.2f; %d low-grade at P>=%.2f (need %d and %.2f%%), %d at P>=%.2f",
		s.cells, s.sHigh, sh, s.th.MinHighGradeCells, 100*s.th.MinHighGradeFraction, s.high, s.th.HighGrade,
		s.sLow, sl, s.th.MinLowGradeCells, 100*s.th.MinLowGradeFraction, s.low, s.th.LowGrade)
	frac := func(n int) float64 { return float64(n) / float64(max(s.cells, 1)) }
	switch {
	case !complete:
		r.Verdict = VerdictIncomplete
		r.Reason = "scan not complete: " + counts
	case s.cells < s.th.MinSquamousCells:
		r.Verdict = VerdictUnsatisfactory
		r.Reason = fmt.Sprintf("only %d cells analysed, fewer than the %d required: %s", s.cells, s.th.MinSquamousCells, counts)
	case s.th.MinHighGradeCells > 0 && s.sHigh >= s.th.MinHighGradeCells && frac(s.sHigh) >= s.th.MinHighGradeFraction:
		r.Verdict = VerdictHighGrade
		r.Reason = "high-grade cells at or above threshold: " + counts
	case s.th.MinLowGradeCells > 0 && s.sLow >= s.th.MinLowGradeCells && frac(s.sLow) >= s.th.MinLowGradeFraction:
		r.Verdict = VerdictLowGrade
		r.Reason = "low-grade cells at or above threshold: " + counts
	default:
		r.Verdict = VerdictNILM
		r.Reason = "no abnormal cells above thresholds: " + counts
	}
	return r
}

func orDefault(v, d float64) float64 {
	if v > 0 {
		return v
	}
	return d
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
