package scan

import (
	"context"
	"fmt"
	"image"
	"math"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
)

// zSweeper returns the focus axis and the camera's frame timer when a
// focus bracket can be swept (Z crossing the bracket at constant speed
// while the free-running camera takes its frames) instead of stepped (Z
// moved, settled and waited for between frames): a Tic focus that can
// cruise and a camera that timestamps its frames.
func (s *Scanner) zSweeper() (hal.SweepAxis, hal.FrameTimer, bool) {
	af, ok := s.m.Focus.(hal.AxisFocus)
	if !ok || s.o.Motion.FrameInterval <= 0 || !(s.o.Motion.Z.Speed > 0) {
		return nil, nil, false
	}
	ax, ok := af.Axis.(hal.SweepAxis)
	if !ok {
		return nil, nil, false
	}
	tm, ok := s.m.Camera.(hal.FrameTimer)
	if !ok {
		return nil, nil, false
	}
	return ax, tm, true
}

// sweepStopAhead is how far ahead of its last read position (µm) a
// sweep is stopped: beyond the few tenths it takes to brake from a focus
// step per frame interval and the read's age.
const sweepStopAhead = 1.0

// sweepSample is one frame of a swept bracket: the focus at the middle of
// its exposure and its sharpness.
type sweepSample struct{ z, s float64 }

// sweepUp climbs from z0 (where the axis stands, approached from below,
// with a frame of sharpness s0 already taken there) towards zTop at one
// focus step per frame interval, taking a frame on each of the camera's
// frame slots, until the sharpness has passed a peak. Each frame's focus
// is the Tic's counted position, read after the frame, taken back along
// the sweep speed to the middle of the frame's exposure (its timestamp).
// A stepped bracket spends a move, a settle and the wait for the next
// frame slot on every frame (two frame intervals at 30 frames/s); the
// sweep spends one.
//
// It returns the samples in rising Z (the first is z0), with passed true
// when the best has a lower one on either side (a peak inside); false
// when the second is already lower than z0's (the peak is not above) or
// the sweep reached zTop still rising. The axis is left braking to a stop
// just ahead, at its configured speed again: the next move of the focus
// takes it over (and its Wait attends it).
func (s *Scanner) sweepUp(ctx context.Context, r *Report, ax hal.SweepAxis, tm hal.FrameTimer, z0, s0, zTop float64, buf **image.RGBA) (samples []sweepSample, passed bool, err error) {
	iv := s.o.Motion.FrameInterval
	v := math.Min(s.o.FocusStep/iv.Seconds(), s.o.Motion.Z.Speed) // µm/s
	samples = []sweepSample{{z0, s0}}
	if err := ax.SetCruise(physic.Speed(v * float64(physic.MicroMetrePerSecond))); err != nil {
		return samples, false, err
	}
	t0 := s.m.Clock.Now()
	if err := ax.Start(dist(zTop)); err != nil {
		_ = ax.SetCruise(0)
		return samples, false, err
	}
	r.Timing.Motion += s.m.Clock.Now().Sub(t0)
	best := 0
	for {
		img, cerr := s.capture(ctx, r, *buf)
		if cerr != nil {
			err = cerr
			break
		}
		*buf = img
		r.Focus.Frames++
		mid := tm.LastFrame().Timestamp.Add(s.o.Motion.Exposure / 2)
		t1 := s.m.Clock.Now()
		pos, moving, perr := ax.Poll()
		r.Timing.Motion += s.m.Clock.Now().Sub(t1)
		if perr != nil {
			err = perr
			break
		}
		if !moving {
			// At zTop: the frame may have been taken on the way or
			// standing; the climb is over without a peak.
			break
		}
		z := um(pos) - v*s.m.Clock.Now().Sub(mid).Seconds()
		samples = append(samples, sweepSample{z, Sharpness(img)})
		k := len(samples) - 1
		if samples[k].s > samples[best].s {
			best = k
			continue
		}
		// Past a peak; or falling from z0 on: the peak lies below (or
		// just above) z0, and the caller brackets it from there.
		passed = best > 0
		break
	}
	// Restore the speed for the next moves and stop the climb a little
	// ahead, in its own direction (no reversal, no backlash leg): not
	// waited for, the next move takes it over (focusMap waits for it at
	// its end).
	if cerr := ax.SetCruise(0); cerr != nil && err == nil {
		err = cerr
	}
	if err == nil {
		t2 := s.m.Clock.Now()
		if pos, _, perr := ax.Poll(); perr != nil {
			err = perr
		} else {
			err = ax.Start(dist(math.Min(zTop, um(pos)+sweepStopAhead)))
		}
		r.Timing.Motion += s.m.Clock.Now().Sub(t2)
	}
	if err != nil {
		return samples, false, fmt.Errorf("focus sweep: %w", err)
	}
	s.log.Debug("focus sweep", "slide", r.SlideID, "from_um", z0, "samples", samples, "passed", passed)
	return samples, passed, nil
}

// sweptBracket is focusNearFrom's coarse bracket, swept: from zp - step
// (where the axis stands, its frame's sharpness sBelow) up through the
// prediction zp until the sharpness has passed its peak, at most to zTop.
// A peak below the start is swept for from two steps lower (the axis
// moved there from below, against backlash, and a frame taken), down to
// zBottom. The peak is the Gaussian through the best frame and its
// neighbours. A climb that reaches zTop still rising, or a peak below
// zBottom, is ErrNoFocusPeak (the caller widens to the full sweep). It is
// the one autofocus operation focusNearFrom counted.
func (s *Scanner) sweptBracket(ctx context.Context, r *Report, ax hal.SweepAxis, tm hal.FrameTimer, zp, sBelow, zBottom, zTop float64, buf **image.RGBA) (float64, error) {
	step := s.o.FocusStep
	z0, s0 := zp-step, sBelow
	for {
		smp, passed, err := s.sweepUp(ctx, r, ax, tm, z0, s0, zTop, buf)
		if err != nil {
			return 0, err
		}
		if passed {
			return s.sweptPeak(ctx, r, smp, zp, buf)
		}
		if len(smp) != 2 || smp[1].s >= smp[0].s {
			return 0, fmt.Errorf("%w: sharpness still rising at %.1f µm, swept up from %.1f µm (prediction %.1f µm)", ErrNoFocusPeak, smp[len(smp)-1].z, z0, zp)
		}
		// Sharpest at the start: the peak is below (or just above) it.
		zTop = smp[1].z + 2*step
		if z0 -= 2 * step; z0 < zBottom {
			return 0, fmt.Errorf("%w: sharpness still rising below %.1f µm (prediction %.1f µm)", ErrNoFocusPeak, z0+2*step, zp)
		}
		if s0, err = s.shoot(ctx, r, z0, buf); err != nil {
			return 0, err
		}
	}
}

// sweptPeak places the focus from a swept bracket's samples whose best
// has a lower neighbour on either side: the Gaussian through the three.
// A flat curve goes to the full sweep around zp (the same operation).
func (s *Scanner) sweptPeak(ctx context.Context, r *Report, smp []sweepSample, zp float64, buf **image.RGBA) (float64, error) {
	step := s.o.FocusStep
	b := 0
	for i := range smp {
		if smp[i].s > smp[b].s {
			b = i
		}
	}
	z, flat := bracketPeak([]float64{smp[b-1].z, smp[b].z, smp[b+1].z}, []float64{smp[b-1].s, smp[b].s, smp[b+1].s}, step)
	if flat {
		r.Focus.Ops--
		return s.autofocus(ctx, r, zp, localRangeSteps*step, buf)
	}
	return z, nil
}
