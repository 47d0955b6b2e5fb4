package eval

import (
	"context"
	"testing"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// TestRunRealData evaluates the embedded model and the default detector on
// the shared data at the robot's 0.5 µm/px (skipped without the data or in
// -short mode) and guards the measured levels against regressions.
func TestRunRealData(t *testing.T) {
	if testing.Short() {
		t.Skip("evaluates the whole data set")
	}
	dir := dataset.Dir()
	if dir == "" {
		t.Skip("shared data not found")
	}
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	// The shipped operating point and detector settings (those of the sim
	// and r2 profiles: classify.high_grade_threshold, chosen on the cell
	// model's held-out NILM cells for FPR <= 0.09): the targets
	// are asserted, so a change that loses one fails here.
	r, err := Run(context.Background(), Options{DataDir: dir, Model: m, Threshold: classify.DefaultThresholds().HighGrade,
		Detect: classify.DetectOptions{PixelUM: 0.5, MinAreaUM2: 10, MaxAreaUM2: 900}, Slides: &SlideOptions{}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Cells == nil || r.Detection.ISBI == nil || r.Detection.CRIC == nil {
		t.Fatalf("parts missing: %+v", r)
	}
	c := r.Cells
	t.Logf("cells %d: HG recall %.3f NILM FPR %.3f AUC %.3f macro-F1 %.3f; held-out %d final %d",
		c.N, c.HighGradeRecall, c.NILMFPR, c.AUCHighVsNILM, c.MacroF1, r.CellSource.HeldOutFold, r.CellSource.FinalModel)
	t.Logf("ISBI P %.3f R %.3f F1 %.3f; CRIC recall %.3f abnormal %.3f",
		r.Detection.ISBI.Precision, r.Detection.ISBI.Recall, r.Detection.ISBI.F1, r.Detection.CRIC.Recall, r.Detection.CRIC.AbnormalRecall)
	if r.CellSource.HeldOutFold < c.N*9/10 {
		t.Errorf("only %d of %d cells scored by a held-out fold", r.CellSource.HeldOutFold, c.N)
	}
	if c.AUCHighVsNILM < 0.95 || c.NILMFPR > 0.1 || c.HighGradeRecall < 0.9 {
		t.Errorf("cell metrics below target (high-grade recall >= 0.90 at NILM FPR <= 0.10): %+v", c)
	}
	if r.Detection.CRIC.AbnormalRecall < 0.95 {
		t.Errorf("CRIC abnormal-nucleus recall %.3f < 0.95", r.Detection.CRIC.AbnormalRecall)
	}
	if r.Detection.ISBI.F1 < 0.85 {
		t.Errorf("ISBI F1 %.3f < 0.85", r.Detection.ISBI.F1)
	}
	// The slide section: at least 100 slides of each grade, every field
	// scored by a model that never saw it, LOW_GRADE verdicts produced.
	// The levels guarded are today's (issue 13's targets are not met:
	// HSIL+ 0.95, ASC-US+ 0.80, NILM 0.90, gallery 0.95; see README).
	sl := r.Slides
	if sl == nil {
		t.Fatal("no slide section")
	}
	t.Logf("slides %d: HSIL+ %.3f %v ASC-US+ %.3f %v NILM spec %.3f %v gallery %.3f %v; %v",
		sl.N, sl.HSILPlusSensitivity, sl.HSILPlusSensitivityCI, sl.ASCUSPlusSensitivity, sl.ASCUSPlusSensitivityCI,
		sl.NILMSpecificity, sl.NILMSpecificityCI, sl.GalleryHitRate, sl.GalleryHitRateCI, sl.Confusion)
	for g, n := range sl.NByGrade {
		if n < 100 {
			t.Errorf("%d %s slides, want >= 100", n, g)
		}
	}
	nf := 0
	for _, n := range sl.Fields {
		nf += n
	}
	if sl.ModelFold != nf {
		t.Errorf("%d of %d fields scored by a held-out fold of the cell model", sl.ModelFold, nf)
	}
	if sl.Confusion["LOW_GRADE"]["LOW_GRADE"] == 0 {
		t.Errorf("no low-grade slide called LOW_GRADE: %v", sl.Confusion)
	}
	// Today's levels with mlp-cnn-3, fields in all eight orientations, the
	// gallery spread chosen on each split's fitting half (nested: HSIL+
	// 0.697, NILM specificity 0.860, gallery 0.890; with four orientations
	// 0.727, 0.780, 0.885: the operating point moves within its interval).
	if sl.NILMSpecificity < 0.75 || sl.HSILPlusSensitivity < 0.65 || sl.GalleryHitRate < 0.85 {
		t.Errorf("slide verdicts below today's level: NILM specificity %.3f (>= 0.75), HSIL+ sensitivity %.3f (>= 0.65), gallery hit rate %.3f (>= 0.85)",
			sl.NILMSpecificity, sl.HSILPlusSensitivity, sl.GalleryHitRate)
	}
	// Regression guards at the levels mlp-cnn-3 reached (the issue's
	// targets, low grade AUC >= 0.90 and SIPaKMeD AUC >= 0.85 without
	// training on it, are not met yet; see README).
	if c.AUCLowVsNILM < 0.85 {
		t.Errorf("low grade vs NILM AUC %.3f < 0.85", c.AUCLowVsNILM)
	}
	for _, cs := range r.CellSets {
		t.Logf("%s: AUC abnormal vs normal %.3f stored, %.3f glass padding", cs.Name, cs.Padding["stored"].AUCAbnormal, cs.Padding["glass"].AUCAbnormal)
		if cs.Name == "sipakmed" && (cs.Padding["stored"].AUCAbnormal < 0.80 || cs.Padding["glass"].AUCAbnormal < 0.80) {
			t.Errorf("sipakmed AUC abnormal vs normal %.3f stored, %.3f glass: below 0.80", cs.Padding["stored"].AUCAbnormal, cs.Padding["glass"].AUCAbnormal)
		}
	}
}
