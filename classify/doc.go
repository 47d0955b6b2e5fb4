// Package classify finds and grades squamous cells in Pap smear tiles, on the
// device, in pure Go: detection of nuclei, per-cell Bethesda probabilities
// (NILM, ASC-US, LSIL, ASC-H, HSIL, SCC) and a slide-level triage verdict.
// It knows images, not hardware. What it measures on labelled data is in the
// README ("The cell model", "The nucleus detector", "Slide verdicts"), not
// here.
//
// # Use
//
//	m, err := classify.DefaultModel()             // embedded weights, shared
//	a := classify.NewAnalyzer(classify.DetectOptions{PixelUM: 0.5}, m) // one per worker
//	s := classify.NewSlideSummary(classify.DefaultThresholds(), m)     // one per slide
//	for each tile { s.Add(a.Analyze(tile)) }      // Add is safe from several workers
//	r := s.Result(complete)                        // verdict, counts, gallery
//
// # Pipeline
//
//   - Detector (one per worker, reusable buffers, no allocation per tile in
//     steady state): nuclear density from the per-channel optical densities
//     (DefaultStain), a global (Otsu) and a local threshold, connected
//     components judged by area, contrast to their ring, stained surround
//     and a fold test; an irregular component carrying a faint fold is
//     trimmed to its core, and sub-nuclear fragments lying close together
//     (the chromatin clumps of a large pale nucleus) are regrown as one
//     candidate (rescue.go). A learned object filter (object.go) then drops
//     what is not a squamous-cell nucleus (neutrophils, debris, dense
//     cytoplasm). DetectOptions documents every setting. Coordinates are
//     pixel indices in the tile.
//   - Model (immutable, shared): resamples the window around a nucleus to
//     its own pixel size when the tile's differs, re-segments the nucleus
//     and measures hand-crafted features (shape, density, texture, colour,
//     radial profiles); a perceptron on them and a small CNN on the
//     nucleus-centred crop give the class probabilities (late fusion,
//     ModelParams.CNNWeight). The CNN may normalise each crop's optical
//     densities first (CNNParams.InputNorm, CNNCropAffine: against other
//     labs' stain strength and white balance); weights without the field
//     feed the densities as they are. Weights are embedded (model_weights.json,
//     with their version and SHA-256) and produced by package
//     classify/train; the file also holds the cross-validation fold models,
//     so that evaluation scores every training field with a model that
//     never saw it (PredictHeldOut).
//   - Second stage (optional, ModelParams.Cascade, cascade.go): a deeper
//     CNN on a wider crop (CascadeSide px at the model's pixel size) with a
//     six-class head and its own temperature re-scores only the cells whose
//     first-stage suspicion reaches CascadeParams.Gate; their probabilities
//     become a mixture of both stages (CascadeParams.Weight). Classify,
//     PredictInput and PredictHeldOutInput return the mixed probabilities,
//     so callers need not know it exists; each Fold carries its own
//     network, so held-out scoring stays held out. The cut of the wide crop
//     and the second forward pass happen only for gated cells.
//   - Analyzer = Detector + Model; copies a crop only for cells whose Score
//     (1 − P(NILM), SuspicionScore) reaches CropMinScore.
//   - SlideSummary accumulates cells (counts, bounded top-K gallery with
//     crops and stage coordinates, one place per physical object: sightings
//     within GalleryDedupUM of each other or that measure alike, SameLook,
//     are one object; GalleryCandidates of them are kept and the gallery
//     is chosen among them by the rule's GallerySpread, PickGallery, the
//     same function classify/eval measures) and gives the verdict:
//     INCOMPLETE unless
//     the scan is complete, UNSATISFACTORY below MinSquamousCells (Bethesda:
//     5000 for liquid-based slides), else what the SlideRule says.
//   - SlideRule (embedded slide_rule.json, versioned, SHA-256): HIGH_GRADE
//     when the cells at or above a P(high grade) level exceed the negative
//     background expected for a slide of that many cells, else LOW_GRADE
//     when the cells at or above a P(not NILM) level do, else NILM. Its
//     parameters are fitted on virtual slides of held-out fields by
//     `papscan eval --fit-slide-rule` (package classify/eval), never set by
//     hand; a retrained cell model needs a refitted rule (the rule names the
//     model it was fitted for).
//
// # Pixel size
//
// Everything physical is in µm (areas, windows, rings): the detector takes
// the tile's pixel size (config machine.camera.pixel_size) and the model
// resamples each window to the scale it was trained at (0.5 µm/px, the
// robot camera's). The stored CRIC fields are about 0.25 µm/px
// (DefaultPixelUM).
//
// # Limits
//
//   - "Cells" counted for adequacy are all detected nuclei in the area range,
//     not a validated count of well-preserved squamous cells.
//   - Trained on CRIC cells of one collection (one lab, one stain);
//     detector parameters were chosen on the same CRIC fields and ISBI
//     images used to report them.
package classify
