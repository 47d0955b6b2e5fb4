package ticaxis

import (
	"fmt"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/ticaxis/ticspec"
)

var _ hal.SweepAxis = (*Axis)(nil)

// SetCruise implements hal.SweepAxis: it reprograms the Tic's maximum
// speed for the moves started from now on (a move under way keeps the
// planner's current limit until its next target). 0 restores
// Options.MaxSpeed; a speed above it is refused.
func (a *Axis) SetCruise(v physic.Speed) error {
	n := a.opts.Name
	if v < 0 || v > a.opts.MaxSpeed {
		return fmt.Errorf("%s: cruise speed %s outside (0, %s]", n, v, a.opts.MaxSpeed)
	}
	if v == 0 {
		v = a.opts.MaxSpeed
	}
	speed, ok := ticspec.SpeedUnits(float64(v) / float64(physic.MicroMetrePerSecond) * a.opts.MicrostepsPerUM)
	if !ok {
		return fmt.Errorf("%s: cruise speed %s is outside the Tic's 1..%d microsteps per 10,000 s", n, v, ticspec.MaxSpeedUnits)
	}
	if err := a.config(func() error { return a.dev.SetMaxSpeed(uint32(speed)) }); err != nil {
		return a.latch(hal.FaultBus, fmt.Errorf("set cruise speed %s: %w", v, err))
	}
	a.mu.Lock()
	a.speed = float64(speed) / ticspec.SpeedScale
	a.mu.Unlock()
	return nil
}

// Poll implements hal.SweepAxis. It reads the error status first (feeding
// the dead-man would clear a command timeout that already fired), then
// the flags, velocity and position, as Wait's polls do. A move
// that outlives its time budget is a motion fault (a stalled stage).
func (a *Axis) Poll() (physic.Distance, bool, error) {
	a.mu.Lock()
	if a.fault != nil {
		err := a.fault
		a.mu.Unlock()
		return 0, false, err
	}
	holding, target, start, budget := a.holding, a.target, a.moveStart, a.budget
	a.mu.Unlock()
	st, err := a.errorStatus()
	if err != nil {
		return 0, false, a.latch(hal.FaultBus, fmt.Errorf("poll: %w", err))
	}
	if st != 0 {
		return 0, false, a.latch(ticErrCode(st), fmt.Errorf("poll: tic error: %s", DecodeErrors(st)))
	}
	a.keepalive()
	flags, err := a.miscFlags()
	if err != nil {
		return 0, false, a.latch(hal.FaultBus, fmt.Errorf("poll: %w", err))
	}
	if flags&(flagForwardLimit|flagReverseLimit|flagPositionUncertain) != 0 || flags&flagEnergized == 0 {
		return 0, false, a.latch(flagsCode(flags), fmt.Errorf("poll: tic reports %s", decodeFlags(flags)))
	}
	// Velocity first: the position is the last read, so it is the
	// position at the moment Poll returns (each transfer takes its time
	// on the bus).
	var pos, vel int32
	if err := a.read(func() (err error) { vel, err = a.dev.GetCurrentVelocity(); return }); err != nil {
		return 0, false, a.latch(hal.FaultBus, fmt.Errorf("poll: read velocity: %w", err))
	}
	if err := a.read(func() (err error) { pos, err = a.dev.GetCurrentPosition(); return }); err != nil {
		return 0, false, a.latch(hal.FaultBus, fmt.Errorf("poll: read position: %w", err))
	}
	moving := holding && (pos != target || vel != 0)
	if moving {
		if el := a.clock.Now().Sub(start); el > budget {
			return a.toDistance(pos), false, a.latch(hal.FaultMotion, fmt.Errorf("move to %s: still at %s after %s (expected under %s): %w",
				a.toDistance(target), a.toDistance(pos), el, budget, hal.ErrTimeout))
		}
	}
	return a.toDistance(pos), moving, nil
}
