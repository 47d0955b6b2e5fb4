package eval

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// TestPairedWeights compares weights files on the labelled CRIC crops, each
// crop scored by the fold of each model that held its field out, sharp and
// under the robot's blur (README, "The cell model": blur robustness and the
// candidates). It runs only when PAPSCAN_XP_PAIR lists weights files, the
// first being the reference:
//
//	PAPSCAN_XP_PAIR=classify/model_weights.json,/tmp/cand.json go test ./classify/eval -run TestPairedWeights -v -timeout 60m
//
// (paths relative to classify/eval). Per condition (sharp; a Gaussian
// defocus of σ 0.25 µm = 0.5 px at the robot's 0.5 µm/px; σ 0.21 µm along
// x only, the variance of the 3-tap kernel hal/sim's MotionBlur applies for
// a 0.35 px path) it prints each model's figures with intervals over fields
// and the paired bootstrap difference to the first model (the same 1,000
// resamples of the fields for both: an interval excluding 0 is beyond the
// field-to-field noise), and for each model the paired change from sharp
// to blurred. PAPSCAN_XP_SIPAKMED=1 adds the SIPaKMeD abnormal vs normal
// AUC (glass fill; out of fold for a model trained on SIPaKMeD groups).
func TestPairedWeights(t *testing.T) {
	list := os.Getenv("PAPSCAN_XP_PAIR")
	if list == "" {
		t.Skip("PAPSCAN_XP_PAIR not set")
	}
	dir := dataset.Dir()
	if dir == "" {
		t.Skip("shared data not found")
	}
	var names []string
	var models []*classify.Model
	for _, p := range strings.Split(list, ",") {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m, err := classify.LoadModel(raw)
		if err != nil {
			t.Fatal(err)
		}
		names, models = append(names, filepath.Base(p)), append(models, m)
	}
	conds := []struct {
		name string
		um   [2]float64
	}{{"sharp", [2]float64{}}, {"defocus σ0.5px", [2]float64{0.25, 0.25}}, {"motion-x σ0.42px", [2]float64{0.21, 0}}}
	ctx := context.Background()
	det := classify.DetectOptions{PixelUM: 0.5, MinAreaUM2: 10, MaxAreaUM2: 900} // the shipped profiles'
	probs := make([][]*CellProbs, len(conds))
	for ci, c := range conds {
		for mi, m := range models {
			cp, err := CellPredictions(ctx, Options{DataDir: dir, Model: m, Detect: det, CellBlurUM: c.um})
			if err != nil || cp == nil {
				t.Fatal(err, cp == nil)
			}
			probs[ci] = append(probs[ci], cp)
			cm := Cells(cp.Truth, cp.Probs, cp.Fields, 0.32)
			st := cellStats(cp, nil, nil)
			var nilm, hi []float64
			for i, p := range cp.Probs {
				switch ph := float64(classify.HighGradeProb(p)); {
				case cp.Truth[i] == classify.NILM:
					nilm = append(nilm, ph)
				case cp.Truth[i].HighGrade():
					hi = append(hi, ph)
				}
			}
			t10, k := ThresholdAtFPR(nilm, 0.10), 0
			for _, v := range hi {
				if v >= t10 {
					k++
				}
			}
			fmt.Printf("%-18s %-28s P(high) threshold at NILM FPR <= 0.09: %.4f; at FPR <= 0.10 %.4f, high-grade recall %.3f\n", c.name, names[mi], ThresholdAtFPR(nilm, 0.09), t10, float64(k)/float64(len(hi)))
			fmt.Printf("%-18s %-28s AUC high %.3f %v  rec@.05 %.3f %v  AUC low %.3f %v  macroF1 %.3f %v  HG≥.93 %.3f  NILM≥.93 %.4f\n", c.name, names[mi],
				cm.AUCHighVsNILM, cm.AUCHighVsNILMCI, cm.HighGradeRecallAt05, cm.HighGradeRecallAt05CI, cm.AUCLowVsNILM, cm.AUCLowVsNILMCI, cm.MacroF1, cm.MacroF1CI, st[4], st[5])
			if mi > 0 {
				fmt.Printf("%-18s %-28s paired vs %s: %s\n", c.name, names[mi], names[0], pairedDiff(cp, probs[ci][0]))
			}
			if ci > 0 {
				fmt.Printf("%-18s %-28s paired vs its sharp: %s\n", c.name, names[mi], pairedDiff(cp, probs[0][mi]))
			}
		}
	}
	if os.Getenv("PAPSCAN_XP_SIPAKMED") == "" {
		return
	}
	for mi, m := range models {
		r, err := CellSet(ctx, Options{Model: m, Detect: det}, filepath.Join(dir, "sipakmed"))
		if err != nil {
			t.Fatal(err)
		}
		g := r.Padding["glass"]
		fmt.Printf("sipakmed glass %-28s AUC abnormal %.3f %v (held-out fold %d, final %d)\n", names[mi], g.AUCAbnormal, g.AUCAbnormalCI, r.HeldOutFold, r.FinalModel)
	}
}

// statNames name cellStats: high vs NILM AUC, high recall at NILM FPR
// 0.05 (threshold on these cells), low vs NILM AUC, six-class macro-F1,
// and the fractions of high-grade and of NILM cells at P(high) ≥ 0.93 (the
// level the shipped slide rule counts: a fixed threshold, so a blur that
// lowers every score shows here even when the ranking holds).
var statNames = []string{"AUC high", "rec@.05", "AUC low", "macroF1", "HG≥.93", "NILM≥.93"}

func cellStats(cp *CellProbs, by [][]int, gs []int) [6]float64 {
	var hi, nilm, low, nilmAb []float64
	var conf [classify.NumClasses][classify.NumClasses]int
	if by == nil {
		all := make([]int, len(cp.Probs))
		for i := range all {
			all[i] = i
		}
		by, gs = [][]int{all}, []int{0}
	}
	for _, g := range gs {
		for _, i := range by[g] {
			p := cp.Probs[i]
			best := 0
			for c := range p {
				if p[c] > p[best] {
					best = c
				}
			}
			tc := cp.Truth[i]
			conf[tc][best]++
			ph := float64(classify.HighGradeProb(p))
			switch {
			case tc.HighGrade():
				hi = append(hi, ph)
			case tc.LowGrade():
				low = append(low, 1-float64(p[classify.NILM]))
			default:
				nilm = append(nilm, ph)
				nilmAb = append(nilmAb, 1-float64(p[classify.NILM]))
			}
		}
	}
	t05 := ThresholdAtFPR(nilm, 0.05)
	frac := func(v []float64, t float64) float64 {
		k := 0
		for _, x := range v {
			if x >= t {
				k++
			}
		}
		return float64(k) / float64(max(len(v), 1))
	}
	return [6]float64{AUC(hi, nilm), frac(hi, t05), AUC(low, nilmAb), MacroF1(&conf), frac(hi, 0.93), frac(nilm, 0.93)}
}

// pairedDiff is a − b on the four cell figures with the 95 % interval of
// the difference over 1,000 resamples of the fields, the same for both.
func pairedDiff(a, b *CellProbs) string {
	by := FieldGroups(a.Fields)
	all := make([]int, len(by))
	for i := range all {
		all[i] = i
	}
	sa, sb := cellStats(a, by, all), cellStats(b, by, all)
	rng := rand.New(rand.NewSource(1))
	var diffs [6][]float64
	gs := make([]int, len(by))
	for range 1000 {
		for i := range gs {
			gs[i] = rng.Intn(len(by))
		}
		x, y := cellStats(a, by, gs), cellStats(b, by, gs)
		for k := range diffs {
			diffs[k] = append(diffs[k], x[k]-y[k])
		}
	}
	var sbd strings.Builder
	for k, nm := range statNames {
		sort.Float64s(diffs[k])
		fmt.Fprintf(&sbd, " %s %+.3f [%+.3f, %+.3f]", nm, sa[k]-sb[k], diffs[k][25], diffs[k][974])
	}
	return sbd.String()
}
