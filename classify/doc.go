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
//     labelling with union-find; per component: area in µm², contrast to the
//     surrounding ring (rejects folds and overlaps) and stained surround
//     (rejects specks on bare glass), both O(1) from the integral image; a
//     fold test (FoldRingOD) drops faint components that are streaks, rims
//     or flat overlaps of cytoplasm (elongated, hollow, or without a dense
//     core) while never touching one that stands out from its ring as
//     nuclei, hyperchromatic abnormal ones above all, do; an irregular
//     component whose part outside a single compact dense core is faint
//     (a fold attached to a nucleus) is trimmed to that core; components
//     too small to be nuclei that lie within FragmentGapUM of one another
//     (the chromatin clumps of a large pale nucleus that failed the mask)
//     are grouped and regrown to a half-maximum contour of their own
//     surroundings, and judged as one component (rescue.go). An
//     optional splitter (SplitCircularity) re-thresholds irregular components
//     and grows the cores back (touching nuclei); it is off by default, see
//     DetectOptions. Coordinates are pixel indices in the tile.
//   - Model (immutable, shared): resamples the 25 µm window around the
//     nucleus to its own pixel size when the tile's differs (the shipped
//     model works at the robot camera's 0.5 µm/px; CRIC crops at 0.25 µm/px
//     are downsampled 2x), re-segments the nucleus (local Otsu, flood fill
//     from the darkest pixel near the centre) and measures 59 hand-crafted
//     features: shape, density, chromatin texture and clumping, edge
//     sharpness, contrast, nucleus/cytoplasm ratio, nuclear and cytoplasmic
//     colour, crowding, and segmentation-free radial profiles (mean optical
//     density per channel in 7 rings to 12.5 µm, density spread per ring,
//     fraction of a 10 µm disc above 6 density levels). A one-hidden-layer
//     perceptron (16 ReLU units, softmax over 6 classes) gives the class
//     probabilities (an optional ensemble of heads trained on NILM and
//     high-grade cells only can set the high-grade mass, ModelParams.High;
//     it is off: measured, it lowered recall at the operating point). A
//     small CNN on the 32x32 nucleus-centred crop at 0.5 µm/px (optical
//     density of R, G, B; three 3x3 convolutions of 6, 12 and 16 channels,
//     ReLU, 2x2 max-pooling, global average pooling, softmax over NILM / low
//     / high grade; about 0.45 M multiply-adds, computed on zero-bordered
//     buffers four filters at a time, no allocation) gives a second
//     P(high grade); the model's is 0.3·perceptron + 0.7·CNN
//     (ModelParams.CNN, CNNWeight): on the held-out folds it raises the
//     high-grade-vs-NILM AUC from 0.923 to 0.967. Weights are embedded
//     (model_weights.json, version "mlp-cnn-3" and the SHA-256 of the
//     file), produced by package
//     classify/train from the
//     CRIC cell crops plus "field negatives" (unlabelled objects detected in
//     the CRIC fields: inflammatory cells, debris, overlaps, normal nuclei),
//     which teach the model what whole slides are full of.
//   - Analyzer = Detector + Model; copies a crop only for cells whose Score
//     (P(high grade) + 0.5·P(low grade)) reaches CropMinScore.
//   - SlideSummary accumulates cells (counts, bounded top-K gallery with
//     crops and stage coordinates) and gives the verdict: INCOMPLETE unless
//     the scan is complete, UNSATISFACTORY below MinSquamousCells (Bethesda:
//     5000 for liquid-based slides), then HIGH_GRADE or LOW_GRADE when
//     enough cells reach the stricter slide thresholds (SlideHighGrade,
//     count and fraction of all cells), else NILM.
//
// # Pixel size
//
// The stored CRIC images measure about 0.25 µm/px (originals 1376 px wide at
// 40x, resized to 1280; the median NILM nucleus is then ≈ 37 µm²); the robot
// camera is 0.5 µm/px at 20x. Everything physical is in µm (areas, windows,
// rings), the detector takes the tile's pixel size (config
// machine.camera.pixel_size), and the model resamples each window to its
// training scale. Measured (grouped 5-fold CV): features at 0.25 and at
// 0.5 µm/px separate high grade from NILM equally well (AUC 0.92 either
// way), so the shipped model is trained at 0.5 µm/px, the robot's scale,
// and needs no resampling on the robot.
//
// # Measured (papscan eval --data ../shared/data; see README)
//
// Cell scores are held-out predictions: each crop is scored by the
// cross-validation fold that did not see its field (package classify/eval).
// High-grade recall at the configured operating point (P(high) >= 0.276,
// chosen on the out-of-fold NILM cells for a false-positive rate <= 0.09)
// is 0.90 at a NILM false-positive rate of 0.090 (AUC 0.967; target 0.90
// at <= 0.10, met with no margin: one field holds 72 of the 231 HSIL
// crops, so the figure moves by a few hundredths with the seed). Features
// alone gave 0.76 at 0.09 (AUC 0.923); the CNN head (120 epochs; 16 gave
// 0.83, AUC 0.944) added the rest. Macro-F1 over the six classes 0.40.
// Detection at 0.5 µm/px: labelled-nucleus
// recall on the CRIC fields 0.95 (abnormal 0.954; eval.Covered counts a
// point found when a detection's box contains it, which merged components
// inflate: within the equivalent-area disc + 1 µm it is 646 of 733, 0.88 —
// a mask-containment criterion is the honest one and is still to do); ISBI 2014 F1 0.745
// (precision 0.63, recall 0.92; target 0.85; 0.673 before the fold test
// and trim). Of the ~200 remaining false detections about half are
// compact, nucleus-like objects (small dark specks, inflammatory cells on
// or between squamous cells, unmarked in ISBI) and half irregular dense
// cytoplasm; rules on the per-nucleus features that remove more of them
// (smaller, paler, or more irregular than a squamous nucleus) also remove
// labelled CRIC nuclei, pale low-grade ones first: ISBI is grey EDF
// imagery, where cytoplasm and nuclei differ only in density, while on
// Papanicolaou colour the stain separation already does that work.
//
// # Object filter (object.go)
//
// After detection a learned filter scores each component "squamous-cell
// nucleus or not" from 18 density-only (colour-free) measurements of the
// haematoxylin / grey OD (area, contrast, core, ring and surround, fill,
// circularity, elongation, density spread, Laplacian texture, box
// difference-of-Gaussians at 2, 5 and 10 µm, centre-minus-mean profile,
// boundary step, local maxima per area, dense pixels in the box); a
// one-hidden-layer perceptron on features clipped to ±3 sd: four networks
// of 8 ReLU units fitted from different initial weights, whose logits are
// averaged (the average is one 32-unit network). Over training seeds 1–3
// (folds and initial weights) one network's out-of-fold ISBI F1 moved
// between 0.820 and 0.864, the four-network average's between 0.859 and
// 0.872 (ISBI positives weighted ×5; abnormal floors 0.9515 and 0.955);
// with ISBI positives weighted ×3 (shipped) between 0.866 and 0.871 at the
// 0.955 floor (×2: 0.866–0.870; ×8: 0.842–0.866).
// It is trained by `go run ./classify/train/object/cmd` (seed 1, ~10 s,
// byte-identical weights) on the ISBI detections matched to their
// exhaustive points (positives ×3 and negatives) and the CRIC detections
// covering a labelled nucleus (positives only, abnormal ×3), with 5-fold
// cross-validation grouped by image; the weights file embeds the fold
// models, and papscan eval scores every ISBI image and CRIC field with the
// fold that did not train on it (the final model only images it never
// saw). The threshold is the best pooled out-of-fold ISBI F1 with the CRIC
// abnormal recall >= 0.955. With the fragment rescue (see Pipeline) the
// detector alone finds 711 of 733 labelled abnormal CRIC nuclei (0.970),
// and the filter at 0.161 keeps 701 (0.956) while ISBI goes from P 0.617
// R 0.920 F1 0.738 to P 0.860 R 0.874 F1 0.867. The out-of-fold
// trade-off: threshold 0.01 F1 0.803 (abnormal 0.966), 0.03 F1 0.826
// (0.962), 0.10 F1 0.851 (0.958), 0.20 F1 0.870 (0.950), 0.50 F1 0.865
// (0.932). Every
// detected ASC-H and SCC nucleus is kept. It costs about 9% of detection
// speed, no allocations. It
// is off when FoldRingOD < 0 (cell-model training) or NoObjectFilter.
//
// # Limits
//
//   - "Cells" counted for adequacy are all detected nuclei in the area range,
//     not a validated count of well-preserved squamous cells.
//   - The model confuses neighbouring grades (ASC-US/LSIL, ASC-H/HSIL/SCC);
//     at slide level only high grade is separated from NILM on CRIC-tiled
//     simulated slides; low-grade slides end NILM.
//   - Trained on ~1400 crops from 160 fields of one collection (one lab,
//     one stain); detector parameters were chosen on the same CRIC fields
//     and ISBI images used to report them.
package classify
