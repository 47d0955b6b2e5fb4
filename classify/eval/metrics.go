package eval

import (
	"math"
	"sort"

	"papscan/classify"
)

// CellMetrics are the per-cell scores of a set of labelled cells.
type CellMetrics struct {
	N int `json:"n"`
	// Confusion[true][predicted] counts cells by their most probable class.
	Confusion [classify.NumClasses][classify.NumClasses]int `json:"confusion"`
	// Recall per class (argmax), indexed by classify.Class; NaN-free (0 when
	// a class has no cells).
	Recall [classify.NumClasses]float64 `json:"recall"`
	// MacroF1 is the unweighted mean F1 over the classes present.
	MacroF1  float64 `json:"macro_f1"`
	Accuracy float64 `json:"accuracy"`
	// Threshold is the operating point: a cell is flagged high grade when
	// P(ASC-H)+P(HSIL)+P(SCC) >= Threshold.
	Threshold float64 `json:"threshold"`
	// HighGradeRecall: flagged fraction of ASC-H, HSIL and SCC cells.
	HighGradeRecall float64 `json:"high_grade_recall"`
	// NILMFPR: flagged fraction of NILM cells.
	NILMFPR float64 `json:"nilm_fpr"`
	// LowGradeFlagged: fraction of ASC-US/LSIL cells flagged high grade
	// (not an error in triage terms; reported for completeness).
	LowGradeFlagged float64 `json:"low_grade_flagged_high"`
	// AUCHighVsNILM is the ROC AUC of P(high grade), high grade vs NILM.
	AUCHighVsNILM float64 `json:"auc_high_vs_nilm"`
	HighGradeN    int     `json:"high_grade_n"`
	NILMN         int     `json:"nilm_n"`
	// HighGradeRecallCI and NILMFPRCI are 95% bootstrap intervals over the
	// cells' source fields, absent when the cells carry no field or come
	// from a single one. Absent, not null: the cell trainer embeds its
	// CellMetrics in the weights file, which must stay byte-identical to
	// the shipped one when retrained.
	HighGradeRecallCI *Interval `json:"high_grade_recall_ci95,omitempty"`
	NILMFPRCI         *Interval `json:"nilm_fpr_ci95,omitempty"`
	// HighGradeRecallAt05 is the high-grade recall at the threshold whose
	// NILM FPR is at most 0.05 on these cells (ThresholdAtFPR), with its
	// interval over fields at that threshold.
	HighGradeRecallAt05   float64   `json:"high_grade_recall_at_fpr_0.05"`
	HighGradeRecallAt05CI *Interval `json:"high_grade_recall_at_fpr_0.05_ci95,omitempty"`
	// AUCLowVsNILM is the ROC AUC of 1 − P(NILM), ASC-US and LSIL vs NILM.
	AUCLowVsNILM float64 `json:"auc_low_vs_nilm"`
	// Intervals over source fields of the AUCs and the macro-F1 (absent
	// like the ones above).
	AUCHighVsNILMCI *Interval `json:"auc_high_vs_nilm_ci95,omitempty"`
	AUCLowVsNILMCI  *Interval `json:"auc_low_vs_nilm_ci95,omitempty"`
	MacroF1CI       *Interval `json:"macro_f1_ci95,omitempty"`
}

// Cells scores probabilities probs (one per cell) against the true classes
// at the high-grade threshold th. fields (nil or one per cell) names each
// cell's source field; with two or more fields the high-grade recall and
// NILM FPR get bootstrap intervals over them.
func Cells(truth []classify.Class, probs [][classify.NumClasses]float32, fields []string, th float64) CellMetrics {
	m := CellMetrics{N: len(truth), Threshold: th}
	var hiTP, nilFP, lowN, lowFP, correct int
	var hi, nilm, low, nilmAb []float64
	// Per field (when fields is given): high-grade flagged / cells, NILM
	// flagged / cells.
	group := map[string]int{}
	var gHiTP, gHiN, gNilFP, gNilN []int
	for i, t := range truth {
		g := -1
		if fields != nil {
			var ok bool
			if g, ok = group[fields[i]]; !ok {
				g = len(gHiN)
				group[fields[i]] = g
				gHiTP, gHiN, gNilFP, gNilN = append(gHiTP, 0), append(gHiN, 0), append(gNilFP, 0), append(gNilN, 0)
			}
		}
		p := probs[i]
		best := 0
		for c := range p {
			if p[c] > p[best] {
				best = c
			}
		}
		m.Confusion[t][best]++
		if best == int(t) {
			correct++
		}
		ph := float64(classify.HighGradeProb(p))
		flag := ph >= th
		switch {
		case t.HighGrade():
			m.HighGradeN++
			hi = append(hi, ph)
			if flag {
				hiTP++
			}
			if g >= 0 {
				gHiN[g]++
				if flag {
					gHiTP[g]++
				}
			}
		case t.LowGrade():
			lowN++
			low = append(low, 1-float64(p[classify.NILM]))
			if flag {
				lowFP++
			}
		default:
			m.NILMN++
			nilm = append(nilm, ph)
			nilmAb = append(nilmAb, 1-float64(p[classify.NILM]))
			if flag {
				nilFP++
			}
			if g >= 0 {
				gNilN[g]++
				if flag {
					gNilFP[g]++
				}
			}
		}
	}
	m.MacroF1 = macroF1(&m.Confusion, &m.Recall)
	m.Accuracy = ratio(correct, len(truth))
	m.HighGradeRecall = ratio(hiTP, m.HighGradeN)
	m.NILMFPR = ratio(nilFP, m.NILMN)
	m.LowGradeFlagged = ratio(lowFP, lowN)
	m.AUCHighVsNILM = AUC(hi, nilm)
	m.AUCLowVsNILM = AUC(low, nilmAb)
	t05 := ThresholdAtFPR(nilm, 0.05)
	gHi05 := make([]int, len(gHiN))
	hi05 := 0
	for i, t := range truth {
		if t.HighGrade() && float64(classify.HighGradeProb(probs[i])) >= t05 {
			hi05++
			if fields != nil {
				gHi05[group[fields[i]]]++
			}
		}
	}
	m.HighGradeRecallAt05 = ratio(hi05, m.HighGradeN)
	if fields != nil {
		m.HighGradeRecallAt05CI = ratioCI(gHi05, gHiN)
		m.HighGradeRecallCI, m.NILMFPRCI = ratioCI(gHiTP, gHiN), ratioCI(gNilFP, gNilN)
		m.AUCHighVsNILMCI, m.AUCLowVsNILMCI, m.MacroF1CI = cellCIs(truth, probs, fields)
	}
	return m
}

// macroF1 is the unweighted mean F1 over the classes present in a
// confusion matrix; recall, when not nil, receives the per-class recalls.
func macroF1(conf *[classify.NumClasses][classify.NumClasses]int, recall *[classify.NumClasses]float64) float64 {
	var f1s float64
	present := 0
	for c := range classify.NumClasses {
		tp := conf[c][c]
		var pos, pred int
		for k := range classify.NumClasses {
			pos += conf[c][k]
			pred += conf[k][c]
		}
		if pos == 0 {
			continue
		}
		present++
		if recall != nil {
			recall[c] = float64(tp) / float64(pos)
		}
		if tp > 0 {
			f1s += 2 * float64(tp) / float64(pos+pred)
		}
	}
	if present == 0 {
		return 0
	}
	return f1s / float64(present)
}

// cellCIs are the bootstrap intervals over fields of the high-grade and
// low-grade AUCs and of the macro-F1 (nil with fewer than two fields).
func cellCIs(truth []classify.Class, probs [][classify.NumClasses]float32, fields []string) (hi, lo, f1 *Interval) {
	by := FieldGroups(fields)
	best := make([]int, len(probs))
	for i, p := range probs {
		for c := range p {
			if p[c] > p[best[i]] {
				best[i] = c
			}
		}
	}
	auc := func(gs []int, pos func(classify.Class) bool, score func([classify.NumClasses]float32) float64) float64 {
		var ps, ns []float64
		for _, g := range gs {
			for _, i := range by[g] {
				switch t := truth[i]; {
				case pos(t):
					ps = append(ps, score(probs[i]))
				case t == classify.NILM:
					ns = append(ns, score(probs[i]))
				}
			}
		}
		return AUC(ps, ns)
	}
	ph := func(p [classify.NumClasses]float32) float64 { return float64(classify.HighGradeProb(p)) }
	pa := func(p [classify.NumClasses]float32) float64 { return 1 - float64(p[classify.NILM]) }
	hi = bootstrap(len(by), func(gs []int) float64 { return auc(gs, classify.Class.HighGrade, ph) })
	lo = bootstrap(len(by), func(gs []int) float64 { return auc(gs, classify.Class.LowGrade, pa) })
	f1 = bootstrap(len(by), func(gs []int) float64 {
		var conf [classify.NumClasses][classify.NumClasses]int
		for _, g := range gs {
			for _, i := range by[g] {
				conf[truth[i]][best[i]]++
			}
		}
		return macroF1(&conf, nil)
	})
	return hi, lo, f1
}

// FieldGroups returns the indices of fields grouped by value, the groups
// in the order their field first appears: the units a bootstrap over
// fields resamples.
func FieldGroups(fields []string) [][]int {
	group := map[string]int{}
	var by [][]int
	for i, f := range fields {
		g, ok := group[f]
		if !ok {
			g = len(by)
			group[f] = g
			by = append(by, nil)
		}
		by[g] = append(by[g], i)
	}
	return by
}

func sum(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

func ratio(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// AUC is the Mann-Whitney ROC AUC of pos scoring above neg (ties count one
// half); 0 when either set is empty.
func AUC(pos, neg []float64) float64 {
	if len(pos) == 0 || len(neg) == 0 {
		return 0
	}
	type sc struct {
		v   float64
		pos bool
	}
	all := make([]sc, 0, len(pos)+len(neg))
	for _, v := range pos {
		all = append(all, sc{v, true})
	}
	for _, v := range neg {
		all = append(all, sc{v, false})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v < all[j].v })
	// Rank sum of positives with mid-ranks for ties.
	var rs float64
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		mid := float64(i+j+1) / 2
		for k := i; k < j; k++ {
			if all[k].pos {
				rs += mid
			}
		}
		i = j
	}
	np, nn := float64(len(pos)), float64(len(neg))
	return (rs - np*(np+1)/2) / (np * nn)
}

// ThresholdAtFPR returns the lowest threshold t on the scores such that the
// fraction of neg scores >= t is at most maxFPR (t is midway between two
// neighbouring negative scores, so it generalises a little better than the
// score itself).
func ThresholdAtFPR(neg []float64, maxFPR float64) float64 {
	if len(neg) == 0 {
		return 0.5
	}
	s := append([]float64(nil), neg...)
	sort.Float64s(s)
	allowed := int(math.Floor(maxFPR * float64(len(s))))
	i := len(s) - allowed // s[i:] may be flagged; s[i-1] must not be
	if i <= 0 {
		return s[0]
	}
	if i >= len(s) {
		return math.Nextafter(s[len(s)-1], math.Inf(1))
	}
	if s[i] == s[i-1] {
		return math.Nextafter(s[i-1], math.Inf(1))
	}
	return (s[i-1] + s[i]) / 2
}

// MacroF1 is the unweighted mean F1 over the classes present in a
// confusion matrix (rows true, columns predicted).
func MacroF1(conf *[classify.NumClasses][classify.NumClasses]int) float64 {
	return macroF1(conf, nil)
}
