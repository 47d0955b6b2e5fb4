// Package eval measures the detector and the per-cell model of package
// classify on data laid out like the shared development data:
//
//	cric/cells/labels.csv + crops   per-cell classification
//	cric/fields/nuclei.csv + images recall of labelled nuclei
//	isbi2014/nuclei.csv + images    detection precision, recall, F1
//	<set>/cells/labels.csv + crops  other labs' labelled cells (CellSet)
//
// Parts that are absent are skipped (their results are nil).
//
// # Labelled-cell directories
//
// A directory of single-cell crops from any laboratory is evaluated with a
// Manifest (its manifest.json, or one shipped in manifests/ for its base
// name, e.g. sipakmed): pixel size, the columns of labels.csv, which pixels
// are padding and the lab's glass colour, and how its classes map to
// normal, low grade, high grade or excluded. Each set is scored with its
// padding as stored and glass-filled (FillPadding), grouped by source image
// for the held-out look-up (Key) and the bootstrap intervals.
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
