package eval

import (
	"errors"
	"math"
	"math/rand"
	"slices"

	"papscan/classify"
)

// ruleAt is a rule with the indices of its levels in the scored levels.
type ruleAt struct {
	rule   classify.SlideRule
	ih, ia int
}

func (r *ruleAt) verdict(s *slideScore) classify.Verdict {
	return r.rule.Verdict(s.high[r.ih], s.abn[r.ia], s.cells)
}

// background is the negative cells of a pool of fields, each physical cell
// counted once (the mean over the orientations), with one pseudo-cell at
// every level: a fit cannot see events rarer than its fields hold.
type background struct {
	cells     float64
	high, abn []float64 // per level
}

func (s *scorer) background(pool []int, levels []float64, nilmOnly bool) background {
	b := background{high: make([]float64, len(levels)), abn: make([]float64, len(levels))}
	for _, f := range pool {
		if s.grade[f] != Negative && nilmOnly {
			continue
		}
		for o := range Flips {
			st := &s.neg[f][o]
			b.cells += float64(st.n) / Flips
			for l, lv := range levels {
				b.high[l] += float64(atLeast(st.high, lv)) / Flips
				b.abn[l] += float64(atLeast(st.abn, lv)) / Flips
			}
		}
	}
	for l := range levels {
		b.high[l]++
		b.abn[l]++
	}
	return b
}

// fitter chooses a slide rule's thresholds on scored training slides.
//
// For every level the background rate is that of the pool's negative cells
// (background) and the dispersion the mean squared deviation of the
// negative training slides' counts from it over their expected count
// (at least 1): the training slides are draws of fields with replacement,
// so it holds how much the count varies from one set of negative fields to
// another. At a level, the excess threshold is the lowest that keeps the
// negative training slides within the budget, and never below what a
// negative slide of the median size reaches with probability alpha under
// that background (normal and Poisson quantiles), so the rule does not bet
// on a background the fit never saw.
type fitter struct {
	train      []slideScore
	levels     []float64
	high, abn  []classify.SlideLevel // per level, Z unset
	size       int                   // median training slide cells
	nNeg       int
	alpha      float64
	allowedHi  int // negative training slides the high level may flag
	allowedAll int // the high and abnormal levels together
}

func newFitter(train []slideScore, bg background, levels []float64, minSpec float64) (*fitter, error) {
	f := &fitter{train: train, levels: levels, alpha: (1 - minSpec) / 2}
	var sizes []int
	nHG := 0
	for i := range train {
		switch train[i].grade {
		case Negative:
			f.nNeg++
		case HighGrade:
			nHG++
		}
		sizes = append(sizes, train[i].cells)
	}
	if f.nNeg == 0 || nHG == 0 || bg.cells == 0 {
		return nil, errors.New("eval: fitting a slide rule needs negative and high-grade slides")
	}
	slices.Sort(sizes)
	f.size = sizes[len(sizes)/2]
	f.allowedAll = int(math.Floor((1 - minSpec) * float64(f.nNeg)))
	f.allowedHi = f.allowedAll / 2
	mk := func(rates []float64, count func(s *slideScore, l int) int) []classify.SlideLevel {
		out := make([]classify.SlideLevel, len(levels))
		for l := range levels {
			rate := rates[l] / bg.cells
			var num, den float64
			for i := range train {
				if train[i].grade != Negative {
					continue
				}
				mu := rate * float64(train[i].cells)
				dev := float64(count(&train[i], l)) - mu
				num += dev * dev
				den += mu
			}
			out[l] = classify.SlideLevel{Prob: levels[l], Rate: round6(rate), Dispersion: round4(max(1, num/den))}
		}
		return out
	}
	f.high = mk(bg.high, func(s *slideScore, l int) int { return s.high[l] })
	f.abn = mk(bg.abn, func(s *slideScore, l int) int { return s.abn[l] })
	return f, nil
}

// floor is the lowest excess a level may ask for.
func (f *fitter) floor(lv classify.SlideLevel) float64 {
	mu := lv.Rate * float64(f.size)
	c := poissonQuantile(mu, f.alpha)
	zAlpha := math.Sqrt2 * math.Erfinv(1-2*f.alpha)
	return max(zAlpha, lv.Excess(c, f.size)-0.5/math.Sqrt(max(lv.Dispersion, 1)*mu+1))
}

// choice is one level and threshold with what it does on the training
// slides.
type choice struct {
	level   int
	lv      classify.SlideLevel
	pos     int // target slides flagged
	neg     int // negative slides flagged
	gap     float64
	flagged []bool
}

func (c *choice) better(b *choice) bool {
	if c.pos != b.pos {
		return c.pos > b.pos
	}
	if c.neg != b.neg {
		return c.neg < b.neg
	}
	return c.gap > b.gap
}

// pick chooses, among levels, the level and excess threshold flagging the
// most target slides (isPos) with at most budget negatives (ties: fewer
// negatives, then the widest gap between the threshold and the nearest
// slide); slides already flagged (skip) are left out. ok is false when no
// threshold keeps the budget.
func (f *fitter) pick(lvs []classify.SlideLevel, count func(s *slideScore, l int) int, levels []int, isPos func(Grade) bool, skip []bool, budget int) (choice, bool) {
	best := choice{level: -1}
	zs := make([]float64, len(f.train))
	for _, l := range levels {
		lv := lvs[l]
		for i := range f.train {
			zs[i] = lv.Excess(count(&f.train[i], l), f.train[i].cells)
		}
		vals := slices.Clone(zs)
		slices.Sort(vals)
		vals = slices.Compact(vals)
		floor := f.floor(lv)
		ths := []float64{floor}
		for i := 0; i+1 < len(vals); i++ {
			if th := (vals[i] + vals[i+1]) / 2; th > floor {
				ths = append(ths, th)
			}
		}
		ths = append(ths, max(floor, vals[len(vals)-1]+1))
		for _, th := range ths {
			c := choice{level: l, gap: math.Inf(1)}
			c.lv, c.lv.Z = lv, th
			for i := range f.train {
				if skip != nil && skip[i] {
					continue
				}
				c.gap = math.Min(c.gap, math.Abs(zs[i]-th))
				if zs[i] < th {
					continue
				}
				switch g := f.train[i].grade; {
				case g == Negative:
					c.neg++
				case isPos(g):
					c.pos++
				}
			}
			if c.neg <= budget && (best.level < 0 || c.better(&best)) {
				best = c
			}
		}
	}
	if best.level < 0 {
		return best, false
	}
	best.flagged = make([]bool, len(f.train))
	for i := range f.train {
		best.flagged[i] = best.lv.Fires(count(&f.train[i], best.level), f.train[i].cells)
	}
	best.lv.Z = round4(best.lv.Z)
	return best, true
}

func (f *fitter) fitHigh(levels []int) (choice, bool) {
	return f.pick(f.high, func(s *slideScore, l int) int { return s.high[l] }, levels,
		func(g Grade) bool { return g == HighGrade }, nil, f.allowedHi)
}

func (f *fitter) fitAbnormal(hi *choice, levels []int) (choice, bool) {
	return f.pick(f.abn, func(s *slideScore, l int) int { return s.abn[l] }, levels,
		func(g Grade) bool { return g != Negative }, hi.flagged, f.allowedAll-hi.neg)
}

func allLevels(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// fitRule fits a rule on slides composed from pool. The levels are chosen
// by an inner cross-validation over the pool's fields (each repeat halves
// them: thresholds fitted on slides of one half, judged on slides of the
// other): the level flagging the most held-out target slides while its
// held-out negatives stay within the budget (else the one flagging fewest
// negatives). The thresholds at those levels are then fitted on slides of
// the whole pool: high grade first, then the abnormal level (see fitter).
func (s *scorer) fitRule(pool []int, o SlideOptions, rng *rand.Rand) (ruleAt, error) {
	nl := len(s.levels)
	hiT, abT := make([]levelTally, nl), make([]levelTally, nl)
	type inner struct {
		f    *fitter
		test []slideScore
	}
	var ins []inner
	for range o.InnerRepeats {
		h := halves(s.fields, pool, rng)
		for half := range 2 {
			a, b := splitHalves(pool, h, half)
			f, err := newFitter(s.trainingSlides(a, o.TrainSlides/2, o.Compose, rng), s.background(a, s.levels, !o.Compose.MixedNegatives), s.levels, o.Specificity)
			if err != nil {
				continue // a half without negative or high-grade fields
			}
			test := s.composeScored(b, o.TestSlides, o.Compose, s.levels, rng)
			ins = append(ins, inner{f, test})
		}
	}
	seen := map[[2]int]bool{} // (tally, field)
	judge := func(t *levelTally, id int, flag func(s *slideScore) bool, isPos func(Grade) bool, test []slideScore) {
		for i := range test {
			if sc := &test[i]; sc.grade != Negative && isPos(sc.grade) && !seen[[2]int{id, sc.abnormal}] {
				seen[[2]int{id, sc.abnormal}] = true
			}
			sc := &test[i]
			switch {
			case sc.grade == Negative:
				t.nNeg++
				if flag(sc) {
					t.neg++
				}
			case isPos(sc.grade):
				t.nPos++
				if flag(sc) {
					t.pos++
				}
			}
		}
	}
	var lhs, las []int
	if len(ins) > 0 {
		for l := range nl {
			for _, in := range ins {
				c, ok := in.f.fitHigh([]int{l})
				if !ok {
					continue
				}
				judge(&hiT[l], 0, func(sc *slideScore) bool { return c.lv.Fires(sc.high[l], sc.cells) }, func(g Grade) bool { return g == HighGrade }, in.test)
			}
		}
		nf := func(id int) (n int) {
			for k := range seen {
				if k[0] == id {
					n++
				}
			}
			return n
		}
		for l := range hiT {
			hiT[l].fields = nf(0)
		}
		lhs = chooseLevels(hiT, (1-o.Specificity)/2)
		if lhs != nil {
			for l := range nl {
				for _, in := range ins {
					hc, ok := in.f.fitHigh(lhs)
					if !ok {
						continue
					}
					c, ok := in.f.fitAbnormal(&hc, []int{l})
					if !ok {
						continue
					}
					judge(&abT[l], 1, func(sc *slideScore) bool {
						return hc.lv.Fires(sc.high[hc.level], sc.cells) || c.lv.Fires(sc.abn[l], sc.cells)
					}, func(g Grade) bool { return g != Negative }, in.test)
				}
			}
			for l := range abT {
				abT[l].fields = nf(1)
			}
			las = chooseLevels(abT, 1-o.Specificity)
		}
	}
	f, err := newFitter(s.trainingSlides(pool, o.TrainSlides, o.Compose, rng), s.background(pool, s.levels, !o.Compose.MixedNegatives), s.levels, o.Specificity)
	if err != nil {
		return ruleAt{}, err
	}
	hl, al := allLevels(nl), allLevels(nl)
	if lhs != nil {
		hl = lhs
	}
	if las != nil {
		al = las
	}
	hc, ok := f.fitHigh(hl)
	if !ok {
		return ruleAt{}, errors.New("eval: no high-grade level keeps the specificity")
	}
	ac, ok := f.fitAbnormal(&hc, al)
	if !ok {
		return ruleAt{}, errors.New("eval: no abnormal level keeps the specificity")
	}
	return ruleAt{rule: classify.SlideRule{High: hc.lv, Abnormal: ac.lv}, ih: hc.level, ia: ac.level}, nil
}

// levelTally is what one level did on the inner held-out slides; fields
// counts the distinct abnormal fields of the target slides.
type levelTally struct{ pos, neg, nPos, nNeg, fields int }

// key ranks a level in chooseLevels: (flagged targets, −flagged negatives)
// when within the budget, else (−flagged negatives, flagged targets).
func (t levelTally) key(within bool) [2]int {
	if within {
		return [2]int{t.pos, -t.neg}
	}
	return [2]int{-t.neg, t.pos}
}

// chooseLevels returns the level to count at: among the levels whose
// held-out negatives stay within budget (all, when none does), those
// flagging within one standard error of the most target slides, and of
// these the highest. The error is binomial over the target slides'
// abnormal fields, not the slides: a new set of slides draws its abnormal
// fields anew, and slides sharing one succeed or fail together. The
// rarer the cells a level counts, the less its background moves between
// laboratories, renderings and sets of fields, so a level that is not
// measurably more sensitive is not worth a lower one. None when no level
// flags a target slide.
func chooseLevels(ts []levelTally, budget float64) []int {
	ok := func(t levelTally) bool { return t.nNeg > 0 && float64(t.neg) <= budget*float64(t.nNeg) }
	within := false
	for _, t := range ts {
		within = within || ok(t)
	}
	best := -1
	for l, t := range ts {
		if t.nPos == 0 || t.nNeg == 0 || (within && !ok(t)) {
			continue
		}
		if best < 0 {
			best = l
			continue
		}
		k, bk := t.key(within), ts[best].key(within)
		if k[0] > bk[0] || (k[0] == bk[0] && k[1] > bk[1]) {
			best = l
		}
	}
	if best < 0 || ts[best].pos == 0 {
		return nil
	}
	b := ts[best]
	p := float64(b.pos) / float64(b.nPos)
	need := float64(b.pos) - float64(b.nPos)*math.Sqrt(p*(1-p)/float64(max(b.fields, 1)))
	pick := best
	for l, t := range ts {
		if l > pick && t.nPos > 0 && (!within || ok(t)) && float64(t.pos) >= need {
			pick = l
		}
	}
	return []int{pick}
}

// poissonQuantile is the smallest count c with P(X >= c) <= alpha for X
// Poisson with mean mu.
func poissonQuantile(mu, alpha float64) int {
	p := math.Exp(-mu) // P(X = k)
	cdf := 0.0
	for k := 0; ; k++ {
		cdf += p
		if 1-cdf <= alpha || k > 100000 {
			return k + 1
		}
		p *= mu / float64(k+1)
	}
}

func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
func round6(v float64) float64 { return math.Round(v*1e6) / 1e6 }
