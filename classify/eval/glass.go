package eval

import (
	"context"
	"path/filepath"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// Glass returns the lab's clear-glass colour (GlassRGB) and whether the
// manifest gives one.
func (m *Manifest) Glass() ([3]float64, bool) {
	if m.GlassRGB == [3]uint8{} {
		return [3]float64{}, false
	}
	return [3]float64{float64(m.GlassRGB[0]), float64(m.GlassRGB[1]), float64(m.GlassRGB[2])}, true
}

// FieldGlass estimates the clear-glass colour (classify.EstimateGlass) of
// every CRIC field image of dataDir (cric/fields and cric/more-fields, by
// image name), each resampled to px µm/px as the robot would see it. Fields
// that show no glass are left out. A white-balancing model reads the
// labelled crops cut from a field divided by that field's glass.
func FieldGlass(ctx context.Context, dataDir string, px float64) (map[string][3]float64, error) {
	out := map[string][3]float64{}
	for _, s := range cricSets {
		dir := filepath.Join(dataDir, "cric", s.dir, "images")
		names, err := filepath.Glob(filepath.Join(dir, "*.png"))
		if err != nil {
			return nil, err
		}
		for _, p := range names {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			img, err := dataset.LoadRGBA(p)
			if err != nil {
				return nil, err
			}
			if px > 0 {
				img = classify.Rescale(img, s.px, px)
			}
			if g, ok := classify.EstimateGlass(img); ok {
				out[filepath.Base(p)] = g
			}
		}
	}
	return out, nil
}
