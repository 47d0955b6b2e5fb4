package train

import (
	"math"
	"reflect"
	"testing"

	"papscan/classify"
)

func TestFitTreesDeterministicAndLearns(t *testing.T) {
	train, test := synthSamples(600, 1), synthSamples(300, 2)
	o := DefaultTrees()
	o.Rounds = 40
	h1, h2 := fitTrees(train, DefaultFit(), o), fitTrees(train, DefaultFit(), o)
	if !reflect.DeepEqual(h1, h2) {
		t.Fatal("two fits with the same seed differ")
	}
	if len(h1.Trees) != o.Rounds*classify.NumClasses {
		t.Fatalf("%d trees, want %d", len(h1.Trees), o.Rounds*classify.NumClasses)
	}
	fs := make([]classify.Features, len(test))
	for i, s := range test {
		fs[i] = s.F
	}
	ps, err := PredictTrees(h1, fs)
	if err != nil {
		t.Fatal(err)
	}
	correct := 0
	for i, p := range ps {
		var sum float32
		best := 0
		for c := range p {
			sum += p[c]
			if p[c] > p[best] {
				best = c
			}
		}
		if math.Abs(float64(sum)-1) > 1e-4 {
			t.Fatalf("probabilities sum to %v", sum)
		}
		if classify.Class(best) == test[i].Class {
			correct++
		}
	}
	// Feature 0 moves by 3 standard deviations per class: a held-out
	// accuracy near 0.87 is what the Bayes rule on feature 0 alone gets.
	if acc := float64(correct) / float64(len(test)); acc < 0.75 {
		t.Errorf("held-out accuracy %.2f on separable data", acc)
	}
}

func TestTreeHeadRejectsBadShapes(t *testing.T) {
	h := fitTrees(synthSamples(120, 1), DefaultFit(), TreeOptions{Rounds: 2, Depth: 2, LR: 0.1, Lambda: 1, MinHess: 0.5, Bins: 8, RowFrac: 1, ColFrac: 1, Seed: 1})
	bad := *h
	bad.Trees = append([]Tree(nil), h.Trees...)
	bad.Trees[0].Features = append([]uint8(nil), h.Trees[0].Features...)
	bad.Trees[0].Features[0] = classify.NumFeatures
	if _, err := PredictTrees(&bad, nil); err == nil {
		t.Error("a tree testing feature NumFeatures was accepted")
	}
	bad = *h
	bad.Trees = h.Trees[:1]
	if _, err := PredictTrees(&bad, nil); err == nil {
		t.Error("a head whose tree count is not a multiple of the classes was accepted")
	}
	bad = *h
	bad.Depth = MaxTreeDepth + 1
	if _, err := PredictTrees(&bad, nil); err == nil {
		t.Error("a too deep head was accepted")
	}
}

func TestBinCutsAndBins(t *testing.T) {
	s := make([]Sample, 10)
	for i := range s {
		s[i].F[3] = float32(i % 5) // five distinct values, twice each
	}
	s[0].F[3] = float32(math.NaN())
	cuts := binCuts(s, 3, 4)
	for i := 1; i < len(cuts); i++ {
		if !(cuts[i] > cuts[i-1]) {
			t.Fatalf("cuts %v are not increasing", cuts)
		}
	}
	if got := binOf(cuts, float32(math.NaN())); got != 0 {
		t.Errorf("NaN in bin %d, want 0", got)
	}
	for _, x := range []float32{-1, 0, 1, 2, 3, 4, 9} {
		b := binOf(cuts, x)
		if b > 0 && cuts[b-1] > x {
			t.Errorf("x %v in bin %d but cut %v above it", x, b, cuts[b-1])
		}
		if int(b) < len(cuts) && cuts[b] <= x {
			t.Errorf("x %v in bin %d but cut %v at or below it", x, b, cuts[b])
		}
	}
}
