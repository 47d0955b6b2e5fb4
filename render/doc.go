// Package render draws a slide's images from what package scan measured:
// the overview (the mosaic of the scanned tiles with the top cells ringed
// in the colour of their class) and the gallery (the top cells' crops,
// enlarged, framed in the colour of the grade the model suspects and
// captioned), and encodes them as PNG files beside the slide's result.
//
// scan produces data (scan.Report, scan.Mosaic, classify.Cell crops) and
// never draws; the delivery path, the simulator and the tools call this
// package:
//
//	files, err := render.WriteFiles(report, stateDir) // result.json, overview.png, gallery.png
//
//	if m, ok := report.Mosaic(); ok {
//		img := render.Overview(m, report.Result.Top)
//	}
//
// The drawing is deterministic: the same report gives the same PNG bytes.
package render
