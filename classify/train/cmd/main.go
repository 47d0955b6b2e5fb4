// Command train fits the papscan per-cell model and writes its weights file.
//
//	go run ./classify/train/cmd -data ../shared/data -out classify/model_weights.json
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

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
	flag.Parse()
	if *data == "" {
		*data = dataset.Dir()
	}
	if *data == "" {
		fmt.Fprintln(os.Stderr, "train: no data directory")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	fo := train.DefaultFit()
	fo.Seed, fo.Hidden = *seed, *hidden
	o := train.Options{Seed: *seed, PixelUM: *px, Fit: fo, CNNWeight: *cnnWeight}
	if *cnnEpochs > 0 {
		co := train.DefaultCNN()
		co.Epochs, co.Seed = *cnnEpochs, *seed
		o.CNN = &co
	}
	if err := train.Run(ctx, *data, *out, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}
