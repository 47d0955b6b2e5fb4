package eval

import (
	"math"
	"math/rand"
	"slices"

	"papscan/classify"
)

// logitRule is the richer slide rule: two logistic scores over the slide's
// whole tail, the excess over the negative background (SlideLevel.Excess)
// at every level of Levels() of P(high grade) and of P(not NILM), each
// squashed by asinh. HIGH_GRADE when the high score reaches its threshold,
// else LOW_GRADE when the abnormal score does.
type logitRule struct {
	high, abn   []classify.SlideLevel // per level: rate and dispersion
	wHigh, wAbn []float64             // per feature, bias last
	thHigh      float64
	thAbn       float64
}

// features returns the slide's features (asinh of the excess at each level,
// high grade then abnormal) into x.
func slideFeatures(high, abn []classify.SlideLevel, sc *slideScore, x []float64) []float64 {
	x = x[:0]
	for l := range high {
		x = append(x, math.Asinh(high[l].Excess(sc.high[l], sc.cells)))
	}
	for l := range abn {
		x = append(x, math.Asinh(abn[l].Excess(sc.abn[l], sc.cells)))
	}
	return x
}

func dot(w, x []float64) float64 {
	s := w[len(w)-1]
	for i, v := range x {
		s += w[i] * v
	}
	return s
}

func (r *logitRule) scores(sc *slideScore) (float64, float64) {
	var buf [64]float64
	x := slideFeatures(r.high, r.abn, sc, buf[:0])
	return dot(r.wHigh, x), dot(r.wAbn, x)
}

func (r *logitRule) verdict(sc *slideScore) classify.Verdict {
	h, a := r.scores(sc)
	switch {
	case h >= r.thHigh:
		return classify.VerdictHighGrade
	case a >= r.thAbn:
		return classify.VerdictLowGrade
	}
	return classify.VerdictNILM
}

// logitLambda is the L2 penalty of the logistic fits (on standardised
// features): the training slides' negatives are a few fields drawn again
// and again, so the weights must not learn them exactly.
const logitLambda = 30.0

// fitLogistic fits weights (bias last) of a logistic regression of y on the
// rows of x by Newton's method with an L2 penalty on standardised features.
func fitLogistic(x [][]float64, y []bool, lambda float64) []float64 {
	n, d := len(x), len(x[0])
	mu, sd := make([]float64, d), make([]float64, d)
	for _, r := range x {
		for j, v := range r {
			mu[j] += v / float64(n)
		}
	}
	for _, r := range x {
		for j, v := range r {
			sd[j] += (v - mu[j]) * (v - mu[j]) / float64(n)
		}
	}
	for j := range sd {
		sd[j] = math.Sqrt(sd[j])
		if sd[j] < 1e-9 {
			sd[j] = 1
		}
	}
	z := make([][]float64, n)
	for i, r := range x {
		z[i] = make([]float64, d+1)
		for j, v := range r {
			z[i][j] = (v - mu[j]) / sd[j]
		}
		z[i][d] = 1
	}
	w := make([]float64, d+1)
	for range 50 {
		g := make([]float64, d+1)
		h := make([][]float64, d+1)
		for j := range h {
			h[j] = make([]float64, d+2)
		}
		for i := range z {
			p := 1 / (1 + math.Exp(-dotFull(w, z[i])))
			t := 0.0
			if y[i] {
				t = 1
			}
			for j := range d + 1 {
				g[j] += (p - t) * z[i][j]
				for k := range d + 1 {
					h[j][k] += p * (1 - p) * z[i][j] * z[i][k]
				}
			}
		}
		for j := range d {
			g[j] += lambda * w[j]
			h[j][j] += lambda
		}
		h[d][d] += 1e-6
		for j := range d + 1 {
			h[j][d+1] = g[j]
		}
		step, ok := solve(h)
		if !ok {
			break
		}
		m := 0.0
		for j := range w {
			w[j] -= step[j]
			m = max(m, math.Abs(step[j]))
		}
		if m < 1e-8 {
			break
		}
	}
	// Back to the raw features.
	out := make([]float64, d+1)
	out[d] = w[d]
	for j := range d {
		out[j] = w[j] / sd[j]
		out[d] -= w[j] * mu[j] / sd[j]
	}
	return out
}

func dotFull(w, x []float64) float64 {
	s := 0.0
	for i := range w {
		s += w[i] * x[i]
	}
	return s
}

// solve solves the linear system of the augmented n x (n+1) matrix a by
// Gaussian elimination with partial pivoting.
func solve(a [][]float64) ([]float64, bool) {
	n := len(a)
	for c := range n {
		p := c
		for r := c + 1; r < n; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		if math.Abs(a[p][c]) < 1e-12 {
			return nil, false
		}
		a[c], a[p] = a[p], a[c]
		for r := range n {
			if r == c {
				continue
			}
			f := a[r][c] / a[c][c]
			for k := c; k <= n; k++ {
				a[r][k] -= f * a[c][k]
			}
		}
	}
	x := make([]float64, n)
	for r := range n {
		x[r] = a[r][n] / a[r][r]
	}
	return x, true
}

// threshold returns the lowest threshold on score flagging at most budget
// of the negatives (midway between the highest negative left unflagged and
// the next score above it), among the slides not skipped.
func threshold(score []float64, neg []bool, skip []bool, budget int) float64 {
	var negs []float64
	var all []float64
	for i, v := range score {
		if skip != nil && skip[i] {
			continue
		}
		all = append(all, v)
		if neg[i] {
			negs = append(negs, v)
		}
	}
	if len(negs) == 0 {
		return math.Inf(-1)
	}
	slices.Sort(negs)
	budget = max(0, budget)
	if budget >= len(negs) {
		return math.Inf(-1)
	}
	v := negs[len(negs)-1-budget] // must stay unflagged
	next := math.Inf(1)
	for _, a := range all {
		if a > v && a < next {
			next = a
		}
	}
	if math.IsInf(next, 1) {
		return v + 1
	}
	return (v + next) / 2
}

// fitLogit fits the logistic rule on the fitter's training slides, its
// thresholds keeping the same negative budgets as the level rule.
func (f *fitter) fitLogit() *logitRule {
	r := &logitRule{high: f.high, abn: f.abn}
	x := make([][]float64, len(f.train))
	yh, ya, neg := make([]bool, len(f.train)), make([]bool, len(f.train)), make([]bool, len(f.train))
	for i := range f.train {
		x[i] = slideFeatures(f.high, f.abn, &f.train[i], nil)
		g := f.train[i].grade
		yh[i], ya[i], neg[i] = g == HighGrade, g != Negative, g == Negative
	}
	r.wHigh = fitLogistic(x, yh, logitLambda)
	r.wAbn = fitLogistic(x, ya, logitLambda)
	sh, sa := make([]float64, len(x)), make([]float64, len(x))
	for i := range x {
		sh[i], sa[i] = dot(r.wHigh, x[i]), dot(r.wAbn, x[i])
	}
	r.thHigh = threshold(sh, neg, nil, f.allowedHi)
	flagged := make([]bool, len(x))
	used := 0
	for i := range x {
		flagged[i] = sh[i] >= r.thHigh
		if flagged[i] && neg[i] {
			used++
		}
	}
	r.thAbn = threshold(sa, neg, flagged, f.allowedAll-used)
	return r
}

// fitLogitNested fits the logistic rule on slides of pool and sets its
// thresholds from held-out slides: each of InnerRepeats splits of the pool
// in halves fits a rule on one half and scores slides of the other; the
// threshold each needs there to keep its negative budget on fields it
// never saw, minus the one it had on its own training slides, is the shift
// (averaged over the splits) added to the final rule's in-fit thresholds.
// A rule's in-fit threshold sits just above negatives it learned; new
// fields' negatives score higher.
func (s *scorer) fitLogitNested(pool []int, o SlideOptions, rng *rand.Rand) (*logitRule, error) {
	var dh, da []float64
	for range o.InnerRepeats {
		h := halves(s.fields, pool, rng)
		for half := range 2 {
			a, b := splitHalves(pool, h, half)
			f, err := newFitter(s.trainingSlides(a, o.TrainSlides/2, o.Compose, rng), s.background(a, s.levels, !o.Compose.MixedNegatives), s.levels, o.Specificity)
			if err != nil {
				continue
			}
			r := f.fitLogit()
			test := s.composeScored(b, o.TestSlides, o.Compose, s.levels, rng)
			sh, sa := make([]float64, len(test)), make([]float64, len(test))
			neg := make([]bool, len(test))
			nNeg := 0
			for i := range test {
				sh[i], sa[i] = r.scores(&test[i])
				neg[i] = test[i].grade == Negative
				if neg[i] {
					nNeg++
				}
			}
			if nNeg == 0 {
				continue
			}
			all := int(math.Floor((1 - o.Specificity) * float64(nNeg)))
			th := threshold(sh, neg, nil, all/2)
			flagged := make([]bool, len(test))
			used := 0
			for i := range test {
				flagged[i] = sh[i] >= th
				if flagged[i] && neg[i] {
					used++
				}
			}
			ta := threshold(sa, neg, flagged, all-used)
			if !math.IsInf(th, 0) && !math.IsInf(r.thHigh, 0) {
				dh = append(dh, th-r.thHigh)
			}
			if !math.IsInf(ta, 0) && !math.IsInf(r.thAbn, 0) {
				da = append(da, ta-r.thAbn)
			}
		}
	}
	f, err := newFitter(s.trainingSlides(pool, o.TrainSlides, o.Compose, rng), s.background(pool, s.levels, !o.Compose.MixedNegatives), s.levels, o.Specificity)
	if err != nil {
		return nil, err
	}
	r := f.fitLogit()
	r.thHigh += max(0, mean(dh))
	r.thAbn += max(0, mean(da))
	return r, nil
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
