// Command train fits the papscan per-cell model and writes its weights file.
// The defaults reproduce the shipped weights byte for byte:
//
//	go run ./classify/train/cmd -data ../shared/data -out classify/model_weights.json
//
// (CRIC crops and field negatives, cric/more-fields, CNN 60 epochs fused
// into P(high) and P(NILM), temperature; sipakmed only scored in the
// report). -cell-sets DATA/sipakmed trains on the other lab too.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	"papscan/classify/internal/dataset"
	"papscan/classify/train"
)

func main() {
	data := flag.String("data", "", "data directory (default: $PAPSCAN_DATA or ../shared/data)")
	out := flag.String("out", "classify/model_weights.json", "weights file to write")
	seed := flag.Int64("seed", 1, "seed of the field-grouped folds and of the weight initialisation")
	px := flag.Float64("pixel-um", train.DefaultPixelUM, "pixel size (µm) the model measures features at")
	hidden := flag.Int("hidden", train.DefaultFit().Hidden, "hidden units (0: logistic regression)")
	cnnEpochs := flag.Int("cnn-epochs", train.DefaultCNN().Epochs, "CNN epochs (0: no CNN head)")
	cnnWeight := flag.Float64("cnn-weight", train.DefaultCNNWeight, "weight of the CNN in the high-grade probability")
	cnnNILM := flag.Float64("cnn-nilm-weight", train.DefaultCNNNILMWeight, "weight of the CNN in P(NILM)")
	stain := flag.Float64("cnn-stain", 0, "CNN stain/lamp augmentation strength (0: the original gains)")
	blur := flag.Float64("cnn-blur", 0, "probability of a focus blur in CNN augmentation")
	blurSigma := flag.Float64("cnn-blur-sigma", 0, "largest Gaussian blur sigma (robot pixels) of the CNN augmentation, isotropic or along one axis, on the crop's intensities (0: a 3x3 OD blur, only with -cnn-stain)")
	more := flag.Bool("more-fields", true, "train on cric/more-fields points and negatives too")
	morePer := flag.Int("more-per-field", 30, "negatives per more-fields field with labelled abnormal cells")
	moreAll := flag.Int("more-all-cap", 200, "negatives per NILM-only more-fields field (cap)")
	sets := flag.String("cell-sets", "", "comma-separated labelled-cell directories of other labs to train on (e.g. DATA/sipakmed)")
	evalSets := flag.String("eval-sets", "auto", "comma-separated labelled-cell directories only scored in the report (auto: DATA/sipakmed when present)")
	otherW := flag.Float64("other-weight", 1, "total weight of other labs' cells relative to one class")
	otherMLP := flag.Float64("other-mlp-weight", -1, "total weight of other labs' cells in the feature head (-1: -other-weight; 0: CNN only)")
	otherBin := flag.Bool("other-binary", false, "train other labs' cells only on the CNN's normal/abnormal axis")
	norm := flag.String("cnn-norm", "", "per-crop CNN input normalisation: \"\" (none), crop-std or crop-gain (stored in the weights, applied at inference)")
	bias := flag.Bool("class-bias", false, "fit a six-class prior shift for macro-F1 (cross-fitted by fold)")
	calib := flag.Bool("calibrate", true, "fit a temperature on the out-of-fold predictions")
	dump := flag.String("dump-oof", "", "write the out-of-fold probabilities of every sample to this file (JSON lines)")
	cvOnly := flag.Bool("cv-only", false, "cross-validate only (no final fit, no weights written)")
	fieldBal := flag.Float64("cnn-field-balance", 0, "even out the high-grade fields in the CNN's loss: a field's cells weigh (mean/n_f)^α (0: off, 1: every field the same)")
	skipHigh := flag.Bool("skip-high-field-negatives", false, "take no field negatives from CRIC fields with a high-grade label")
	wb := flag.Bool("white-balance", false, "read every image divided by its clear glass's colour (a field's own glass; a lab's manifest glass)")
	casEpochs := flag.Int("cascade-epochs", 0, "second-stage CNN epochs (0: no second stage; train.DefaultCascade: 30)")
	casGate := flag.Float64("cascade-gate", train.DefaultCascade().Gate, "first-stage suspicion at which the second stage runs")
	casTrainGate := flag.Float64("cascade-train-gate", train.DefaultCascade().TrainGate, "first-stage suspicion at which NILM samples enter the second stage's training set")
	casExtra := flag.Float64("cascade-extra-weight", train.DefaultCascade().ExtraWeight, "total weight of the field negatives in the second stage's loss, relative to one class")
	casBase := flag.String("cascade-base", "", "train only the second stage on top of this weights file (its first stage and folds are kept)")
	flag.Parse()
	if *data == "" {
		*data = dataset.Dir()
	}
	if *data == "" {
		fmt.Fprintln(os.Stderr, "train: no data directory")
		os.Exit(2)
	}
	if *evalSets == "auto" {
		*evalSets = ""
		if st, err := os.Stat(filepath.Join(*data, "sipakmed", "cells", "labels.csv")); err == nil && !st.IsDir() && *sets == "" {
			*evalSets = filepath.Join(*data, "sipakmed")
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fo := train.DefaultFit()
	fo.Seed, fo.Hidden, fo.OtherWeight = *seed, *hidden, *otherW
	if *otherMLP >= 0 {
		fo.OtherWeight = *otherMLP
	}
	o := train.Options{Seed: *seed, PixelUM: *px, Fit: fo, CNNWeight: *cnnWeight, CNNNILMWeight: *cnnNILM,
		MoreFields: *more, MorePerField: *morePer, MoreAllCap: *moreAll, CellSets: split(*sets), EvalSets: split(*evalSets), CVOnly: *cvOnly, Calibrate: *calib, ClassBias: *bias, DumpOOF: *dump, WhiteBalance: *wb, FieldNegativesSkipHigh: *skipHigh}
	if *cnnEpochs > 0 {
		co := train.DefaultCNN()
		co.Epochs, co.Seed, co.Stain, co.Blur, co.OtherWeight = *cnnEpochs, *seed, *stain, *blur, *otherW
		co.Norm, co.OtherBinary, co.BlurSigma, co.FieldBalance = *norm, *otherBin, *blurSigma, *fieldBal
		o.CNN = &co
	}
	if *casEpochs > 0 {
		co := train.DefaultCascade()
		co.Epochs, co.Gate, co.TrainGate, co.ExtraWeight, co.Seed = *casEpochs, *casGate, *casTrainGate, *casExtra, *seed
		o.Cascade = &co
	}
	if *casBase != "" {
		if err := train.RunCascade(ctx, *data, *casBase, *out, o, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "train:", err)
			os.Exit(1)
		}
		return
	}
	if *cvOnly {
		_, rep, err := train.Train(ctx, *data, o)
		if err != nil {
			fmt.Fprintln(os.Stderr, "train:", err)
			os.Exit(1)
		}
		rep.Print(os.Stdout)
		return
	}
	if err := train.Run(ctx, *data, *out, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
