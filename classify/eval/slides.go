package eval

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"sort"
	"time"

	"papscan/classify"
)

// SlideOptions configure the slide-level evaluation.
type SlideOptions struct {
	Compose ComposeOptions `json:"compose"`
	// Repeats of the nested two-way split of the fields (default 5): each
	// repeat halves the fields (stratified by grade), fits a rule on
	// slides of one half and scores slides of the other, both ways.
	Repeats int `json:"repeats"`
	// TrainSlides and TestSlides are the slides composed per grade and
	// half for fitting (default 100) and for scoring (default 30).
	// InnerRepeats of the fit's own split of its fields choose the levels
	// (default 3; see fitRule).
	TrainSlides  int `json:"train_slides"`
	TestSlides   int `json:"test_slides"`
	InnerRepeats int `json:"inner_repeats"`
	// Specificity is the lowest NILM specificity the fitted rule keeps on
	// its training slides (default 0.95).
	Specificity float64 `json:"specificity"`
	// Gallery is the gallery size (default 24).
	Gallery int `json:"gallery"`
	// Resamples of the field bootstrap (default 200).
	Resamples int   `json:"resamples"`
	Seed      int64 `json:"seed"`
	// Method is the slide rule fitted and scored: "levels" (default; the
	// shipped classify.SlideRule, one level of P(high grade) and one of
	// P(not NILM), each a z-test against the negative background) or
	// "logit" (logistic scores over the excess at every level, see
	// logitRule).
	Method string `json:"method"`
}

func (o SlideOptions) withDefaults() SlideOptions {
	if o.Repeats <= 0 {
		o.Repeats = 5
	}
	if o.TrainSlides <= 0 {
		o.TrainSlides = 100
	}
	if o.TestSlides <= 0 {
		o.TestSlides = 30
	}
	if o.InnerRepeats <= 0 {
		o.InnerRepeats = 3
	}
	if o.Specificity <= 0 {
		o.Specificity = 0.95
	}
	if o.Gallery <= 0 {
		o.Gallery = 24
	}
	if o.Resamples <= 0 {
		o.Resamples = 200
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Method == "" {
		o.Method = MethodLevels
	}
	return o
}

// Slide rule methods (SlideOptions.Method).
const (
	MethodLevels = "levels"
	MethodLogit  = "logit"
)

// Levels returns the cell probabilities a fitted rule may count at.
func Levels() []float64 {
	return []float64{0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99}
}

// SlideMetrics are the slide-level figures. Each slide is scored by a rule
// fitted on slides made of other fields (nested), and every cell by a model
// that never saw its field.
type SlideMetrics struct {
	// N counts the scored slides, NByGrade per true grade.
	N        int            `json:"n"`
	NByGrade map[string]int `json:"n_by_grade"`
	// HSILPlusSensitivity: high-grade slides called HIGH_GRADE;
	// HSILPlusNotNILM: high-grade slides not called NILM.
	HSILPlusSensitivity   float64   `json:"hsil_plus_sensitivity"`
	HSILPlusSensitivityCI *Interval `json:"hsil_plus_sensitivity_ci95"`
	HSILPlusNotNILM       float64   `json:"hsil_plus_not_nilm"`
	HSILPlusNotNILMCI     *Interval `json:"hsil_plus_not_nilm_ci95"`
	// ASCUSPlusSensitivity: low- and high-grade slides not called NILM.
	ASCUSPlusSensitivity   float64   `json:"ascus_plus_sensitivity"`
	ASCUSPlusSensitivityCI *Interval `json:"ascus_plus_sensitivity_ci95"`
	// NILMSpecificity: negative slides called NILM.
	NILMSpecificity   float64   `json:"nilm_specificity"`
	NILMSpecificityCI *Interval `json:"nilm_specificity_ci95"`
	// GalleryHitRate: abnormal slides whose gallery (the Gallery most
	// suspicious distinct objects) holds a cell covering a labelled
	// abnormal point.
	// The gallery is ranked as shipped (1 − P(NILM)) and spread as chosen
	// on the fitting half's slides (GallerySpreads).
	GalleryHitRate   float64   `json:"gallery_hit_rate"`
	GalleryHitRateCI *Interval `json:"gallery_hit_rate_ci95"`
	// GalleryHitUnspread is the hit rate of the same slides' galleries
	// ranked as shipped without a spread, GalleryHitNestedRank that with
	// the ranking chosen on the fitting half (GalleryRanks) and no spread.
	GalleryHitUnspread     float64   `json:"gallery_hit_rate_unspread"`
	GalleryHitUnspreadCI   *Interval `json:"gallery_hit_rate_unspread_ci95"`
	GalleryHitNestedRank   float64   `json:"gallery_hit_rate_nested_rank"`
	GalleryHitNestedRankCI *Interval `json:"gallery_hit_rate_nested_rank_ci95"`
	// GallerySpreadGainCI is the 95% interval of GalleryHitRate −
	// GalleryHitUnspread over the same resamples (paired).
	GallerySpreadGainCI *Interval `json:"gallery_spread_gain_ci95"`
	// GallerySpreads are the spreads chosen in the nested splits,
	// GallerySpreadAll the one chosen on slides of all fields (what
	// --fit-slide-rule ships) and GallerySpreadHitsAll the abnormal slides
	// of all fields each spread's gallery hits (of GalleryHitsOf; key
	// "per_region/region_um").
	GallerySpreads       []classify.GallerySpread `json:"gallery_spreads"`
	GallerySpreadAll     classify.GallerySpread   `json:"gallery_spread_all"`
	GallerySpreadHitsAll map[string]int           `json:"gallery_spread_hits_all"`
	// GalleryHitByGrade is the hit rate of the low- and the high-grade
	// slides.
	GalleryHitByGrade map[string]float64 `json:"gallery_hit_by_grade"`
	// Confusion[truth][verdict] counts slides.
	Confusion map[string]map[string]int `json:"confusion"`
	// AbnormalFields are the nested test slides' outcomes by their abnormal
	// field, the fields whose slides are called NILM most often first: where
	// the sensitivities are lost.
	AbnormalFields []FieldOutcome `json:"abnormal_fields"`
	// Cells: cells per slide (min, median, max).
	Cells [3]int `json:"cells"`
	// Fields counts the analysed fields by the grade they give a slide;
	// FieldCells the cells analysed in all orientations.
	Fields     map[string]int `json:"fields"`
	FieldCells int            `json:"field_cells"`
	// ModelFold and ObjectFold count the fields scored by a held-out fold
	// of the cell model and of the object filter (the rest by the final
	// model, which never saw them).
	ModelFold  int `json:"model_fold"`
	ObjectFold int `json:"object_fold"`
	// GalleryRanks are the gallery rankings chosen in the nested splits
	// (the weight w of P(high grade) + w·P(ASC-US+LSIL), see
	// GalleryRanks()), GalleryRankAll the one chosen on slides of all
	// fields (what the shipped gallery should use) and GalleryHitsAll the
	// abnormal slides of all fields each ranking's gallery hits (of
	// GalleryHitsOf).
	GalleryRanks   []float64      `json:"gallery_ranks"`
	GalleryRankAll float64        `json:"gallery_rank_all"`
	GalleryHitsAll map[string]int `json:"gallery_hits_all"`
	GalleryHitsOf  int            `json:"gallery_hits_of"`
	// Rules are the rules fitted in the nested splits (one per repeat and
	// half), the rule's parameters ranging over them.
	Rules   []classify.SlideRule `json:"rules"`
	Options SlideOptions         `json:"options"`
	// Seconds: field analysis, and composition, fitting and scoring.
	AnalyseSeconds float64 `json:"analyse_seconds"`
	Seconds        float64 `json:"seconds"`
}

// GalleryRanks are the candidate gallery rankings: rank k scores a cell
// P(high grade) + GalleryRanks()[k]·P(ASC-US+LSIL) (1: 1 − P(NILM), the
// shipped classify.SuspicionScore; 0: P(high grade) alone). The slide
// evaluation chooses one on the fitting half's slides (nested).
func GalleryRanks() []float64 { return []float64{0, 0.5, 1, 1.5, 3} }

// rankScore is a cell's suspicion under the ranking weight w.
func rankScore(c *SlideCell, w float64) float32 {
	low := c.Probs[classify.ASCUS] + c.Probs[classify.LSIL]
	return c.High + float32(w)*low
}

const numRanks = 5

// shippedRank is the ranking the product's gallery uses (w = 1:
// classify.SuspicionScore, 1 − P(NILM)).
const shippedRank = 2

// GallerySpreads are the candidate gallery spreads (classify.GallerySpread;
// the first, zero, ranks by suspicion alone). The slide evaluation chooses
// one on the fitting half's slides (nested), with the shipped ranking.
func GallerySpreads() []classify.GallerySpread {
	out := []classify.GallerySpread{{}}
	for _, k := range []int{1, 2, 3} {
		for _, r := range []float64{25, 50, 100, 200} {
			out = append(out, classify.GallerySpread{PerRegion: k, RegionUM: r})
		}
	}
	return out
}

// galleryChoice is a gallery ranking (index into GalleryRanks) and spread.
type galleryChoice struct {
	rank   int
	spread classify.GallerySpread
}

// partOffsetUM separates the parts of a composed slide on its virtual
// stage (µm; a field is under 700 µm across): cells of two parts are never
// neighbours for the gallery spread.
const partOffsetUM = 10000

// orientStats is one field orientation as the slide scoring sees it.
type orientStats struct {
	n         int
	high, abn []float32 // descending
	// top are the classify.GalleryCandidates(Gallery) most suspicious
	// cells under each ranking, descending (rankScore in Score).
	top [numRanks][]SlideCell
	// pixelUM is the size of a pixel of the cells' X, Y.
	pixelUM float64
}

// scorer scores composed slides from the fields' per-cell results.
type scorer struct {
	fields []SlideField
	grade  []Grade
	// st are the fields' orientations whole, neg their negative parts
	// (SlideField.NegativePart).
	st, neg [][Flips]orientStats
	gallery int
	levels  []float64 // Levels()
}

func newScorer(fields []SlideField, gallery int) *scorer {
	s := &scorer{fields: fields, grade: make([]Grade, len(fields)), st: make([][Flips]orientStats, len(fields)), neg: make([][Flips]orientStats, len(fields)), gallery: gallery, levels: Levels()}
	for i := range fields {
		s.grade[i] = FieldGrade(&fields[i])
		for o := range Flips {
			s.st[i][o] = newOrientStats(fields[i].Cells[o], gallery, fields[i].PixelUM)
			s.neg[i][o] = newOrientStats(fields[i].NegativePart(o), gallery, fields[i].PixelUM)
		}
	}
	return s
}

func (s *scorer) stats(p Part) *orientStats {
	if p.Negative {
		return &s.neg[p.Field][p.Orient]
	}
	return &s.st[p.Field][p.Orient]
}

func (s *scorer) compose(pool []int, g Grade, n int, o ComposeOptions, rng *rand.Rand) []Recipe {
	return compose(pool, g, n, o, rng, func(fi int) Grade { return s.grade[fi] }, func(fi, or int) int { return s.neg[fi][or].n })
}

func newOrientStats(cs []SlideCell, gallery int, pixelUM float64) orientStats {
	desc := func(a, b float32) int { return -cmpF(a, b) }
	st := orientStats{n: len(cs), high: make([]float32, len(cs)), abn: make([]float32, len(cs)), pixelUM: pixelUM}
	for k, c := range cs {
		st.high[k], st.abn[k] = c.High, c.Abnormal
	}
	slices.SortFunc(st.high, desc)
	slices.SortFunc(st.abn, desc)
	for k, w := range GalleryRanks() {
		top := slices.Clone(cs)
		for i := range top {
			top[i].Score = rankScore(&top[i], w)
		}
		slices.SortStableFunc(top, func(a, b SlideCell) int { return -cmpF(a.Score, b.Score) })
		st.top[k] = slices.Clip(top[:min(classify.GalleryCandidates(gallery), len(top))])
	}
	return st
}

func cmpF(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// atLeast counts the values of a descending slice that are >= p.
func atLeast(v []float32, p float64) int {
	return sort.Search(len(v), func(i int) bool { return float64(v[i]) < p })
}

// slideScore is what a rule sees of a composed slide: its cells and the
// counts at each level, plus whether its gallery holds a labelled abnormal
// cell.
type slideScore struct {
	grade     Grade
	cells     int
	high, abn []int // per level
	// hit: per gallery choice asked for, whether the gallery holds a
	// labelled abnormal cell.
	hit []bool
	// abnormal is the field index of an abnormal slide's abnormal field
	// (-1 for a negative slide).
	abnormal int
}

// score returns r's cell count, the counts at levels, and the gallery hit
// of each choice.
func (s *scorer) score(r Recipe, levels []float64, choices ...galleryChoice) slideScore {
	sc := slideScore{grade: r.Grade, high: make([]int, len(levels)), abn: make([]int, len(levels)), abnormal: -1}
	for _, p := range r.Parts {
		st := s.stats(p)
		sc.cells += st.n
		for i, lv := range levels {
			sc.high[i] += atLeast(st.high, lv)
			sc.abn[i] += atLeast(st.abn, lv)
		}
		if !p.Negative {
			sc.abnormal = p.Field
		}
	}
	sc.hit = make([]bool, len(choices))
	var cands []galleryCand
	rank := -1
	for i, ch := range choices {
		if ch.rank != rank {
			cands, rank = s.galleryCandidates(r, ch.rank, cands[:0]), ch.rank
		}
		sc.hit[i] = s.galleryHit(cands, ch.spread)
	}
	return sc
}

// galleryCand is a gallery candidate of a composed slide: a cell and where
// it lies on the slide's virtual stage (µm).
type galleryCand struct {
	c    *SlideCell
	x, y float64
}

// galleryCandidates returns the classify.GalleryCandidates(Gallery) most
// suspicious distinct physical objects of r under ranking rank, most
// suspicious first (what classify.SlideSummary keeps): the parts' lists
// merged, an object seen in several orientations (one pool member) kept
// once. Part k of r lies at k·partOffsetUM on the stage.
func (s *scorer) galleryCandidates(r Recipe, rank int, out []galleryCand) []galleryCand {
	m := classify.GalleryCandidates(s.gallery)
	type key struct{ member, object int32 }
	seen := make([]key, 0, m)
	next := make([]int, len(r.Parts))
	for len(out) < m {
		bp := -1
		var bs float32
		for k, p := range r.Parts {
			top := s.stats(p).top[rank]
			if next[k] < len(top) && (bp < 0 || top[next[k]].Score > bs) {
				bp, bs = k, top[next[k]].Score
			}
		}
		if bp < 0 {
			break
		}
		p := r.Parts[bp]
		st := s.stats(p)
		c := &st.top[rank][next[bp]]
		next[bp]++
		id := key{int32(p.Member), c.Object}
		if slices.Contains(seen, id) {
			continue
		}
		seen = append(seen, id)
		out = append(out, galleryCand{c: c, x: float64(bp)*partOffsetUM + float64(c.X)*st.pixelUM, y: float64(c.Y) * st.pixelUM})
	}
	return out
}

// galleryHit reports whether the gallery the spread picks from cands (the
// product's classify.GallerySpread.PickGallery) holds a cell covering a
// labelled abnormal point.
func (s *scorer) galleryHit(cands []galleryCand, spread classify.GallerySpread) bool {
	if !slices.ContainsFunc(cands, func(c galleryCand) bool { return abnormalLabel(c.c) }) {
		return false
	}
	for _, i := range spread.PickGallery(len(cands), s.gallery, func(i int) (float64, float64, bool) { return cands[i].x, cands[i].y, true }) {
		if abnormalLabel(cands[i].c) {
			return true
		}
	}
	return false
}

// split is one half of a repeat: its fields are scored by a rule fitted on
// the other half.
type split struct {
	test []bool // per field
	rule ruleAt
	// logit is the rule when SlideOptions.Method is MethodLogit.
	logit *logitRule
	// rank is the gallery ranking (index into GalleryRanks) chosen on
	// slides of the other half, spread the gallery spread chosen there
	// with the shipped ranking.
	rank   int
	spread classify.GallerySpread
}

// chooseRank returns the gallery ranking (index into GalleryRanks) whose
// galleries hold a labelled abnormal cell on the most abnormal slides
// composed from pool (ties: the later one, 1 − P(NILM) last), and the hits
// of every ranking.
func (s *scorer) chooseRank(pool []int, n int, o ComposeOptions, rng *rand.Rand) (int, [numRanks]int) {
	var hits [numRanks]int
	choices := make([]galleryChoice, numRanks)
	for k := range choices {
		choices[k].rank = k
	}
	for _, g := range []Grade{LowGrade, HighGrade} {
		for _, r := range s.compose(pool, g, n, o, rng) {
			sc := s.score(r, nil, choices...)
			for k, h := range sc.hit {
				if h {
					hits[k]++
				}
			}
		}
	}
	best := 0
	for k := range hits {
		if hits[k] >= hits[best] {
			best = k
		}
	}
	return best, hits
}

// chooseSpread returns the gallery spread (of GallerySpreads, with the
// shipped ranking) whose galleries hold a labelled abnormal cell on the
// most abnormal slides composed from pool (ties: the earlier, ranking by
// suspicion alone first), and the hits of every spread.
func (s *scorer) chooseSpread(pool []int, n int, o ComposeOptions, rng *rand.Rand) (classify.GallerySpread, []int) {
	spreads := GallerySpreads()
	choices := make([]galleryChoice, len(spreads))
	for k, sp := range spreads {
		choices[k] = galleryChoice{shippedRank, sp}
	}
	hits := make([]int, len(spreads))
	for _, g := range []Grade{LowGrade, HighGrade} {
		for _, r := range s.compose(pool, g, n, o, rng) {
			for k, h := range s.score(r, nil, choices...).hit {
				if h {
					hits[k]++
				}
			}
		}
	}
	best := 0
	for k := range hits {
		if hits[k] > hits[best] {
			best = k
		}
	}
	return spreads[best], hits
}

// halves assigns each pool member (an index into fields) to half 0 or 1,
// stratified by the grade the field gives a slide.
func halves(fields []SlideField, pool []int, rng *rand.Rand) []int {
	h := make([]int, len(pool))
	for g := range numGrades {
		var idx []int
		for i, f := range pool {
			if FieldGrade(&fields[f]) == g {
				idx = append(idx, i)
			}
		}
		rng.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
		for k, i := range idx {
			h[i] = k % 2
		}
	}
	return h
}

// splitHalves splits pool by halves' assignment h: the fields of the
// other half (to fit on) and those of half (to test on).
func splitHalves(pool, h []int, half int) (fit, test []int) {
	for k, fi := range pool {
		if h[k] == half {
			test = append(test, fi)
		} else {
			fit = append(fit, fi)
		}
	}
	return fit, test
}

// composeScored composes n slides of each grade from pool and scores them.
func (s *scorer) composeScored(pool []int, n int, o ComposeOptions, levels []float64, rng *rand.Rand, choices ...galleryChoice) []slideScore {
	var out []slideScore
	for g := range numGrades {
		for _, r := range s.compose(pool, g, n, o, rng) {
			out = append(out, s.score(r, levels, choices...))
		}
	}
	return out
}

// trainingSlides composes n slides of each grade for fitting, each from its
// own bootstrap draw of pool: a rule fitted on slides that all hold the same
// few negative fields would learn their background exactly and fail on
// other fields; the draws show it how backgrounds vary between sets of
// fields.
func (s *scorer) trainingSlides(pool []int, n int, o ComposeOptions, rng *rand.Rand) []slideScore {
	var out []slideScore
	draw := make([]int, len(pool))
	for g := range numGrades {
		for len(out) < (int(g)+1)*n {
			for i := range draw {
				draw[i] = pool[rng.Intn(len(pool))]
			}
			rs := s.compose(draw, g, 1, o, rng)
			if rs == nil {
				continue
			}
			out = append(out, s.score(rs[0], s.levels))
		}
	}
	return out
}

// FitRule fits the slide rule that ships (classify/slide_rule.json) on
// slides composed from all fields (2·TrainSlides per grade).
func FitRule(fields []SlideField, o SlideOptions) (classify.SlideRule, error) {
	o = o.withDefaults()
	s := newScorer(fields, o.Gallery)
	rng := rand.New(rand.NewSource(o.Seed))
	pool := make([]int, len(fields))
	for i := range pool {
		pool[i] = i
	}
	r, err := s.fitRule(pool, o, rng)
	if err != nil {
		return r.rule, err
	}
	// The spread is chosen on its own stream (as in Slides), so the
	// levels do not depend on it.
	r.rule.Gallery, _ = s.chooseSpread(pool, 2*o.TrainSlides, o.Compose, rand.New(rand.NewSource(o.Seed+2)))
	return r.rule, nil
}

// Slides measures the slide verdicts: composed slides of the fields, each
// scored by a rule fitted on slides of the other half of the fields
// (nested), with 95% intervals from a bootstrap over fields (each resample
// draws the fields with replacement, recomposes the test slides and scores
// them with the same rules).
func Slides(ctx context.Context, fields []SlideField, o SlideOptions) (*SlideMetrics, error) {
	start := time.Now()
	o = o.withDefaults()
	s := newScorer(fields, o.Gallery)
	rng := rand.New(rand.NewSource(o.Seed))
	m := &SlideMetrics{Options: o, Fields: map[string]int{}}
	for i := range fields {
		m.Fields[FieldGrade(&fields[i]).String()]++
		for _, cs := range fields[i].Cells {
			m.FieldCells += len(cs)
		}
		if fields[i].ModelFold >= 0 {
			m.ModelFold++
		}
		if fields[i].ObjectFold >= 0 {
			m.ObjectFold++
		}
	}
	all := make([]int, len(fields))
	for i := range all {
		all[i] = i
	}
	var splits []split
	// The gallery rankings are chosen on slides of their own stream, so
	// that the rules fitted do not depend on how many rankings are tried.
	rankRng := rand.New(rand.NewSource(o.Seed + 1))
	spreadRng := rand.New(rand.NewSource(o.Seed + 2))
	for range o.Repeats {
		h := halves(fields, all, rng)
		for half := range 2 {
			sp := split{test: make([]bool, len(fields))}
			var train []int
			for i := range fields {
				if h[i] == half {
					sp.test[i] = true
				} else {
					train = append(train, i)
				}
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			sp.rank, _ = s.chooseRank(train, o.TrainSlides, o.Compose, rankRng)
			m.GalleryRanks = append(m.GalleryRanks, GalleryRanks()[sp.rank])
			sp.spread, _ = s.chooseSpread(train, o.TrainSlides, o.Compose, spreadRng)
			m.GallerySpreads = append(m.GallerySpreads, sp.spread)
			if o.Method == MethodLogit {
				lr, err := s.fitLogitNested(train, o, rng)
				if err != nil {
					return nil, err
				}
				sp.logit = lr
				splits = append(splits, sp)
				continue
			}
			r, err := s.fitRule(train, o, rng)
			if err != nil {
				return nil, err
			}
			sp.rule = r
			splits = append(splits, sp)
			m.Rules = append(m.Rules, r.rule)
		}
	}
	// evaluate composes test slides from the field multiset draw (indices
	// into fields) and tallies the verdicts.
	type tally struct {
		conf     [numGrades][numGrades]int
		byField  map[int]*FieldOutcome // abnormal field → its slides (main run only)
		ab       int
		hit      [3]int // spread chosen, unspread, nested rank
		hitG, nG [numGrades]int
		cells    []int
	}
	evaluate := func(draw []int, rng *rand.Rand, byField bool) tally {
		var t tally
		if byField {
			t.byField = map[int]*FieldOutcome{}
		}
		for _, sp := range splits {
			var pool []int
			for _, f := range draw {
				if sp.test[f] {
					pool = append(pool, f)
				}
			}
			levels := []float64{sp.rule.rule.High.Prob, sp.rule.rule.Abnormal.Prob}
			ra := ruleAt{rule: sp.rule.rule, ih: 0, ia: 1}
			verdict := ra.verdict
			if sp.logit != nil {
				levels, verdict = s.levels, sp.logit.verdict
			}
			choices := []galleryChoice{{shippedRank, sp.spread}, {shippedRank, classify.GallerySpread{}}, {sp.rank, classify.GallerySpread{}}}
			for _, sc := range s.composeScored(pool, o.TestSlides, o.Compose, levels, rng, choices...) {
				v := verdict(&sc)
				vg := Negative
				switch v {
				case classify.VerdictHighGrade:
					vg = HighGrade
				case classify.VerdictLowGrade:
					vg = LowGrade
				}
				t.conf[sc.grade][vg]++
				t.cells = append(t.cells, sc.cells)
				if t.byField != nil && sc.abnormal >= 0 {
					fo := t.byField[sc.abnormal]
					if fo == nil {
						f := &fields[sc.abnormal]
						fo = &FieldOutcome{Set: f.Set, Name: f.Name, Grade: sc.grade.String(), Worst: f.Worst.String(),
							Abnormal: f.Abnormal, AbnormalFound: f.AbnormalFound}
						t.byField[sc.abnormal] = fo
					}
					fo.add(vg, sc.hit[0])
				}
				if sc.grade != Negative {
					t.ab++
					t.nG[sc.grade]++
					for k, h := range sc.hit {
						if h {
							t.hit[k]++
						}
					}
					if sc.hit[0] {
						t.hitG[sc.grade]++
					}
				}
			}
		}
		return t
	}
	t := evaluate(all, rng, true)
	m.AbnormalFields = sortedOutcomes(t.byField)
	k, hits := s.chooseRank(all, 2*o.TrainSlides, o.Compose, rankRng)
	m.GalleryRankAll, m.GalleryHitsAll, m.GalleryHitsOf = GalleryRanks()[k], map[string]int{}, 4*o.TrainSlides
	for k, w := range GalleryRanks() {
		m.GalleryHitsAll[fmt.Sprint(w)] = hits[k]
	}
	var spreadHits []int
	m.GallerySpreadAll, spreadHits = s.chooseSpread(all, 2*o.TrainSlides, o.Compose, spreadRng)
	m.GallerySpreadHitsAll = map[string]int{}
	for k, sp := range GallerySpreads() {
		m.GallerySpreadHitsAll[fmt.Sprintf("%d/%g", sp.PerRegion, sp.RegionUM)] = spreadHits[k]
	}
	rates := func(t *tally) (hs, hn, as, sp, gh, gu, gr float64) {
		c := &t.conf
		nh := c[HighGrade][0] + c[HighGrade][1] + c[HighGrade][2]
		nl := c[LowGrade][0] + c[LowGrade][1] + c[LowGrade][2]
		nn := c[Negative][0] + c[Negative][1] + c[Negative][2]
		return ratio(c[HighGrade][HighGrade], nh), ratio(nh-c[HighGrade][Negative], nh),
			ratio(nh+nl-c[HighGrade][Negative]-c[LowGrade][Negative], nh+nl), ratio(c[Negative][Negative], nn),
			ratio(t.hit[0], t.ab), ratio(t.hit[1], t.ab), ratio(t.hit[2], t.ab)
	}
	m.HSILPlusSensitivity, m.HSILPlusNotNILM, m.ASCUSPlusSensitivity, m.NILMSpecificity, m.GalleryHitRate, m.GalleryHitUnspread, m.GalleryHitNestedRank = rates(&t)
	m.GalleryHitByGrade = map[string]float64{LowGrade.String(): ratio(t.hitG[LowGrade], t.nG[LowGrade]), HighGrade.String(): ratio(t.hitG[HighGrade], t.nG[HighGrade])}
	m.NByGrade = map[string]int{}
	m.Confusion = map[string]map[string]int{}
	for g := range numGrades {
		row := map[string]int{}
		for v := range numGrades {
			row[Grade(v).String()] = t.conf[g][v]
			m.N += t.conf[g][v]
			m.NByGrade[g.String()] += t.conf[g][v]
		}
		m.Confusion[g.String()] = row
	}
	if len(t.cells) > 0 {
		slices.Sort(t.cells)
		m.Cells = [3]int{t.cells[0], t.cells[len(t.cells)/2], t.cells[len(t.cells)-1]}
	}
	// Bootstrap over fields.
	var bs [8][]float64
	draw := make([]int, len(fields))
	for range o.Resamples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range draw {
			draw[i] = rng.Intn(len(fields))
		}
		slices.Sort(draw)
		bt := evaluate(draw, rng, false)
		a, b, c, d, e, f, g := rates(&bt)
		for k, v := range []float64{a, b, c, d, e, f, g, e - f} {
			bs[k] = append(bs[k], v)
		}
	}
	ci := func(v []float64) *Interval {
		if len(v) < 2 {
			return nil
		}
		sort.Float64s(v)
		return &Interval{v[int(0.025*float64(len(v)))], v[int(0.975*float64(len(v)))-1]}
	}
	m.HSILPlusSensitivityCI, m.HSILPlusNotNILMCI, m.ASCUSPlusSensitivityCI, m.NILMSpecificityCI, m.GalleryHitRateCI = ci(bs[0]), ci(bs[1]), ci(bs[2]), ci(bs[3]), ci(bs[4])
	m.GalleryHitUnspreadCI, m.GalleryHitNestedRankCI, m.GallerySpreadGainCI = ci(bs[5]), ci(bs[6]), ci(bs[7])
	m.Seconds = math.Round(time.Since(start).Seconds()*100) / 100
	return m, nil
}

// RuleFile is the JSON of a fitted rule as embedded
// (classify/slide_rule.json), with its provenance.
func RuleFile(r classify.SlideRule, model *classify.Model, fields int, o SlideOptions, nested *SlideMetrics) ([]byte, error) {
	o = o.withDefaults()
	r.Version = "slide-rule-1"
	if model != nil {
		r.ModelVersion, r.ModelSHA256 = model.Version, model.SHA256
	}
	prov := map[string]any{
		"command": "papscan eval --data DATA --fit-slide-rule classify/slide_rule.json",
		"method": fmt.Sprintf("levels and excess chosen on %d slides per grade composed from all %d CRIC fields (cric/fields at 0.25 µm/px resampled to the detection pixel size, cric/more-fields), every cell scored by a model fold that never saw its field; high-grade first, NILM specificity >= %.2f on those slides",
			2*o.TrainSlides, fields, o.Specificity),
		"compose": o.Compose.withDefaults(),
		"seed":    o.Seed,
	}
	if nested != nil {
		prov["nested"] = map[string]any{
			"hsil_plus_sensitivity":  nested.HSILPlusSensitivity,
			"ascus_plus_sensitivity": nested.ASCUSPlusSensitivity,
			"nilm_specificity":       nested.NILMSpecificity,
			"gallery_hit_rate":       nested.GalleryHitRate,
			"n":                      nested.N,
		}
	}
	b, err := json.Marshal(prov)
	if err != nil {
		return nil, err
	}
	r.Fit = b
	out, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}

// FieldOutcome is what became of the nested test slides whose abnormal
// field is one field.
type FieldOutcome struct {
	// Set and Name identify the field ("fields" or "more-fields", image
	// file); Grade is the grade its slides have, Worst its worst label.
	Set   string `json:"set"`
	Name  string `json:"name"`
	Grade string `json:"grade"`
	Worst string `json:"worst"`
	// Abnormal counts its labelled abnormal points, AbnormalFound those a
	// detection covers.
	Abnormal      int `json:"abnormal"`
	AbnormalFound int `json:"abnormal_found"`
	// Slides counts its slides, Verdicts them by verdict, GalleryHits those
	// whose gallery holds one of its labelled abnormal cells.
	Slides      int            `json:"slides"`
	Verdicts    map[string]int `json:"verdicts"`
	GalleryHits int            `json:"gallery_hits"`
}

func (fo *FieldOutcome) add(v Grade, hit bool) {
	if fo.Verdicts == nil {
		fo.Verdicts = map[string]int{}
	}
	fo.Slides++
	fo.Verdicts[v.String()]++
	if hit {
		fo.GalleryHits++
	}
}

// MissedShare is the share of the field's slides called NILM.
func (fo *FieldOutcome) MissedShare() float64 {
	return ratio(fo.Verdicts[Negative.String()], fo.Slides)
}

// sortedOutcomes orders the outcomes by the share of slides called NILM
// (most first), then by grade (high first) and name.
func sortedOutcomes(by map[int]*FieldOutcome) []FieldOutcome {
	out := make([]FieldOutcome, 0, len(by))
	for _, fo := range by {
		out = append(out, *fo)
	}
	slices.SortFunc(out, func(a, b FieldOutcome) int {
		if c := cmp.Compare(b.MissedShare(), a.MissedShare()); c != 0 {
			return c
		}
		if c := cmp.Compare(b.Grade, a.Grade); c != 0 {
			return c
		}
		return cmp.Compare(a.Set+"/"+a.Name, b.Set+"/"+b.Name)
	})
	return out
}
