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
	fmt.Fprintf(w, "cells %d, accuracy %.3f, macro-F1 %.3f\n", m.N, m.Accuracy, m.MacroF1)
	fmt.Fprintf(w, "high grade at P(ASC-H+HSIL+SCC) >= %.3f: recall %.3f %s (%d cells), NILM FPR %.3f %s (%d cells), low grade flagged %.3f; AUC high vs NILM %.3f\n",
		m.Threshold, m.HighGradeRecall, m.HighGradeRecallCI, m.HighGradeN, m.NILMFPR, m.NILMFPRCI, m.NILMN, m.LowGradeFlagged, m.AUCHighVsNILM)
	fmt.Fprintln(w, "([low, high]: 95% bootstrap intervals over source fields)")
}

// PrintSlides writes the slide-level figures.
func PrintSlides(w io.Writer, m *SlideMetrics) {
	o := m.Options
	fmt.Fprintf(w, "slides (CRIC fields: %d NILM-only, %d low-grade, %d high-grade, each analysed once in %d orientations, %d cells; cell model: held-out fold for %d fields, final model for the rest; object filter: held-out fold for %d):\n",
		m.Fields[Negative.String()], m.Fields[LowGrade.String()], m.Fields[HighGrade.String()], Flips, m.FieldCells, m.ModelFold, m.ObjectFold)
	fmt.Fprintf(w, "  %d slides (%d NILM, %d low grade, %d high grade), one abnormal field per abnormal slide, each field at most %d time(s) per slide, %d–%d cells (median %d)\n",
		m.N, m.NByGrade[Negative.String()], m.NByGrade[LowGrade.String()], m.NByGrade[HighGrade.String()], o.Compose.withDefaults().MaxUses, m.Cells[0], m.Cells[2], m.Cells[1])
	fmt.Fprintf(w, "  nested: %d repeats × 2 halves of the fields; each half's slides scored by a rule fitted on %d slides per grade of the other half (NILM specificity >= %.2f on them)\n",
		o.Repeats, o.TrainSlides, o.Specificity)
	fmt.Fprintf(w, "  HSIL+ sensitivity (HIGH_GRADE) %.3f %s, not NILM %.3f %s\n", m.HSILPlusSensitivity, m.HSILPlusSensitivityCI, m.HSILPlusNotNILM, m.HSILPlusNotNILMCI)
	fmt.Fprintf(w, "  ASC-US+ sensitivity (not NILM) %.3f %s\n", m.ASCUSPlusSensitivity, m.ASCUSPlusSensitivityCI)
	fmt.Fprintf(w, "  NILM specificity %.3f %s\n", m.NILMSpecificity, m.NILMSpecificityCI)
	fmt.Fprintf(w, "  gallery hit rate (top %d distinct objects hold a labelled abnormal cell) %.3f %s (low grade %.3f, high grade %.3f)\n",
		o.Gallery, m.GalleryHitRate, m.GalleryHitRateCI, m.GalleryHitByGrade[LowGrade.String()], m.GalleryHitByGrade[HighGrade.String()])
	fmt.Fprintf(w, "  verdicts (rows true):%12s%12s%12s\n", Negative, LowGrade, HighGrade)
	for g := range numGrades {
		row := m.Confusion[g.String()]
		fmt.Fprintf(w, "  %20s%12d%12d%12d\n", g, row[Negative.String()], row[LowGrade.String()], row[HighGrade.String()])
	}
	fmt.Fprintf(w, "  ([low, high]: 95%% bootstrap over fields, %d resamples, slides recomposed from each; fields analysed in %.1f s, slides in %.1f s)\n",
		o.Resamples, m.AnalyseSeconds, m.Seconds)
}
