package scan

import (
	"context"
	"fmt"
	"image"
	"math"
)

// Spot is the cell spot as found on the slide (µm, stage coordinates).
type Spot struct {
	CenterX  float64 `json:"center_x_um"`
	CenterY  float64 `json:"center_y_um"`
	Diameter float64 `json:"diameter_um"`
	Found    bool    `json:"found"`  // false: the nominal spot was used
	Probes   int     `json:"probes"` // main-camera frames taken to find it
	// FromOverview: found in the overview image, not by probing.
	FromOverview bool `json:"from_overview"`
}

// tissueFraction is the fraction of sampled pixels clearly darker than the
// bright glass background: stained cells, in or out of focus.
func tissueFraction(img *image.RGBA) float64 {
	b := img.Bounds()
	var hist [256]int
	n := 0
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		row := img.Pix[(y-b.Min.Y)*img.Stride:]
		for x := 0; x < b.Dx(); x += 4 {
			g := row[x*4+1]
			hist[g]++
			n++
		}
	}
	if n == 0 {
		return 0
	}
	// Background level: the 95th percentile of green.
	bg, acc := 255, 0
	for v := 255; v >= 0; v-- {
		acc += hist[v]
		if acc*20 >= n {
			bg = v
			break
		}
	}
	cut := bg * 85 / 100
	dark := 0
	for v := 0; v < cut; v++ {
		dark += hist[v]
	}
	return float64(dark) / float64(n)
}

// findSpot locates the cell spot by probing along a horizontal line through
// the nominal centre, then a vertical line through the found centre, for the
// first and last field that shows tissue. If no tissue is found the nominal
// spot is used (Found=false), so a slide is never skipped: with too few cells
// it ends UNSATISFACTORY, not negative.
func (s *Scanner) findSpot(ctx context.Context) (Spot, error) {
	c := s.o.SpotCenter
	r := s.o.SpotDiameter / 2
	spot := Spot{CenterX: c.X, CenterY: c.Y, Diameter: s.o.SpotDiameter}
	if err := s.m.Focus.SetZ(ctx, dist(s.o.ZNominal)); err != nil {
		return spot, fmt.Errorf("spot: focus: %w", err)
	}
	fw, _ := s.fieldUM()
	step := math.Max(fw, 250)
	reach := r*1.3 + step
	var buf *image.RGBA
	probe := func(x, y float64) (bool, error) {
		if err := s.m.Stage.MoveTo(ctx, dist(x), dist(y)); err != nil {
			return false, err
		}
		var err error
		buf, err = s.m.Camera.Capture(ctx, buf)
		spot.Probes++
		if err != nil {
			return false, err
		}
		return tissueFraction(buf) > 0.02, nil
	}
	scanLine := func(horizontal bool, fixed, centre float64) (lo, hi float64, ok bool, err error) {
		for d := -reach; d <= reach+1e-6; d += step {
			x, y := centre+d, fixed
			if !horizontal {
				x, y = fixed, centre+d
			}
			if !s.inTravel(x, y) {
				continue
			}
			hit, err := probe(x, y)
			if err != nil {
				return 0, 0, false, err
			}
			if hit {
				if !ok {
					lo = centre + d
				}
				hi, ok = centre+d, true
			}
		}
		return lo, hi, ok, nil
	}
	x0, x1, okX, err := scanLine(true, c.Y, c.X)
	if err != nil || !okX {
		return spot, err
	}
	cx := (x0 + x1) / 2
	y0, y1, okY, err := scanLine(false, cx, c.Y)
	if err != nil || !okY {
		return spot, err
	}
	// The edge lies within one step outside the outermost hit; add half a
	// step of margin on each side so the plan covers the whole spot.
	d := math.Max(x1-x0, y1-y0) + step
	spot = Spot{CenterX: cx, CenterY: (y0 + y1) / 2, Diameter: d, Found: true, Probes: spot.Probes}
	return spot, nil
}

// inTravel reports whether (x, y) lies within both stage axes' travel.
func (s *Scanner) inTravel(x, y float64) bool {
	xmin, xmax := s.m.Stage.X.Travel()
	ymin, ymax := s.m.Stage.Y.Travel()
	return x >= um(xmin) && x <= um(xmax) && y >= um(ymin) && y <= um(ymax)
}
