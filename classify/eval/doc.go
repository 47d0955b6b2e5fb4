// Package eval measures the detector, the per-cell model and the slide
// verdicts of package classify on data laid out like the shared development
// data:
//
//	cric/cells/labels.csv + crops     per-cell classification
//	cric/fields/nuclei.csv + images   recall of labelled nuclei; slides
//	cric/more-fields/ (same layout)   slides
//	isbi2014/nuclei.csv + images      detection precision, recall, F1
//	<set>/cells/labels.csv + crops    other labs' labelled cells (CellSet)
//
// Parts that are absent are skipped (their results are nil).
//
// A model with a second stage (classify.ModelParams.Cascade) sees a wider
// window than a 100-px CRIC crop holds: for the cric/cells figures it is
// cut from the crop's whole field (cric/fields or cric/more-fields, see
// FieldOfCrop), so its context is real, never padding.
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
// # Held-out predictions
//
// The shipped weights files (cell model and object filter) carry, besides
// the final model, the models of their grouped cross-validation (one per
// fold, each with the list of source fields it was trained on). A crop or
// field the final model was trained on is scored by the fold model that
// never saw it; anything else by the final model. Every score is therefore
// a held-out prediction, whatever directory is evaluated.
//
// # Slides
//
// AnalyseFields analyses every labelled CRIC field once in each of its
// Flips orientations (held-out, as above) and keeps the per-cell results
// (SlideField). Compose (compose.go, the slide recipe) builds virtual
// slides from them: NILM-only fields up to a cell count, each at most
// ComposeOptions.MaxUses times, and one field of the slide's grade on an
// abnormal slide. Slides fits classify.SlideRule on slides of half the
// fields and scores slides of the other half (nested, repeated), with
// bootstrap intervals over fields; FitRule fits the shipped rule on all of
// them and RuleFile writes it (`papscan eval --fit-slide-rule`).
// SlideOptions.Method "logit" fits and scores a richer rule instead
// (logistic scores over the excess at every level of P(high grade) and
// P(not NILM)), for comparison; only the level rule ships. The gallery
// ranking (P(high) + w·P(ASC-US+LSIL), GalleryRanks) is chosen on each
// split's fitting half too, and so is the gallery spread
// (classify.GallerySpread, GallerySpreads), scored through
// classify.GallerySpread.PickGallery, the product's own gallery choice;
// FitRule ships the spread chosen on all fields. ComposeOptions.MixedNegatives widens the
// negative material with the NILM-labelled cells of fields with abnormal
// labels that lie far from every abnormal label (SlideField.NegativePart).
package eval
