package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"
)

// autofocus finds the best focus near zc at the current XY with a coarse
// sweep over ±FocusRange and a fine sweep around the coarse peak. Every sweep
// approaches from below (increasing Z) so gear backlash is always taken up
// the same way. It returns the focus and the frames it took.
func (s *Scanner) autofocus(ctx context.Context, r *Report, zc float64, buf **image.RGBA) (float64, error) {
	zmin, zmax := s.m.Focus.Range()
	lo, hi := um(zmin), um(zmax)
	sweep := func(from, to, step float64) (float64, error) {
		from, to = math.Max(from, lo), math.Min(to, hi)
		n := int(math.Floor((to-from)/step+1e-9)) + 1
		if n < 3 {
			return 0, fmt.Errorf("%w: sweep %.1f..%.1f µm outside focus travel", ErrNoFocusPeak, from, to)
		}
		zs := make([]float64, n)
		sh := make([]float64, n)
		// Take up backlash: start one step below the sweep.
		if err := s.setZ(ctx, r, math.Max(from-step, lo)); err != nil {
			return 0, err
		}
		for i := range zs {
			zs[i] = from + float64(i)*step
			if err := s.setZ(ctx, r, zs[i]); err != nil {
				return 0, err
			}
			img, err := s.capture(ctx, r, *buf)
			if err != nil {
				return 0, err
			}
			*buf = img
			r.Focus.Frames++
			sh[i] = Sharpness(img)
		}
		return peakOf(zs, sh)
	}
	step := s.o.FocusStep
	z, err := sweep(zc-s.o.FocusRange, zc+s.o.FocusRange, step)
	if err != nil {
		return 0, err
	}
	fine := step / 3
	zf, err := sweep(z-step, z+step, fine)
	if err != nil {
		if errors.Is(err, ErrNoFocusPeak) {
			return z, nil // the coarse peak stands
		}
		return 0, err
	}
	return zf, nil
}

// focusPointsIn spreads n autofocus points over the inner part of the spot:
// a square grid of ceil(sqrt(n)) per side within ±0.6 r, nearest first.
func focusPointsIn(c Point, r float64, n int) []Point {
	k := int(math.Ceil(math.Sqrt(float64(n))))
	pts := make([]Point, 0, k*k)
	for j := 0; j < k; j++ {
		for i := 0; i < k; i++ {
			p := c
			if k > 1 {
				p.X += (float64(i)/float64(k-1)*2 - 1) * 0.6 * r
				p.Y += (float64(j)/float64(k-1)*2 - 1) * 0.6 * r
			}
			pts = append(pts, p)
		}
	}
	// Nearest the centre first: the first points anchor the later sweeps.
	for i := 1; i < len(pts); i++ {
		for j := i; j > 0 && dist2(pts[j], c) < dist2(pts[j-1], c); j-- {
			pts[j], pts[j-1] = pts[j-1], pts[j]
		}
	}
	return pts[:n]
}

func dist2(a, b Point) float64 { return (a.X-b.X)*(a.X-b.X) + (a.Y-b.Y)*(a.Y-b.Y) }

// focusMap measures autofocus points across the spot and fits the focus
// surface. Each sweep is centred on the surface predicted from the points
// already measured. Points whose sweep shows no peak (a bare patch of glass,
// a bubble) are skipped; the map needs at least one good point.
func (s *Scanner) focusMap(ctx context.Context, r *Report, c Point, radius float64) (*FocusMap, error) {
	pts := focusPointsIn(c, radius, s.o.FocusPoints)
	var good []FocusPoint
	var buf *image.RGBA
	for i, p := range pts {
		s.progress(Progress{SlideID: r.SlideID, Phase: "focus", Done: i, Total: len(pts)})
		zc := s.o.ZNominal
		if len(good) > 0 {
			m, err := FitFocusMap(good)
			if err == nil {
				zc = m.Z(p.X, p.Y)
			}
		}
		if err := s.moveTo(ctx, r, p.X, p.Y); err != nil {
			return nil, fmt.Errorf("focus point %d: %w", i, err)
		}
		z, err := s.autofocus(ctx, r, zc, &buf)
		r.Focus.Points++
		if errors.Is(err, ErrNoFocusPeak) {
			r.Focus.Failed++
			s.log.Warn("autofocus point skipped", "slide", r.SlideID, "x_um", p.X, "y_um", p.Y, "err", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("focus point %d: %w", i, err)
		}
		good = append(good, FocusPoint{p.X, p.Y, z})
	}
	m, err := FitFocusMap(good)
	if err != nil {
		return nil, fmt.Errorf("focus map: every autofocus point failed (%d points): %w", len(pts), err)
	}
	r.Focus.FitRMS = m.RMS()
	r.Focus.Terms = m.Terms()
	r.Focus.Map = good
	return m, nil
}
