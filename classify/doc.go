// Package classify finds and grades squamous cells in Pap smear tiles, on the
// device, in pure Go: detection of nuclei, per-cell Bethesda probabilities
// (NILM, ASC-US, LSIL, ASC-H, HSIL, SCC) and a slide-level triage verdict.
// It knows images, not hardware.
//
// # Pipeline
//
//   - Detector (one per worker, reusable buffers, no allocation per tile in
//     steady state): nuclear density by a linear projection of the per-channel
//     optical densities (three 256-entry look-up tables, see DefaultStain),
//     3x3 box blur, Otsu threshold over stained pixels clamped below by an
//     absolute floor, and a local test (pixel at least LocalOffsetOD above the
//     mean density of a ~14 µm window, from an integral image) that separates
//     nuclei from overlapping or keratinised cytoplasm; 8-connected run-length
//     labelling with union-find; area filter in µm². Coordinates are pixel
//     indices in the tile.
//   - Model (immutable, shared): re-segments the nucleus inside a 25 µm window
//     (local Otsu, flood fill from the darkest pixel near the detected centre)
//     and measures 18 hand-crafted features (area, circularity, elongation,
//     density mean/std/max, chromatin texture, edge sharpness, contrast to the
//     surrounding ring, nucleus/cytoplasm ratio within the window, cytoplasm
//     orangeness (keratinisation), nuclear blueness and darkness, crowding),
//     standardises them and applies a multinomial logistic regression. Weights
//     are embedded (model_weights.json, version "lr-features-1"), produced by
//     package classify/train from the CRIC cell crops.
//   - Analyzer = Detector + Model; copies a crop only for cells whose Score
//     (P(high grade) + 0.5·P(low grade)) reaches CropMinScore.
//   - SlideSummary accumulates cells (counts, bounded top-K gallery) and gives
//     the verdict: INCOMPLETE unless the scan is complete, UNSATISFACTORY below
//     MinSquamousCells, then HIGH_GRADE, LOW_GRADE or NILM by cell counts.
//
// # Pixel size
//
// The stored CRIC fields measure about 0.25 µm/px (median NILM nucleus ≈ 600
// px ≈ 37 µm²), not 0.5: DefaultPixelUM is 0.25 and the model was trained at
// that scale. Set DetectOptions.PixelUM to the scanner's calibrated value; the
// model scales its window and areas by Nucleus.PixelUM, but texture features
// stay resolution dependent, so a different optical set-up needs retraining.
//
// # Limits (first version)
//
//   - Touching or overlapping nuclei are not split (one larger, less circular
//     component); neutrophils and debris are only filtered by area.
//   - "Cells" counted for adequacy are all detected nuclei in the area range,
//     not a validated count of well-preserved squamous cells.
//   - The per-cell model is a linear model on hand-crafted features, trained
//     on ~1400 crops from 160 fields of one collection (one lab, one stain):
//     it separates high grade from the rest (cross-validated AUC ≈ 0.91) but
//     confuses neighbouring grades (ASC-US/LSIL, ASC-H/HSIL/SCC), and at
//     P(high) >= 0.5 flags ~16 % of NILM crops. Slide thresholds
//     (DefaultThresholds) are not calibrated on whole slides: with thousands
//     of cells per slide, per-cell false positives dominate the counts.
//   - Detector parameters (stain vector, thresholds) were chosen on the 53
//     CRIC fields also used to report its recall.
package classify
