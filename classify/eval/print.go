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
