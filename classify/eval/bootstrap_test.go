package eval

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"papscan/classify"
)

// TestBootstrapIntervals: the intervals are reproducible, hold the pooled
// estimate, shrink as the groups agree, and are absent for a single group.
func TestBootstrapIntervals(t *testing.T) {
	num, den := []int{9, 8, 10, 7, 9, 10, 8, 9}, []int{10, 10, 10, 10, 10, 10, 10, 10}
	a, b := ratioCI(num, den), ratioCI(num, den)
	if a == nil || *a != *b {
		t.Fatalf("not reproducible: %v %v", a, b)
	}
	if p := 70.0 / 80; a[0] > p || a[1] < p || a[0] >= a[1] {
		t.Errorf("interval %v does not hold the pooled recall %.3f", a, p)
	}
	same := ratioCI([]int{9, 9, 9, 9}, []int{10, 10, 10, 10})
	if same[0] != 0.9 || same[1] != 0.9 {
		t.Errorf("identical groups: interval %v, want [0.9, 0.9]", same)
	}
	if ratioCI([]int{1}, []int{2}) != nil {
		t.Error("one group: want no interval")
	}
	// F1 = 2·TP/(GT+detections) pooled: one image 8 TP of 10 GT and 10
	// detections is 0.8.
	f := f1CI([]int{8, 8}, []int{10, 10}, []int{10, 10})
	if math.Abs(f[0]-0.8) > 1e-12 || math.Abs(f[1]-0.8) > 1e-12 {
		t.Errorf("F1 interval %v, want [0.8, 0.8]", f)
	}
	if s := (*Interval)(nil).String(); s != "[n/a]" {
		t.Errorf("nil interval prints %q", s)
	}
}

// TestCellCIsGroupByField: cells are resampled by field (and without
// fields there is no interval): a field whose
// high-grade cells are all missed widens the recall interval down to the
// recall without it.
func TestCellCIsGroupByField(t *testing.T) {
	var truth []classify.Class
	var probs [][classify.NumClasses]float32
	var fields []string
	add := func(field string, c classify.Class, ph float32) {
		var p [classify.NumClasses]float32
		p[classify.HSIL], p[classify.NILM] = ph, 1-ph
		truth, probs, fields = append(truth, c), append(probs, p), append(fields, field)
	}
	for _, f := range []string{"a", "b", "c", "d"} {
		for range 5 {
			add(f, classify.HSIL, 0.9)
			add(f, classify.NILM, 0.1)
		}
	}
	for range 5 {
		add("e", classify.HSIL, 0.1) // one field entirely missed
	}
	m := Cells(truth, probs, fields, 0.5)
	rec, fpr := m.HighGradeRecallCI, m.NILMFPRCI
	if rec == nil || rec[0] >= 0.8 || rec[1] != 1 {
		t.Errorf("recall interval %v: want it to reach 1 (field e not drawn) and go below the pooled 0.8", rec)
	}
	if fpr == nil || fpr[0] != 0 || fpr[1] != 0 {
		t.Errorf("FPR interval %v, want [0, 0]", fpr)
	}
	n := Cells(truth, probs, nil, 0.5)
	if n.HighGradeRecallCI != nil || n.NILMFPRCI != nil || n.HighGradeRecall != m.HighGradeRecall {
		t.Errorf("no fields: intervals %v %v, recall %v (want none, %v)", n.HighGradeRecallCI, n.NILMFPRCI, n.HighGradeRecall, m.HighGradeRecall)
	}
	// Absent from the JSON (the cell trainer embeds it in the weights
	// file, which must not change bytes when retrained).
	if b, err := json.Marshal(n); err != nil || strings.Contains(string(b), "ci95") {
		t.Errorf("no fields: JSON %s (err %v) carries interval keys", b, err)
	}
}
