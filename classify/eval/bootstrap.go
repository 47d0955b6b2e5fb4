package eval

import (
	"fmt"
	"math/rand"
	"sort"
)

// Interval is a 95% confidence interval [low, high] from a percentile
// bootstrap over the data's groups (fields or images): the unit that a
// further held-out set would draw anew. Null (absent) when there are fewer
// than two groups.
type Interval [2]float64

// String formats the interval as "[0.830, 0.897]".
func (iv *Interval) String() string {
	if iv == nil {
		return "[n/a]"
	}
	return fmt.Sprintf("[%.3f, %.3f]", iv[0], iv[1])
}

// bootstrapResamples is the number of resamples; the seed is fixed so eval
// prints the same interval on every run.
const (
	bootstrapResamples = 2000
	bootstrapSeed      = 1
)

// bootstrap resamples n groups with replacement and returns the 2.5th and
// 97.5th percentiles of stat (which sums what it needs over the sampled
// group indices; a group drawn twice counts twice).
func bootstrap(n int, stat func(groups []int) float64) *Interval {
	if n < 2 {
		return nil
	}
	rng := rand.New(rand.NewSource(bootstrapSeed))
	idx := make([]int, n)
	vals := make([]float64, bootstrapResamples)
	for b := range vals {
		for i := range idx {
			idx[i] = rng.Intn(n)
		}
		vals[b] = stat(idx)
	}
	sort.Float64s(vals)
	lo := vals[int(0.025*float64(len(vals)))]
	hi := vals[int(0.975*float64(len(vals)))-1]
	return &Interval{lo, hi}
}

// ratioCI is the interval of sum(num)/sum(den) over resampled groups.
func ratioCI(num, den []int) *Interval {
	return bootstrap(len(num), func(g []int) float64 {
		var a, b int
		for _, i := range g {
			a, b = a+num[i], b+den[i]
		}
		return ratio(a, b)
	})
}

// f1CI is the interval of the pooled detection F1, 2·TP/(GT+detections),
// over resampled images.
func f1CI(tp, gt, det []int) *Interval {
	return bootstrap(len(tp), func(g []int) float64 {
		var t, s int
		for _, i := range g {
			t, s = t+tp[i], s+gt[i]+det[i]
		}
		return ratio(2*t, s)
	})
}
