package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"papscan/classify"
	"papscan/classify/eval"
)

func runEval(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "eval", "eval --data DIR [--json] [--config FILE|PROFILE]",
		"Measure the embedded cell model and the nucleus detector on a directory laid out like the shared data\n"+
			"(cric/cells/labels.csv + crops, cric/fields/, isbi2014/; absent parts are skipped, null in JSON),\n"+
			"and every labelled-cell directory of another lab in it (DIR/cells/labels.csv with a manifest.json, or a\n"+
			"manifest shipped for its name, e.g. sipakmed); DIR may also be such a directory itself.\n"+
			"Cells of fields the model was trained on are scored by the cross-validation fold that held the field out.\n"+
			"The high-grade operating point and nucleus area limits come from the configuration.\n"+
			"The slide section analyses every CRIC field (cric/fields, cric/more-fields) once per orientation and composes\n"+
			"virtual slides from the per-cell results; --fit-slide-rule FILE refits the shipped slide rule on them.")
	data := fs.String("data", "", "data directory (required)")
	asJSON := fs.Bool("json", false, "print one JSON object on stdout")
	cfgName := fs.String("config", "sim", "configuration file or shipped profile for the classify thresholds")
	slides := fs.Bool("slides", true, "compose virtual slides from the CRIC fields and measure the slide verdicts (nested: rules fitted on other fields)")
	slideCells := fs.Int("slide-cells", 0, "cells of negative fields per composed slide (0: 4000; the NILM-only fields allow fewer)")
	slideUses := fs.Int("slide-max-uses", 0, "times one field may appear on a composed slide, each in another orientation (0: 1, at most 8)")
	slideMethod := fs.String("slide-method", eval.MethodLevels, "slide rule fitted and scored in the nested evaluation: levels (the shipped kind) or logit (logistic scores over the excess at every level)")
	mixedNeg := fs.Bool("slide-mixed-negatives", false, "also compose negative material from the NILM-labelled cells of fields with abnormal labels (at least 30 µm from every abnormal label)")
	fitRule := fs.String("fit-slide-rule", "", "also fit the slide rule on slides of all CRIC fields and write it to `FILE` (the shipped one is classify/slide_rule.json)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *data == "" || fs.NArg() != 0 {
		fmt.Fprintln(e.stderr, "papscan eval: --data DIR is required (and takes no arguments)")
		fs.Usage()
		return exitUsage
	}
	cfg, code := loadConfigOrProfile(e, *cfgName)
	if cfg == nil {
		return code
	}
	m, err := loadModel()
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan eval: %v\n", err)
		return exitFailure
	}
	var so *eval.SlideOptions
	if *slides || *fitRule != "" {
		if *slideMethod != eval.MethodLevels && *slideMethod != eval.MethodLogit {
			fmt.Fprintf(e.stderr, "papscan eval: --slide-method %q: want levels or logit\n", *slideMethod)
			return exitUsage
		}
		if *fitRule != "" && *slideMethod != eval.MethodLevels {
			fmt.Fprintln(e.stderr, "papscan eval: --fit-slide-rule fits the shipped kind of rule: --slide-method levels")
			return exitUsage
		}
		so = &eval.SlideOptions{Method: *slideMethod, Compose: eval.ComposeOptions{Cells: *slideCells, MaxUses: *slideUses, MixedNegatives: *mixedNeg}}
	}
	res, err := eval.Run(ctx, eval.Options{
		Slides:    so,
		DataDir:   *data,
		Model:     m,
		Threshold: cfg.Classify.HighGradeThreshold,
		Detect:    classify.DetectOptions{PixelUM: cfg.Machine.Camera.PixelSize.UM(), MinAreaUM2: cfg.Classify.MinNucleusArea, MaxAreaUM2: cfg.Classify.MaxNucleusArea},
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan eval: %v\n", err)
		return exitFailure
	}
	if *fitRule != "" {
		if res.Slides == nil {
			fmt.Fprintf(e.stderr, "papscan eval: --fit-slide-rule: no CRIC fields in %s\n", *data)
			return exitFailure
		}
		rule, err := eval.FitRule(res.SlideFields, *so)
		if err == nil {
			var b []byte
			if b, err = eval.RuleFile(rule, m, len(res.SlideFields), *so, res.Slides); err == nil {
				err = os.WriteFile(*fitRule, b, 0o644)
			}
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "papscan eval: --fit-slide-rule: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(e.stderr, "papscan eval: slide rule written to %s\n", *fitRule)
	}
	if *asJSON {
		b, err := json.Marshal(res)
		if err != nil {
			fmt.Fprintf(e.stderr, "papscan eval: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(e.stdout, "%s\n", b)
		return exitOK
	}
	printEval(e.stdout, res)
	return exitOK
}

func printEval(w io.Writer, r *eval.Result) {
	fmt.Fprintf(w, "papscan eval %s\nmodel %s sha256:%s\n", r.DataDir, r.Model.Version, r.Model.SHA256)
	printObjectFilter(w, r)
	fmt.Fprintln(w)
	if r.Cells == nil {
		fmt.Fprintln(w, "cells: skipped (no cric/cells/labels.csv)")
	} else {
		fmt.Fprintf(w, "cells (cric/cells): %d held-out-fold predictions, %d by the final model (fields it never saw), %d without a nucleus\n",
			r.CellSource.HeldOutFold, r.CellSource.FinalModel, r.CellSource.Skipped)
		eval.PrintCells(w, r.Cells)
	}
	fmt.Fprintln(w)
	if d := r.Detection.ISBI; d == nil {
		fmt.Fprintln(w, "detection isbi2014: skipped")
	} else {
		fmt.Fprintf(w, "detection isbi2014 (%d images, %.2f µm/px resampled to %.2f, match within %.1f µm): gt %d, detections %d, precision %.3f recall %.3f F1 %.3f %s over images\n",
			d.Images, r.PixelUM.ISBI, r.PixelUM.Detect, eval.MatchTolUM, d.GT, d.Detections, d.Precision, d.Recall, d.F1, d.F1CI)
	}
	if c := r.Detection.CRIC; c == nil {
		fmt.Fprintln(w, "detection cric/fields: skipped")
	} else {
		fmt.Fprintf(w, "detection cric/fields (%d images, %.2f µm/px resampled to %.2f; found: a detection's centre within %.1f µm or its box holds the point): labelled-nucleus recall %.3f, abnormal %.3f %s over fields (by centre alone %.3f); per class:",
			c.Images, r.PixelUM.CRIC, r.PixelUM.Detect, eval.MatchTolUM, c.Recall, c.AbnormalRecall, c.AbnormalRecallCI, c.AbnormalByCentre)
		for k := range classify.NumClasses {
			n := classify.Class(k).String()
			fmt.Fprintf(w, " %s %d/%d", n, c.Found[n], c.Labelled[n])
		}
		fmt.Fprintln(w)
	}
	for _, cs := range r.CellSets {
		fmt.Fprintln(w)
		eval.PrintCellSet(w, cs)
	}
	fmt.Fprintln(w)
	if r.Slides != nil {
		eval.PrintSlides(w, r.Slides)
	} else {
		fmt.Fprintln(w, "slides: skipped (--slides=false, or no labelled cric/fields or cric/more-fields)")
	}
	fmt.Fprintf(w, "\ntime %.1f s\n", r.Seconds)
}
