package main

import (
	"log/slog"

	"papscan/classify"
	config "papscan/firmware-config"
	"papscan/scan"
)

// scanOptions maps the configuration onto the scanner's options.
func scanOptions(cfg *config.Config, model *classify.Model, log *slog.Logger) scan.Options {
	s, c := cfg.Scan, cfg.Classify
	det := classify.DetectOptions{
		PixelUM:    cfg.Machine.Camera.PixelSize.UM(),
		MinAreaUM2: c.MinNucleusArea,
		MaxAreaUM2: c.MaxNucleusArea,
	}
	o := scan.Options{
		RobotID:      cfg.Agent.RobotID,
		SpotCenter:   scan.Point{X: s.SpotCenterX.UM(), Y: s.SpotCenterY.UM()},
		SpotDiameter: s.SpotDiameter.UM(),
		TileOverlap:  s.TileOverlap,
		FocusRange:   s.FocusRange.UM(),
		FocusStep:    s.FocusStep.UM(),
		FocusPoints:  s.FocusPoints,
		ZNominal:     s.ZNominal.UM(),
		Detect:       det,
		Model:        model,
		Thresholds: classify.Thresholds{
			HighGrade:        c.HighGradeThreshold,
			LowGrade:         c.LowGradeThreshold,
			MinSquamousCells: c.MinSquamousCells,
			GallerySize:      c.GallerySize,
			// The slide verdict: the embedded, fitted classify.SlideRule.
		},
		Logger: log,
	}
	scanExtras(cfg, &o)
	return o
}
