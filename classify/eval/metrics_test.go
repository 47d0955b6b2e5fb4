package eval

import (
	"math"
	"testing"

	"papscan/classify"
)

func TestAUC(t *testing.T) {
	cases := []struct {
		pos, neg []float64
		want     float64
	}{
		{[]float64{0.9, 0.8}, []float64{0.1, 0.2}, 1},
		{[]float64{0.1}, []float64{0.9}, 0},
		{[]float64{0.5, 0.5}, []float64{0.5}, 0.5},
		{[]float64{0.3, 0.7}, []float64{0.5}, 0.5},
		{nil, []float64{1}, 0},
	}
	for _, c := range cases {
		if got := AUC(c.pos, c.neg); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("AUC(%v,%v) = %v want %v", c.pos, c.neg, got, c.want)
		}
	}
}

func TestThresholdAtFPR(t *testing.T) {
	neg := []float64{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95}
	th := ThresholdAtFPR(neg, 0.2)
	n := 0
	for _, v := range neg {
		if v >= th {
			n++
		}
	}
	if n != 2 || th <= 0.8 || th > 0.9 {
		t.Fatalf("threshold %v flags %d", th, n)
	}
	if th := ThresholdAtFPR(neg, 0); th <= 0.95 {
		t.Fatalf("fpr 0: threshold %v", th)
	}
}

func TestCells(t *testing.T) {
	p := func(c classify.Class, v float32) (q [classify.NumClasses]float32) {
		q[classify.NILM] = 1 - v
		q[c] += v
		return
	}
	truth := []classify.Class{classify.NILM, classify.NILM, classify.HSIL, classify.SCC, classify.LSIL}
	probs := [][classify.NumClasses]float32{p(classify.HSIL, 0.2), p(classify.HSIL, 0.7), p(classify.HSIL, 0.9), p(classify.SCC, 0.4), p(classify.LSIL, 0.8)}
	m := Cells(truth, probs, nil, 0.5)
	if m.HighGradeRecall != 0.5 || m.NILMFPR != 0.5 || m.HighGradeN != 2 || m.NILMN != 2 {
		t.Fatalf("%+v", m)
	}
	if m.Confusion[classify.HSIL][classify.HSIL] != 1 || m.Confusion[classify.SCC][classify.NILM] != 1 {
		t.Fatalf("confusion %v", m.Confusion)
	}
}
