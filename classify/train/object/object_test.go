package object

import (
	"context"
	"encoding/json"
	"math"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"papscan/classify"
	"papscan/classify/eval"
	"papscan/classify/internal/dataset"
)

// synthData: 6 "ISBI" images whose detections are nuclei when feature 0
// (log area) is large, and 4 "CRIC" fields of positives only.
func synthData(seed int64) *Data {
	rng := rand.New(rand.NewSource(seed))
	d := &Data{}
	for i := range 10 {
		im := Image{Field: classify.ObjectField("cric", string(rune('a'+i))), ISBI: i < 6, First: len(d.Samples)}
		for range 20 {
			s := Sample{Weight: 1, Image: len(d.Images)}
			s.Label = !im.ISBI || rng.Intn(2) == 0
			for j := range s.V {
				s.V[j] = rng.NormFloat64()
			}
			if s.Label {
				s.V[0] += 2
			}
			if !im.ISBI {
				s.Weight = 3
				im.Points = append(im.Points, Point{Abnormal: true, Class: "HSIL", Covers: []int{len(d.Samples)}})
			} else {
				n := classify.Nucleus{X: float64(len(im.Dets) * 50), Y: 10, PixelUM: 0.5}
				im.Dets = append(im.Dets, n)
				if s.Label {
					im.GT = append(im.GT, pointAt(n))
				}
			}
			d.Samples = append(d.Samples, s)
		}
		d.Images = append(d.Images, im)
	}
	return d
}

// TestTrainSyntheticDeterministic: training twice on the same synthetic set
// gives identical weights, the out-of-fold filter improves F1 over no
// filter while keeping the abnormal-recall floor, and every image is held
// out by exactly one fold.
func TestTrainSyntheticDeterministic(t *testing.T) {
	o := DefaultOptions()
	o.Fit.Iters = 200
	o.MinAbnormalRecall = 0.9
	for _, hidden := range []int{0, 4} {
		o.Fit.Hidden = hidden
		r1, err := TrainData(context.Background(), synthData(3), o)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := TrainData(context.Background(), synthData(3), o)
		if err != nil {
			t.Fatal(err)
		}
		b1, _ := json.Marshal(r1.Params)
		b2, _ := json.Marshal(r2.Params)
		if string(b1) != string(b2) {
			t.Fatalf("hidden %d: two runs differ", hidden)
		}
		if !(r1.OOF.F1 > r1.Before.F1) || r1.OOF.AbnormalRecall < 0.9 {
			t.Errorf("hidden %d: OOF F1 %.3f (before %.3f), abnormal recall %.3f", hidden, r1.OOF.F1, r1.Before.F1, r1.OOF.AbnormalRecall)
		}
		f, err := classify.NewObjectFilter(r1.Params)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range synthData(3).Images {
			if !f.TrainedOn(im.Field) {
				t.Errorf("%s is held out by no fold", im.Field)
			}
		}
		if !reflect.DeepEqual(r1.OOF, r2.OOF) {
			t.Error("OOF metrics differ between runs")
		}
	}
}

// TestTrainRealData: on the shared data (skipped without it, and in -short)
// the filter raises the out-of-fold ISBI F1 and keeps the CRIC abnormal
// recall at the floor.
func TestTrainRealData(t *testing.T) {
	dir := dataset.Dir()
	if dir == "" || testing.Short() {
		t.Skip("no ../shared/data or -short")
	}
	o := DefaultOptions()
	r, err := Train(context.Background(), dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.OOF.F1 <= r.Before.F1 || r.OOF.AbnormalRecall < o.MinAbnormalRecall {
		t.Errorf("OOF F1 %.3f (before %.3f), abnormal recall %.3f", r.OOF.F1, r.Before.F1, r.OOF.AbnormalRecall)
	}
}

func pointAt(n classify.Nucleus) eval.Point { return eval.Point{X: n.X, Y: n.Y} }

// TestFitEnsembleAveragesLogits: an ensemble of k fits is one network whose
// logit is the mean of the k members' logits (members: seeds Seed..Seed+k-1).
func TestFitEnsembleAveragesLogits(t *testing.T) {
	d := synthData(5)
	o := FitOptions{Hidden: 4, Iters: 50, LR: 0.03, Lambda: 1e-3, Seed: 7, Ensemble: 3}
	e := Fit(d.Samples, o)
	if len(e.Hidden) != 12 || len(e.Weights) != 13 {
		t.Fatalf("ensemble of 3×4 units: %d hidden rows, %d output weights, want 12 and 13", len(e.Hidden), len(e.Weights))
	}
	var members []classify.ObjectHead
	for k := range 3 {
		m := o
		m.Seed, m.Ensemble = o.Seed+int64(k), 1
		members = append(members, Fit(d.Samples, m))
	}
	logit := func(p float64) float64 { return math.Log(p / (1 - p)) }
	for i := range 20 {
		v := &d.Samples[i].V
		var want float64
		for k := range members {
			want += logit(members[k].Score(v)) / 3
		}
		if got := logit(e.Score(v)); math.Abs(got-want) > 1e-9 {
			t.Fatalf("sample %d: ensemble logit %.12f, mean of members %.12f", i, got, want)
		}
	}
}

// TestTrainRefusesOversizedEnsemble: an ensemble wider than the filter's
// hidden layer can hold is refused before any fitting, naming the limit.
func TestTrainRefusesOversizedEnsemble(t *testing.T) {
	o := DefaultOptions()
	o.Fit.Ensemble, o.Fit.Hidden = 8, 8
	_, err := TrainData(context.Background(), synthData(1), o)
	if err == nil || !strings.Contains(err.Error(), "ensemble × hidden = 64") {
		t.Fatalf("err %v, want the 64-unit ensemble refused", err)
	}
}
