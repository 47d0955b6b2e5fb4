package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math"

	"papscan/hal"
)

// Autofocus tuning.
const (
	// focusTilesPerPoint caps the focus map's points at one per so many
	// planned tiles (with refocusing, autofocus stays under one operation
	// per 8 fields); minFocusPoints is the floor (a centre and four
	// around: a plane with a check).
	focusTilesPerPoint = 10
	minFocusPoints     = 5
	// maxFocusSlope is the steepest focal surface believed, µm per mm: a
	// slide on a holder tilts a few µm/mm at most; a point implying more
	// against its neighbours focused on something else (dust on the
	// coverslip, a bubble).
	maxFocusSlope = 20.0
	// localRangeSteps is the half range, in coarse steps, of a sweep
	// centred on a prediction (the focus map, a neighbour).
	localRangeSteps = 3
	// fineSamples are taken fineStepFrac coarse steps apart around the
	// coarse peak and fitted.
	fineSamples  = 5
	fineStepFrac = 0.5
)

// autofocus finds the best focus near zc at the current XY: a coarse sweep
// over zc ± half, stopped early once the sharpness has clearly passed its
// peak, then a few fine samples around the coarse peak fitted with a
// Gaussian (a parabola in log sharpness). Every sweep approaches from below
// (increasing Z) so gear backlash is always taken up the same way. The
// peak must be a real one: inside the sweep and well above its floor
// (ErrNoFocusPeak otherwise). It is one autofocus operation in r.Focus.
func (s *Scanner) autofocus(ctx context.Context, r *Report, zc, half float64, buf **image.RGBA) (float64, error) {
	r.Focus.Ops++
	zmin, zmax := s.m.Focus.Range()
	lo, hi := um(zmin), um(zmax)
	step := s.o.FocusStep
	shoot := func(z float64) (float64, error) {
		if err := s.setZ(ctx, r, z); err != nil {
			return 0, err
		}
		img, err := s.capture(ctx, r, *buf)
		if err != nil {
			return 0, err
		}
		*buf = img
		r.Focus.Frames++
		return Sharpness(img), nil
	}
	from, to := math.Max(zc-half, lo), math.Min(zc+half, hi)
	if to-from < 2*step {
		return 0, fmt.Errorf("%w: sweep %.1f..%.1f µm outside focus travel", ErrNoFocusPeak, from, to)
	}
	// Take up backlash: start one step below the sweep.
	if err := s.setZ(ctx, r, math.Max(from-step, lo)); err != nil {
		return 0, err
	}
	var zs, sh []float64
	best := 0
	for z := from; z <= to+1e-9; z += step {
		v, err := shoot(z)
		if err != nil {
			return 0, err
		}
		zs, sh = append(zs, z), append(sh, v)
		if v > sh[best] {
			best = len(sh) - 1
		}
		// Past a clear peak: stop, the rest of the sweep is downhill.
		if n := len(sh); best > 0 && n-1-best >= 2 && v < 0.6*sh[best] && sh[n-2] < sh[best] {
			break
		}
	}
	zp, err := peakOf(zs, sh)
	if err != nil {
		return 0, err
	}
	// Fine samples around the coarse peak, again from below.
	h := step * fineStepFrac
	f0 := zp - h*float64(fineSamples-1)/2
	if f0-h < lo || f0+h*float64(fineSamples-1) > hi {
		return zp, nil
	}
	if err := s.setZ(ctx, r, f0-h); err != nil {
		return 0, err
	}
	fz := make([]float64, fineSamples)
	fs := make([]float64, fineSamples)
	for i := range fz {
		fz[i] = f0 + float64(i)*h
		if fs[i], err = shoot(fz[i]); err != nil {
			return 0, err
		}
	}
	if zf, ok := gaussPeak(fz, fs); ok && math.Abs(zf-zp) <= h*float64(fineSamples-1)/2 {
		s.noteWidth(fz, fs, zf, h)
		return zf, nil
	}
	return zp, nil
}

// checkFocus is the refocus of a tile that looked soft, imaged at z with
// sharpness s0: focusNear with that frame reused. When the bracket shows z
// is the sharpest the focus is where the map said (a tile poor in
// contrast, not out of focus): two frames instead of a sweep's dozen.
func (s *Scanner) checkFocus(ctx context.Context, r *Report, z, s0 float64, buf **image.RGBA) (float64, error) {
	return s.focusNear(ctx, r, z, s0, true, buf)
}

// focusNear finds the focus near a prediction zp (the focus map, the
// points measured so far): frames one coarse step below and above zp (and
// at zp unless its sharpness s0 is known) bracket it. When zp is the
// sharpest of the three by a clear margin, the Gaussian through them
// places the peak; otherwise it climbs, one coarse step at a time, towards
// the sharper side until the sharpness falls again (at most
// localRangeSteps from zp; ErrNoFocusPeak beyond). Two fine frames half a
// step either side of the peak then refine it, all five nearest fitted
// with a Gaussian (skipped when confirm is set and the bracket confirmed
// zp: the caller only wants to know the focus did not move). Five or six
// frames where a sweep takes a dozen; a flat bracket falls back to the
// sweep. It is one autofocus operation.
func (s *Scanner) focusNear(ctx context.Context, r *Report, zp, s0 float64, confirm bool, buf **image.RGBA) (float64, error) {
	return s.focusNearFrom(ctx, r, zp, math.NaN(), s0, confirm, false, buf)
}

// focusNearFrom is focusNear with the sharpness sBelow of a frame already
// taken one coarse step below zp (NaN: none), approached from below. With
// coarse set the Gaussian through the three frames around the peak is the
// answer (no fine frames): for the focus map, whose error between its
// points (the coverslip's waviness, about a micrometre) outweighs the
// tenths the fine frames add), and a rising climb goes on through the
// focus range instead of failing after localRangeSteps.
func (s *Scanner) focusNearFrom(ctx context.Context, r *Report, zp, sBelow, s0 float64, confirm, coarse bool, buf **image.RGBA) (float64, error) {
	step := s.o.FocusStep
	zmin, zmax := s.m.Focus.Range()
	lo, hi := um(zmin), um(zmax)
	sweep := func() (float64, error) { return s.autofocus(ctx, r, zp, localRangeSteps*step, buf) }
	if zp-float64(localRangeSteps+1)*step < lo || zp+float64(localRangeSteps)*step > hi || s0 == 0 {
		return sweep()
	}
	r.Focus.Ops++
	// How far the bracket climbs: localRangeSteps; the map's coarse
	// bracket on through the whole focus range (a climb that has the
	// slope's direction is cheaper than the sweep that starts again
	// from the bottom of the range: 3-4 frames instead of ~25 where a
	// point lies 9-15 µm off the prediction of the first few).
	climb := localRangeSteps
	if coarse {
		climb = max(climb, int(s.o.FocusRange/step))
	}
	if coarse && !math.IsNaN(sBelow) && math.IsNaN(s0) {
		if ax, tm, ok := s.zSweeper(); ok {
			return s.sweptBracket(ctx, r, ax, tm, zp, sBelow, math.Max(lo, zp-float64(climb)*step), math.Min(hi, zp+float64(climb)*step), buf)
		}
	}
	zs := []float64{zp - step, zp, zp + step}
	sh := []float64{sBelow, s0, 0}
	// From below, against backlash.
	if math.IsNaN(sBelow) {
		if err := s.setZ(ctx, r, zp-2*step); err != nil {
			return 0, err
		}
	}
	for i, z := range zs {
		if (i == 0 && !math.IsNaN(sBelow)) || (i == 1 && !math.IsNaN(s0)) {
			continue
		}
		v, err := s.shoot(ctx, r, z, buf)
		if err != nil {
			return 0, err
		}
		sh[i] = v
	}
	peak := 1
	if sh[0] >= sh[1] || sh[2] >= sh[1] {
		// Climb towards the sharper side.
		dir := 1.0
		if sh[0] > sh[2] {
			dir = -1
		}
		for k := 2; ; k++ {
			z := zp + dir*float64(k)*step
			if k > climb || z < lo || z > hi {
				return 0, fmt.Errorf("%w: sharpness still rising %d steps from the prediction %.1f µm", ErrNoFocusPeak, k-1, zp)
			}
			v, err := s.shoot(ctx, r, z, buf)
			if err != nil {
				return 0, err
			}
			if dir > 0 {
				zs, sh = append(zs, z), append(sh, v)
				if v < sh[len(sh)-2] {
					peak = len(sh) - 2
					break
				}
			} else {
				zs, sh = append([]float64{z}, zs...), append([]float64{v}, sh...)
				if v < sh[1] {
					peak = 1
					break
				}
			}
		}
	}
	tri, trs := zs[peak-1:peak+2], sh[peak-1:peak+2]
	z0, flat := bracketPeak(tri, trs, step)
	if flat {
		r.Focus.Ops-- // a flat curve: the sweep decides (same operation)
		return sweep()
	}
	if coarse || (confirm && peak == 1 && len(zs) == 3 && math.Abs(z0-zp) < step/2) {
		return z0, nil
	}
	h := step * fineStepFrac
	if err := s.setZ(ctx, r, z0-2*h); err != nil {
		return 0, err
	}
	fz := append([]float64(nil), tri...)
	fs := append([]float64(nil), trs...)
	for _, z := range []float64{z0 - h, z0 + h} {
		v, err := s.shoot(ctx, r, z, buf)
		if err != nil {
			return 0, err
		}
		fz, fs = append(fz, z), append(fs, v)
	}
	if zf, ok := gaussPeak(fz, fs); ok && math.Abs(zf-z0) <= h {
		s.noteWidth(fz, fs, zf, h)
		return zf, nil
	}
	return z0, nil
}

// bracketPeak places the peak of three frames around the sharpest, at
// rising focus tz with sharpness ts: the Gaussian through them, kept
// within half a step of the middle frame. flat is true when the middle
// does not stand clearly above its lower neighbour (the caller's full
// sweep decides).
func bracketPeak(tz, ts []float64, step float64) (z float64, flat bool) {
	if !(ts[1] > 1.15*math.Min(ts[0], ts[2])) {
		return 0, true
	}
	z = tz[1]
	if zg, ok := gaussPeak(tz, ts); ok && math.Abs(zg-tz[1]) <= step/2 {
		z = zg
	}
	return z, false
}

// shoot moves the focus to z and returns the sharpness of a frame there,
// counted as an autofocus frame.
func (s *Scanner) shoot(ctx context.Context, r *Report, z float64, buf **image.RGBA) (float64, error) {
	t0 := s.m.Clock.Now()
	if err := s.setZ(ctx, r, z); err != nil {
		return 0, err
	}
	t1 := s.m.Clock.Now()
	img, err := s.capture(ctx, r, *buf)
	s.log.Debug("shoot", "z_ms", t1.Sub(t0).Seconds()*1000, "cap_ms", s.m.Clock.Now().Sub(t1).Seconds()*1000)
	if err != nil {
		return 0, err
	}
	*buf = img
	r.Focus.Frames++
	return Sharpness(img), nil
}

// gaussPeak fits log(s) = a + b z + c z² by least squares and returns the
// vertex -b/2c when the fit is concave (c < 0).
func gaussPeak(zs, s []float64) (float64, bool) {
	z, _, ok := gaussFit(zs, s)
	return z, ok
}

// gaussFit is gaussPeak that also returns the curve's width² w² = -1/2c
// (log s = a' - (z - vertex)²/2w²), µm².
func gaussFit(zs, s []float64) (vertex, w2 float64, ok bool) {
	n := float64(len(zs))
	if len(zs) < 3 {
		return 0, 0, false
	}
	var mz float64
	for _, z := range zs {
		mz += z
	}
	mz /= n
	// Normal equations of the centred quadratic.
	var s0, s1, s2, s3, s4, t0, t1, t2 float64
	for i, z := range zs {
		if !(s[i] > 0) {
			return 0, 0, false
		}
		u, l := z-mz, math.Log(s[i])
		s0++
		s1 += u
		s2 += u * u
		s3 += u * u * u
		s4 += u * u * u * u
		t0 += l
		t1 += u * l
		t2 += u * u * l
	}
	m := [3][4]float64{{s0, s1, s2, t0}, {s1, s2, s3, t1}, {s2, s3, s4, t2}}
	for c := 0; c < 3; c++ {
		p := c
		for r := c + 1; r < 3; r++ {
			if math.Abs(m[r][c]) > math.Abs(m[p][c]) {
				p = r
			}
		}
		if math.Abs(m[p][c]) < 1e-12 {
			return 0, 0, false
		}
		m[c], m[p] = m[p], m[c]
		for r := 0; r < 3; r++ {
			if r != c {
				f := m[r][c] / m[c][c]
				for k := c; k < 4; k++ {
					m[r][k] -= f * m[c][k]
				}
			}
		}
	}
	b, c := m[1][3]/m[1][1], m[2][3]/m[2][2]
	if !(c < 0) {
		return 0, 0, false
	}
	return mz - b/(2*c), -1 / (2 * c), true
}

// noteWidth keeps the width² of the sharpness curve near a focus found at
// zf (the Gaussian through the frames at most h from it, h the fine
// step: within the depth of field, where the tracker works) for the
// on-the-fly focus tracker: the last few, across slides.
func (s *Scanner) noteWidth(zs, sh []float64, zf, h float64) {
	var nz, ns []float64
	for i, z := range zs {
		if math.Abs(z-zf) <= 1.1*h {
			nz, ns = append(nz, z), append(ns, sh[i])
		}
	}
	_, w2, ok := gaussFit(nz, ns)
	if !ok || !(w2 > 0) || math.IsInf(w2, 0) {
		return
	}
	s.widths = append(s.widths, w2)
	if n := len(s.widths); n > 32 {
		s.widths = append(s.widths[:0], s.widths[n-32:]...)
	}
}

// sharpWidth2 is the median width² of the recent fine focus fits, or
// fallback when there are none.
func (s *Scanner) sharpWidth2(fallback float64) float64 {
	if len(s.widths) == 0 {
		return fallback
	}
	return median(s.widths)
}

// Focus-point layout: a square grid reaching focusSpread spot radii from
// the centre along the axes, keeping only the points within focusInside
// radii (on specimen; the grid's corners would be bare glass).
const (
	focusSpread = 0.9
	focusInside = 0.97
)

// focusPointsIn spreads autofocus points over the spot: the smallest square
// grid (see focusSpread) with at least n points inside the spot, all of
// them, nearest the centre first. One point is the centre.
func focusPointsIn(c Point, r float64, n int) []Point {
	if n <= 1 {
		return []Point{c}
	}
	var pts []Point
	for k := 2; k <= 64; k++ {
		pts = pts[:0]
		for j := range k {
			for i := range k {
				p := Point{c.X + (float64(i)/float64(k-1)*2-1)*focusSpread*r, c.Y + (float64(j)/float64(k-1)*2-1)*focusSpread*r}
				if dist2(p, c) <= focusInside*focusInside*r*r {
					pts = append(pts, p)
				}
			}
		}
		if len(pts) >= n {
			break
		}
	}
	// Nearest the centre first: the first points anchor the later sweeps.
	for i := 1; i < len(pts); i++ {
		for j := i; j > 0 && dist2(pts[j], c) < dist2(pts[j-1], c); j-- {
			pts[j], pts[j-1] = pts[j-1], pts[j]
		}
	}
	return pts
}

// nearestTour reorders pts into a nearest-neighbour tour from the first:
// less stage travel between points than centre-outwards.
func nearestTour(pts []Point) []Point {
	out := make([]Point, 0, len(pts))
	left := append([]Point(nil), pts...)
	cur := left[0]
	left = left[1:]
	out = append(out, cur)
	for len(left) > 0 {
		best := 0
		for i := range left {
			if dist2(left[i], cur) < dist2(left[best], cur) {
				best = i
			}
		}
		cur = left[best]
		out = append(out, cur)
		left = append(left[:best], left[best+1:]...)
	}
	return out
}

func dist2(a, b Point) float64 { return (a.X-b.X)*(a.X-b.X) + (a.Y-b.Y)*(a.Y-b.Y) }

// focusMap measures autofocus points across the spot and fits the focus
// surface. The first sweep spans the whole focus range around the nominal
// focus; later ones a few steps around the surface predicted from the
// points so far (widened once if the peak falls outside). Points whose
// sweep shows no peak (bare glass, a bubble) are skipped, and implausible
// points (too steep against their neighbours, or far off the surface fitted
// without them) are rejected; the map needs at least one good point.
func (s *Scanner) focusMap(ctx context.Context, r *Report, c Point, radius float64) (fm *FocusMap, err error) {
	// A swept bracket leaves the focus on a short move nobody waited for:
	// attended before the map returns, whatever it returns.
	defer func() {
		if af, ok := s.m.Focus.(hal.AxisFocus); ok {
			t0 := s.m.Clock.Now()
			werr := af.Wait(ctx)
			r.Timing.Motion += s.m.Clock.Now().Sub(t0)
			if werr != nil && err == nil {
				fm, err = nil, fmt.Errorf("focus map: %w", werr)
			}
		}
	}()
	// No more points than the plan is worth: at most one per
	// focusTilesPerPoint tiles (a small spot needs few).
	n := min(s.o.FocusPoints, max(minFocusPoints, r.TilesPlanned/focusTilesPerPoint))
	// On specimen where the overview shows it.
	pts := onMaterial(r.material, focusPointsIn(c, radius, n), c, radius)

	if s.o.Fly.Enabled {
		pts = nearestTour(pts)
	}
	var good []FocusPoint
	var buf *image.RGBA
	for i, p := range pts {
		s.progress(Progress{SlideID: r.SlideID, Phase: "focus", Done: i, Total: len(pts)})
		zc, half := s.o.ZNominal, s.o.FocusRange
		if len(good) > 0 {
			if m, _, _ := FitRobust(good, s.rejectResidual()); m != nil {
				zc, half = m.Z(p.X, p.Y), localRangeSteps*s.o.FocusStep
			}
		} else if s.prior != nil {
			// The previous slide's surface predicts the first point: a
			// bracket instead of a sweep over the whole range (widened
			// to the sweep below when it holds no peak).
			zc, half = s.prior.Z(p.X, p.Y), localRangeSteps*s.o.FocusStep
		} else if s.o.Fly.Enabled {
			// On the fly the first point of a magazine too: a bracket
			// at the nominal focus whose climb crosses the range (a
			// flat bracket or no peak widens to the sweep below).
			half = localRangeSteps * s.o.FocusStep
		}
		// Z goes to where the first frame wants it (below the bracket or
		// the sweep, against backlash) while the stage moves.
		// A bracket's first frame is one step below the prediction:
		// the specimen probe on arrival is that frame.
		zPre := zc - s.o.FocusStep
		if half >= s.o.FocusRange {
			zPre = zc - half - s.o.FocusStep
		}
		zmin, zmax := s.m.Focus.Range()
		zPre = math.Max(um(zmin), math.Min(um(zmax), zPre))
		m0 := r.Timing.Motion
		err := s.moveXYZ(ctx, r, p.X, p.Y, zPre)
		if err != nil {
			return nil, fmt.Errorf("focus point %d: %w", i, err)
		}
		c0, f0 := r.Timing.Capture, r.Focus.Frames
		// A frame on arrival shows whether there is specimen to focus
		// on; over bare glass the point hops a field aside (a short
		// move and a frame) rather than spend a bracket or a sweep on
		// nothing.
		q, sBelow, ok, err := s.onSpecimen(ctx, r, p, zPre, c, radius, &buf)
		if err != nil {
			return nil, fmt.Errorf("focus point %d: %w", i, err)
		}
		r.Focus.MapTravelSeconds += (r.Timing.Motion - m0).Seconds() // with the hops
		m0 = r.Timing.Motion
		if !ok {
			r.Focus.Points++
			r.Focus.Failed++
			r.Focus.MapCaptureSeconds += (r.Timing.Capture - c0).Seconds()
			r.Focus.MapFrames += r.Focus.Frames - f0
			s.log.Warn("autofocus point skipped: no specimen around it", "slide", r.SlideID, "x_um", p.X, "y_um", p.Y)
			continue
		}
		p = q
		var z float64
		switch {
		case half < s.o.FocusRange:
			// The bracket (climbing to the peak when the prediction is
			// off) places it. On the fly, from the three frames around
			// it, no fine ones: the few points' map is a micrometre off
			// between them anyway. Stop-and-go's dense map keeps them.
			z, err = s.focusNearFrom(ctx, r, zc, sBelow, math.NaN(), true, s.o.Fly.Enabled, &buf)
		default:
			z, err = s.autofocus(ctx, r, zc, half, &buf)
		}
		if errors.Is(err, ErrNoFocusPeak) && half < s.o.FocusRange {
			// Widen the same operation to the whole range.
			r.Focus.Ops--
			z, err = s.autofocus(ctx, r, zc, s.o.FocusRange, &buf)
		}
		r.Focus.Points++
		truth := math.NaN()
		if s.o.FocusTruth != nil {
			if zt, ok := s.o.FocusTruth(p.X, p.Y); ok {
				truth = zt
			}
		}
		s.log.Debug("focus point", "slide", r.SlideID, "i", i, "truth_um", truth, "x_um", p.X, "y_um", p.Y, "z_um", z, "predicted_um", zc, "half_um", half,
			"frames", r.Focus.Frames-f0, "z_s", (r.Timing.Motion - m0).Seconds(), "capture_s", (r.Timing.Capture - c0).Seconds(), "err", err)
		r.Focus.MapZSeconds += (r.Timing.Motion - m0).Seconds()
		r.Focus.MapCaptureSeconds += (r.Timing.Capture - c0).Seconds()
		r.Focus.MapFrames += r.Focus.Frames - f0
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
	m, kept, rejected := FitRobust(good, s.rejectResidual())
	if m == nil {
		return nil, fmt.Errorf("focus map: every autofocus point failed (%d points): %w", len(pts), ErrNoFocusPeak)
	}
	for _, p := range rejected {
		s.log.Warn("implausible focus point rejected", "slide", r.SlideID, "x_um", p.X, "y_um", p.Y, "z_um", p.Z)
	}
	r.Focus.Rejected = len(rejected)
	r.Focus.FitRMS = m.RMS()
	r.Focus.Terms = m.Terms()
	r.Focus.Map = kept
	if s.o.FocusPrior {
		s.prior = m
	}
	return m, nil
}

// Specimen probe of a focus point: a frame whose tissue fraction is below
// probeTissue shows bare glass (measured on CRIC slides of the simulator:
// points whose autofocus found no peak showed 0.004-0.017, those that
// found one 0.033 and more); maxHops neighbouring fields are tried.
const (
	probeTissue = 0.025
	maxHops     = 4
)

// onSpecimen takes a frame at the focus point p (Z at z): when it shows
// specimen, p is the point (q, with the frame's sharpness). Otherwise the fields beside p (one field along
// X, then along Y, either way, inside the spot of centre c and radius
// radius) are tried in turn, a move and a frame each; ok is false when
// none shows specimen. The frames count as autofocus frames.
func (s *Scanner) onSpecimen(ctx context.Context, r *Report, p Point, z float64, c Point, radius float64, buf **image.RGBA) (q Point, sharp float64, ok bool, err error) {
	fw, fh := s.fieldUM()
	cands := []Point{p, {p.X + fw, p.Y}, {p.X - fw, p.Y}, {p.X, p.Y + fh}, {p.X, p.Y - fh}}
	hops := 0
	for k, q := range cands {
		if k > 0 {
			if hops >= maxHops || dist2(q, c) > radius*radius {
				continue
			}
			hops++
			r.Focus.MapHops++
			if err := s.moveXYZ(ctx, r, q.X, q.Y, z); err != nil {
				return p, 0, false, err
			}
		}
		img, err := s.capture(ctx, r, *buf)
		if err != nil {
			return p, 0, false, err
		}
		*buf = img
		r.Focus.Frames++
		if tissueFraction(img) >= probeTissue {
			return q, Sharpness(img), true, nil
		}
	}
	return p, 0, false, nil
}

// rejectResidual is the largest leave-one-out residual a focus point may
// have: three coarse steps, far beyond the surface's real waviness.
func (s *Scanner) rejectResidual() float64 { return 3 * s.o.FocusStep }

// FitRobust fits a focus surface to pts after rejecting implausible
// points: first those implying a slope steeper than maxFocusSlope against
// other points (the one with most such conflicts first), then, while more
// points remain than the surface has terms, the one whose leave-one-out
// residual (its distance from the surface fitted to the others) is largest
// if that exceeds maxResidual µm. It returns the map (nil if no point is
// left), the points kept and those rejected.
func FitRobust(pts []FocusPoint, maxResidual float64) (m *FocusMap, kept, rejected []FocusPoint) {
	kept = append([]FocusPoint(nil), pts...)
	// Slope conflicts.
	for len(kept) > 1 {
		conflicts := make([]int, len(kept))
		worst := -1
		for i := range kept {
			for j := range i {
				d := math.Sqrt(dist2(Point{kept[i].X, kept[i].Y}, Point{kept[j].X, kept[j].Y})) / 1000
				if d > 0 && math.Abs(kept[i].Z-kept[j].Z)/d > maxFocusSlope {
					conflicts[i]++
					conflicts[j]++
				}
			}
		}
		for i, c := range conflicts {
			if c > 0 && (worst < 0 || c > conflicts[worst] ||
				(c == conflicts[worst] && math.Abs(kept[i].Z-medianZ(kept)) > math.Abs(kept[worst].Z-medianZ(kept)))) {
				worst = i
			}
		}
		if worst < 0 {
			break
		}
		rejected = append(rejected, kept[worst])
		kept = append(kept[:worst], kept[worst+1:]...)
	}
	// Leave-one-out residuals.
	for len(kept) >= 4 {
		worst, wres := -1, 0.0
		others := make([]FocusPoint, 0, len(kept)-1)
		for i := range kept {
			others = append(others[:0], kept[:i]...)
			others = append(others, kept[i+1:]...)
			fm, err := FitFocusMap(others)
			if err != nil {
				continue
			}
			if res := math.Abs(fm.Z(kept[i].X, kept[i].Y) - kept[i].Z); res > wres {
				worst, wres = i, res
			}
		}
		if worst < 0 || wres <= maxResidual {
			break
		}
		rejected = append(rejected, kept[worst])
		kept = append(kept[:worst], kept[worst+1:]...)
	}
	fm, err := FitFocusMap(kept)
	if err != nil {
		return nil, kept, rejected
	}
	fm.withResiduals(kept)
	return fm, kept, rejected
}

func medianZ(pts []FocusPoint) float64 {
	zs := make([]float64, len(pts))
	for i, p := range pts {
		zs[i] = p.Z
	}
	return median(zs)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := append([]float64(nil), v...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}
