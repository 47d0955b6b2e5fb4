package eval

import (
	"fmt"
	"io"

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
