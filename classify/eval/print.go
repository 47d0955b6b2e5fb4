package eval

import (
	"fmt"
	"io"
	"strings"

	"papscan/classify"
)

// PrintCells writes the confusion matrix and cell metrics as a table.
func PrintCells(w io.Writer, m *CellMetrics) {
	fmt.Fprintf(w, "confusion (rows true, cols predicted):\n%8s", "")
	for c := range classify.NumClasses {
		fmt.Fprintf(w, "%7s", classify.Class(c))
	}
	fmt.Fprintf(w, "%8s\n", "recall")
	for t := range classify.NumClasses {
		fmt.Fprintf(w, "%8s", classify.Class(t))
		for p := range classify.NumClasses {
			fmt.Fprintf(w, "%7d", m.Confusion[t][p])
		}
		fmt.Fprintf(w, "%8.3f\n", m.Recall[t])
	}
	fmt.Fprintf(w, "cells %d, accuracy %.3f, macro-F1 %.3f %s; AUC low grade (ASC-US+LSIL) vs NILM on 1-P(NILM) %.3f %s\n", m.N, m.Accuracy, m.MacroF1, m.MacroF1CI, m.AUCLowVsNILM, m.AUCLowVsNILMCI)
	fmt.Fprintf(w, "high grade at P(ASC-H+HSIL+SCC) >= %.3f: recall %.3f %s (%d cells), NILM FPR %.3f %s (%d cells), low grade flagged %.3f; AUC high vs NILM %.3f %s\n",
		m.Threshold, m.HighGradeRecall, m.HighGradeRecallCI, m.HighGradeN, m.NILMFPR, m.NILMFPRCI, m.NILMN, m.LowGradeFlagged, m.AUCHighVsNILM, m.AUCHighVsNILMCI)
	fmt.Fprintf(w, "high-grade recall at NILM FPR <= 0.05 (threshold set on these cells) %.3f %s\n", m.HighGradeRecallAt05, m.HighGradeRecallAt05CI)
	fmt.Fprintln(w, "([low, high]: 95% bootstrap intervals over source fields)")
}

// PrintCellSet writes the scores of a labelled-cell directory, one line per
// padding mode.
func PrintCellSet(w io.Writer, r *CellSetResult) {
	fmt.Fprintf(w, "cells %s (%s, manifest %s, %.3f µm/px): %d cells from %d source images (normal %d, low %d, high %d; excluded %d), %d held-out-fold predictions, %d by the final model, %d without a nucleus\n",
		r.Name, r.Dir, r.Manifest, r.PixelUM, r.Cells, r.Groups, r.ByGrade[GradeNormal], r.ByGrade[GradeLow], r.ByGrade[GradeHigh], r.ByGrade[GradeExcluded], r.HeldOutFold, r.FinalModel, r.Skipped)
	for _, mode := range PaddingModes {
		m := r.Padding[mode]
		if m == nil {
			continue
		}
		fmt.Fprintf(w, "  padding %-6s AUC abnormal vs normal %.3f %s, high vs normal %.3f %s, low vs normal %.3f %s; abnormal recall at normal FPR 0.05: %.3f; at P(high) >= %.3f: high recall %.3f %s, abnormal %.3f %s, normal FPR %.3f %s\n",
			mode, m.AUCAbnormal, m.AUCAbnormalCI, m.AUCHigh, m.AUCHighCI, m.AUCLow, m.AUCLowCI, m.AbnormalRecallAt05,
			m.Threshold, m.HighRecall, m.HighRecallCI, m.AbnormalRecall, m.AbnormalRecallCI, m.NormalFPR, m.NormalFPRCI)
	}
	fmt.Fprintln(w, "  ([low, high]: 95% bootstrap intervals over source images; abnormal score 1 - P(NILM))")
}

// PrintSlides writes the slide-level figures.
func PrintSlides(w io.Writer, m *SlideMetrics) {
	o := m.Options
	fmt.Fprintf(w, "slides (CRIC fields: %d NILM-only, %d low-grade, %d high-grade, each analysed once in %d orientations, %d cells; cell model: held-out fold for %d fields, final model for the rest; object filter: held-out fold for %d):\n",
		m.Fields[Negative.String()], m.Fields[LowGrade.String()], m.Fields[HighGrade.String()], Flips, m.FieldCells, m.ModelFold, m.ObjectFold)
	fmt.Fprintf(w, "  %d slides (%d NILM, %d low grade, %d high grade), one abnormal field per abnormal slide, each field at most %d time(s) per slide, %d–%d cells (median %d)\n",
		m.N, m.NByGrade[Negative.String()], m.NByGrade[LowGrade.String()], m.NByGrade[HighGrade.String()], o.Compose.withDefaults().MaxUses, m.Cells[0], m.Cells[2], m.Cells[1])
	neg := "NILM-only fields"
	if o.Compose.MixedNegatives {
		neg = fmt.Sprintf("NILM-only fields and the NILM-labelled cells >= %g µm from abnormal labels of the other fields", NegativeClearUM)
	}
	fmt.Fprintf(w, "  negative material: %s\n", neg)
	fmt.Fprintf(w, "  nested: %d repeats × 2 halves of the fields; each half's slides scored by a %s rule fitted on %d slides per grade of the other half (NILM specificity >= %.2f on them), and its gallery ranked as chosen there (P(high) + w·P(low), w in %v: chose %v; on all fields %v)\n",
		o.Repeats, o.Method, o.TrainSlides, o.Specificity, GalleryRanks(), m.GalleryRanks, m.GalleryRankAll)
	fmt.Fprintf(w, "  HSIL+ sensitivity (HIGH_GRADE) %.3f %s, not NILM %.3f %s\n", m.HSILPlusSensitivity, m.HSILPlusSensitivityCI, m.HSILPlusNotNILM, m.HSILPlusNotNILMCI)
	fmt.Fprintf(w, "  ASC-US+ sensitivity (not NILM) %.3f %s\n", m.ASCUSPlusSensitivity, m.ASCUSPlusSensitivityCI)
	fmt.Fprintf(w, "  NILM specificity %.3f %s\n", m.NILMSpecificity, m.NILMSpecificityCI)
	fmt.Fprintf(w, "  gallery hit rate (top %d distinct objects, ranked by 1 − P(NILM), spread as chosen on the fitting half: %s; hold a labelled abnormal cell) %.3f %s (low grade %.3f, high grade %.3f)\n",
		o.Gallery, spreadNames(m.GallerySpreads), m.GalleryHitRate, m.GalleryHitRateCI, m.GalleryHitByGrade[LowGrade.String()], m.GalleryHitByGrade[HighGrade.String()])
	fmt.Fprintf(w, "    without a spread %.3f %s (gain of the spread, paired: %s); ranking chosen on the fitting half, no spread %.3f %s; spread chosen on all fields %s\n",
		m.GalleryHitUnspread, m.GalleryHitUnspreadCI, m.GallerySpreadGainCI, m.GalleryHitNestedRank, m.GalleryHitNestedRankCI, spreadNames([]classify.GallerySpread{m.GallerySpreadAll}))
	fmt.Fprintf(w, "  verdicts (rows true):%12s%12s%12s\n", Negative, LowGrade, HighGrade)
	for g := range numGrades {
		row := m.Confusion[g.String()]
		fmt.Fprintf(w, "  %20s%12d%12d%12d\n", g, row[Negative.String()], row[LowGrade.String()], row[HighGrade.String()])
	}
	// Where the sensitivities are lost: each high-grade field's slides,
	// and how many low-grade fields are never or always flagged.
	var lowNever, lowAlways, low int
	first := true
	for _, fo := range m.AbnormalFields {
		if fo.Grade != HighGrade.String() {
			low++
			switch fo.MissedShare() {
			case 1:
				lowNever++
			case 0:
				lowAlways++
			}
			continue
		}
		if first {
			fmt.Fprintf(w, "  high-grade fields, most often called NILM first (slides NILM / LOW_GRADE / HIGH_GRADE; labelled abnormal nuclei, detected; all fields in --json slides.abnormal_fields):\n")
			first = false
		}
		fmt.Fprintf(w, "    %s/%s  worst %-5s %2d / %2d / %2d  labelled %2d, detected %2d\n", fo.Set, fo.Name, fo.Worst,
			fo.Verdicts[Negative.String()], fo.Verdicts[LowGrade.String()], fo.Verdicts[HighGrade.String()], fo.Abnormal, fo.AbnormalFound)
	}
	if low > 0 {
		fmt.Fprintf(w, "  low-grade fields: %d of %d never flagged (every slide NILM), %d flagged on every slide\n", lowNever, low, lowAlways)
	}
	fmt.Fprintf(w, "  ([low, high]: 95%% bootstrap over fields, %d resamples, slides recomposed from each; fields analysed in %.1f s, slides in %.1f s)\n",
		o.Resamples, m.AnalyseSeconds, m.Seconds)
}

// spreadNames names gallery spreads "at most k within R µm" (k/R), "-"
// for none.
func spreadNames(sp []classify.GallerySpread) string {
	var b strings.Builder
	for i, g := range sp {
		if i > 0 {
			b.WriteByte(' ')
		}
		if g.PerRegion <= 0 {
			b.WriteByte('-')
			continue
		}
		fmt.Fprintf(&b, "%d/%gµm", g.PerRegion, g.RegionUM)
	}
	return b.String()
}
