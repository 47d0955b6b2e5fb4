// Package eval measures the detector and the per-cell model of package
// classify on data laid out like the shared development data:
//
//	cric/cells/labels.csv + crops   per-cell classification
//	cric/fields/nuclei.csv + images recall of labelled nuclei
//	isbi2014/nuclei.csv + images    detection precision, recall, F1
//
// Parts that are absent are skipped (their results are nil).
//
// # Held-out cell predictions
//
// The shipped weights file carries, besides the final model, the models of
// its grouped cross-validation (one per fold, each with the list of source
// fields it was trained on). A crop from a field the final model was trained
// on is scored by the fold model that never saw that field; a crop from any
// other field is scored by the final model. Every cell score is therefore a
// held-out prediction, whatever directory is evaluated.
package eval
