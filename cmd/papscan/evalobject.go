package main

import (
	"fmt"
	"io"

	"papscan/classify/eval"
)

// printObjectFilter names the detector's object filter and which of its
// models scored the detection images.
func printObjectFilter(w io.Writer, r *eval.Result) {
	if r.ObjectFilter == nil {
		fmt.Fprintln(w, "object filter: off")
		return
	}
	fmt.Fprintf(w, "object filter %s sha256:%s (detection images: %d scored by the fold that held them out, %d by the final filter)\n",
		r.ObjectFilter.Version, r.ObjectFilter.SHA256, r.ObjectSource.HeldOutFold, r.ObjectSource.FinalModel)
}
