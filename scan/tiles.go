package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"

	"papscan/classify"
	"papscan/hal"
)

// sharpWindow is how many recent tiles the running sharpness median spans.
const sharpWindow = 15

// captureTiles images every planned tile and feeds the analysis pool
// (analysis.go, shared with the on-the-fly loop). The stage and focus move to the next tile while the workers
// analyse the previous ones. A tile whose sharpness drops well below the
// running median although it shows as much tissue as usual is refocused
// (bounded by RefocusMax) and captured again. A focus found off the map is
// taken as a local map error and becomes a new point of the map, which
// corrects the map around it (one bad area must not defocus the rest of
// the slide); when two refocuses in a row find the same shift from the
// original map at places a quarter of the spot apart, the whole focus has
// moved (thermal drift, a knock) and the shift applies everywhere.
func (s *Scanner) captureTiles(ctx context.Context, r *Report, plan TilePlan, fm *FocusMap, summary *classify.SlideSummary, j *journal) error {
	if s.o.Fly.Enabled {
		return s.captureOnTheFly(ctx, r, plan, fm, summary, j)
	}
	planes := s.o.ZPlanes
	pool := s.newAnalysisPool(r, plan, planes, summary, j)
	defer pool.drain()

	// Focus heights planned per tile (for the lower bound) and actually used.
	zs := make([]float64, len(plan.Tiles))
	for i, t := range plan.Tiles {
		zs[i] = fm.Z(t.X, t.Y)
	}
	fromX, fromY, _ := s.m.Stage.Position()
	fromZ, _ := s.m.Focus.Z()
	phase0 := s.m.Clock.Now()
	base := fm             // the map as measured before the tiles
	basePts := r.Focus.Map // its points
	var local []FocusPoint // points added by refocusing
	pol := newRefocusPolicy(s.o.RefocusDrop, s.o.RefocusMax, s.o.FocusStep, r.Spot.Diameter/4)
	var errSS float64
	var errN int
	var afBuf *image.RGBA

	s.progress(Progress{SlideID: r.SlideID, Phase: "scan", Total: len(plan.Tiles)})
	for i, t := range plan.Tiles {
		if err := ctx.Err(); err != nil {
			return err
		}
		z := fm.Z(t.X, t.Y) + pol.offset
		lowest := z - float64(planes/2)*s.o.ZPlaneStep
		if err := s.moveXYZ(ctx, r, t.X, t.Y, lowest); err != nil {
			return fmt.Errorf("tile %d: %w", i, err)
		}
		tx, ty := s.standingXY(t.X, t.Y)
		bufs, err := pool.get(ctx)
		if err != nil {
			return err
		}
		if err := s.captureStack(ctx, r, bufs, lowest); err != nil {
			pool.put(bufs)
			r.TilesMissing++
			return fmt.Errorf("tile %d: capture: %w", i, err)
		}
		mid := bufs[planes/2]
		if pol.enabled() && r.Focus.Refocus < s.o.RefocusMax {
			if tf := tissueFraction(mid); pol.needed(r.Focus.Refocus, Sharpness(mid), tf) {
				r.Focus.Refocus++
				t0 := s.m.Clock.Now()
				zn, err := s.checkFocus(ctx, r, z, Sharpness(mid), &afBuf)
				outcome := refocusConfirmed
				if err == nil {
					outcome = pol.found(t, z, zn, base.Z(t.X, t.Y))
				}
				switch {
				case errors.Is(err, ErrNoFocusPeak):
					s.log.Warn("refocus found no peak; keeping the map", "slide", r.SlideID, "tile", i)
				case err != nil:
					pool.put(bufs)
					r.TilesMissing++
					return fmt.Errorf("tile %d: refocus: %w", i, err)
				case outcome == refocusConfirmed:
					// The focus was right: the tile is just poor in contrast.
					s.log.Debug("refocus confirmed the map", "slide", r.SlideID, "tile", i, "z_um", z, "found_um", zn, "true_um", s.truth(t))
				default:
					s.log.Info("tile refocused", "slide", r.SlideID, "tile", i, "map_z_um", z, "new_z_um", zn, "true_um", s.truth(t))
					if outcome == refocusGlobal {
						// The whole focus moved: the map as measured, shifted.
						local, fm = nil, base
						r.Focus.Map = basePts
					} else {
						local = append(local, FocusPoint{t.X, t.Y, zn - pol.offset})
						pts := append(append([]FocusPoint(nil), basePts...), local...)
						if m2, kept, _ := FitRobust(pts, s.rejectResidual()); m2 != nil {
							fm, r.Focus.Map = m2, kept
						}
					}
					z = zn
					lowest = z - float64(planes/2)*s.o.ZPlaneStep
					// A failed re-capture leaves bufs holding the stale,
					// defocused frames: the tile is missing, never analysed.
					err := s.setZ(ctx, r, lowest)
					if err == nil {
						err = s.captureStack(ctx, r, bufs, lowest)
					}
					if err != nil {
						pool.put(bufs)
						r.TilesMissing++
						return fmt.Errorf("tile %d: refocus: %w", i, err)
					}
				}
				r.Timing.Refocus += s.m.Clock.Now().Sub(t0)
				mid = bufs[planes/2]
			}
		}
		if pol.enabled() {
			pol.observe(Sharpness(mid), tissueFraction(mid))
		}
		if s.o.FocusTruth != nil {
			if zt, ok := s.o.FocusTruth(t.X, t.Y); ok {
				errSS += (z - zt) * (z - zt)
				errN++
			}
		}
		if err := pool.submit(ctx, i, tx, ty, bufs); err != nil {
			return err
		}
	}
	r.Timing.TilePhase = s.m.Clock.Now().Sub(phase0)
	if errN > 0 {
		r.Focus.ErrorRMS = math.Sqrt(errSS / float64(errN))
	}
	if s.o.Motion.known() {
		r.lowerBound = s.o.Motion.LowerBound(Point{um(fromX), um(fromY)}, um(fromZ), plan.Tiles, zs, planes, s.o.ZPlaneStep)
	}
	pool.drain()
	return nil
}

// truth is the simulator's true focus at t for the logs, NaN when unknown.
func (s *Scanner) truth(t Point) float64 {
	if s.o.FocusTruth != nil {
		if z, ok := s.o.FocusTruth(t.X, t.Y); ok {
			return z
		}
	}
	return math.NaN()
}

// captureStack captures one image per plane into bufs, the first at z (the
// focus is already there), the others ZPlaneStep apart above it: always
// upwards, against backlash. A dropped frame is retried once.
func (s *Scanner) captureStack(ctx context.Context, r *Report, bufs []*image.RGBA, z float64) error {
	for k := range bufs {
		if k > 0 {
			if err := s.setZ(ctx, r, z+float64(k)*s.o.ZPlaneStep); err != nil {
				return err
			}
		}
		img, err := s.capture(ctx, r, bufs[k])
		if errors.Is(err, hal.ErrTimeout) {
			s.log.Warn("frame timeout, retrying", "slide", r.SlideID)
			img, err = s.capture(ctx, r, img)
		}
		if img != nil {
			bufs[k] = img
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// MergePlanes merges a z-stack into its first image: each pixel is taken
// from the plane with the highest local contrast there (the absolute
// Laplacian of green over the 4-neighbourhood, summed over a 3x3 window),
// the usual extended-depth-of-field merge. All planes must have the same
// bounds; it returns planes[0].
func MergePlanes(planes []*image.RGBA) *image.RGBA {
	dst := planes[0]
	if len(planes) < 2 {
		return dst
	}
	w, h := dst.Rect.Dx(), dst.Rect.Dy()
	for _, p := range planes[1:] {
		if p.Rect.Dx() != w || p.Rect.Dy() != h {
			return dst
		}
	}
	// Contrast per plane per pixel, then the choice; rows handled in a
	// rolling fashion would save memory, but a byte per pixel is small.
	choice := make([]uint8, w*h)
	best := make([]int32, w*h)
	lap := make([]int32, w*h)
	for k, p := range planes {
		for y := 1; y < h-1; y++ {
			row := p.Pix[y*p.Stride:]
			up := p.Pix[(y-1)*p.Stride:]
			dn := p.Pix[(y+1)*p.Stride:]
			for x := 1; x < w-1; x++ {
				v := 4*int32(row[x*4+1]) - int32(row[(x-1)*4+1]) - int32(row[(x+1)*4+1]) - int32(up[x*4+1]) - int32(dn[x*4+1])
				if v < 0 {
					v = -v
				}
				lap[y*w+x] = v
			}
		}
		for y := 2; y < h-2; y++ {
			for x := 2; x < w-2; x++ {
				var sum int32
				for dy := -1; dy <= 1; dy++ {
					o := (y+dy)*w + x
					sum += lap[o-1] + lap[o] + lap[o+1]
				}
				if k == 0 || sum > best[y*w+x] {
					best[y*w+x] = sum
					choice[y*w+x] = uint8(k)
				}
			}
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if k := choice[y*w+x]; k > 0 {
				o := y*dst.Stride + x*4
				copy(dst.Pix[o:o+4], planes[k].Pix[y*planes[k].Stride+x*4:][:4])
			}
		}
	}
	return dst
}
