// Command object trains the detector's object filter and writes its
// weights file (fixed seed: a rerun writes the same bytes).
//
//	go run ./classify/train/object/cmd -data ../shared/data -out classify/object_weights.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"papscan/classify/internal/dataset"
	"papscan/classify/train/object"
)

func main() {
	o := object.DefaultOptions()
	data := flag.String("data", "", "data directory (default: $PAPSCAN_DATA or ../shared/data)")
	out := flag.String("out", "classify/object_weights.json", "weights file to write (empty: none)")
	flag.Int64Var(&o.Seed, "seed", o.Seed, "seed of the image-grouped folds and of the weight initialisation")
	flag.IntVar(&o.Folds, "folds", o.Folds, "cross-validation folds")
	flag.IntVar(&o.Fit.Hidden, "hidden", o.Fit.Hidden, "hidden units (0: logistic regression)")
	flag.IntVar(&o.Fit.Ensemble, "ensemble", o.Fit.Ensemble, "networks averaged (Ensemble × hidden <= 32)")
	flag.IntVar(&o.Fit.Iters, "iters", o.Fit.Iters, "Adam iterations")
	flag.Float64Var(&o.Fit.Lambda, "lambda", o.Fit.Lambda, "L2 penalty")
	flag.Float64Var(&o.AbnormalWeight, "abnormal-weight", o.AbnormalWeight, "weight of a CRIC abnormal positive")
	flag.Float64Var(&o.ISBIPositiveWeight, "isbi-positive-weight", o.ISBIPositiveWeight, "weight of an ISBI positive")
	flag.Float64Var(&o.MinAbnormalRecall, "min-abnormal-recall", o.MinAbnormalRecall, "floor on the out-of-fold CRIC abnormal recall")
	flag.StringVar(&o.Version, "version", o.Version, "version written into the weights")
	flag.Parse()
	if *data == "" {
		*data = dataset.Dir()
	}
	if *data == "" {
		fmt.Fprintln(os.Stderr, "object: no data directory")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	r, err := object.Train(ctx, *data, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "object:", err)
		os.Exit(1)
	}
	r.Print(os.Stdout)
	fmt.Printf("trained in %.1f s\n", time.Since(start).Seconds())
	if *out == "" {
		return
	}
	b, err := json.MarshalIndent(r.Params, "", " ")
	if err == nil {
		err = os.WriteFile(*out, append(b, '\n'), 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "object:", err)
		os.Exit(1)
	}
	fmt.Printf("wrote %s\n", *out)
}
