package ticemu

import (
	"math"
	"time"

	"periph.io/x/devices/v3/tic"

	"papscan/hal/ticaxis/ticspec"
)

const twoPow32 = 1 << 32

// advance brings the emulation up to the clock's now. The motion is
// integrated in steps of 1 ms (the profile the Tic's planner follows, to
// within one step of the integration); idle stretches are skipped in one go.
// Caller holds t.mu.
func (t *Tic) advance() {
	now := t.clock.Now()
	for t.now.Before(now) {
		if t.idle() {
			// Nothing moves: jump to the next event (command timeout, end
			// of the exit-safe-start window) or to now.
			next := now
			if dl, ok := t.timeoutDeadline(); ok && dl.Before(next) {
				next = dl
			}
			if t.exitSafeUntil.After(t.now) && t.exitSafeUntil.Before(next) {
				next = t.exitSafeUntil
			}
			if !next.After(t.now) {
				next = t.now.Add(time.Nanosecond)
			}
			t.now = next
			t.checkTimeout()
			t.updateConditions()
			continue
		}
		dt := tick
		if rest := now.Sub(t.now); rest < dt {
			dt = rest
		}
		t.step(dt.Seconds())
		t.now = t.now.Add(dt)
		t.checkTimeout()
		t.updateConditions()
	}
}

func (t *Tic) timeoutDeadline() (time.Time, bool) {
	if t.opts.CommandTimeout <= 0 || t.errStatus&ErrCommandTimeout != 0 {
		return time.Time{}, false
	}
	return t.lastCmd.Add(t.opts.CommandTimeout), true
}

func (t *Tic) checkTimeout() {
	if dl, ok := t.timeoutDeadline(); ok && !t.now.Before(dl) {
		t.raise(ErrCommandTimeout)
	}
}

// idle reports whether the next tick would change nothing but the clock.
func (t *Tic) idle() bool {
	if t.v != 0 {
		return false
	}
	if t.errStatus != 0 {
		return true
	}
	if t.homing != homingNone {
		return false
	}
	switch t.planning {
	case tic.PlanningModeTargetPosition:
		return wrapDiff(float64(t.targetPos)-t.x) == 0 || t.blocked(sign(wrapDiff(float64(t.targetPos)-t.x)))
	case tic.PlanningModeTargetVelocity:
		return t.targetVel == 0 || t.blocked(sign(float64(t.targetVel)))
	}
	return true
}

// blocked reports whether a limit switch forbids motion in direction dir.
func (t *Tic) blocked(dir float64) bool {
	return (dir < 0 && t.revActive()) || (dir > 0 && t.fwdActive())
}

func (t *Tic) accel() float64 { return float64(t.maxAccel) / ticspec.AccelScale }

func (t *Tic) decel() float64 {
	if t.maxDecel == 0 {
		return t.accel()
	}
	return float64(t.maxDecel) / ticspec.AccelScale
}

// step advances the motion by dt seconds. Caller has checked errStatus.
func (t *Tic) step(dt float64) {
	if t.errStatus != 0 {
		t.v = 0
		return
	}
	vmax := float64(t.maxSpeed) / ticspec.SpeedScale
	vstart := float64(t.startSpeed) / ticspec.SpeedScale
	var vdes float64 // desired velocity, microsteps/s
	snapTarget := false
	switch {
	case t.homing == homingTowards:
		vdes = float64(t.opts.HomingSpeedTowards) / ticspec.SpeedScale
		if !t.homeForward {
			vdes = -vdes
		}
	case t.homing == homingPaused:
		vdes = 0
		t.v = 0
		if !t.now.Before(t.homingPauseEnd) {
			t.homing = homingAway
		}
		return
	case t.homing == homingAway:
		vdes = float64(t.opts.HomingSpeedAway) / ticspec.SpeedScale
		if t.homeForward {
			vdes = -vdes
		}
	case t.planning == tic.PlanningModeTargetVelocity:
		vdes = math.Max(-vmax, math.Min(vmax, float64(t.targetVel)/ticspec.SpeedScale))
	case t.planning == tic.PlanningModeTargetPosition:
		rem := wrapDiff(float64(t.targetPos) - t.x)
		if rem == 0 && t.v == 0 {
			return
		}
		dir := sign(rem)
		if t.v*dir < 0 {
			vdes = 0 // moving away from the target: stop first
		} else {
			// Fastest speed from which the decel limit still stops at the
			// target: the trapezoid's deceleration ramp.
			vdes = dir * math.Min(vmax, stopSpeed(math.Abs(t.v), math.Abs(rem), t.decel(), dt))
			snapTarget = true
		}
	default:
		vdes = 0
	}
	nv := ramp(t.v, vdes, t.accel()*dt, t.decel()*dt, vstart)
	if t.blocked(sign(nv)) {
		nv = 0 // a limit switch stops motion towards it at once
	}
	dx := (t.v + nv) / 2 * dt
	snapped := false
	if snapTarget {
		rem := wrapDiff(float64(t.targetPos) - t.x)
		if math.Abs(dx) >= math.Abs(rem) || math.Abs(nv)*dt >= math.Abs(rem) {
			dx, nv = rem, 0
			snapped = true
		}
	}
	t.v = nv
	t.move(dx)
	if snapped {
		t.x = float64(t.targetPos) // exactly on target, no rounding residue
	}

	// Limit switches.
	switch {
	case t.homing == homingTowards && ((t.homeForward && t.fwdActive()) || (!t.homeForward && t.revActive())):
		t.v = 0
		t.homing = homingPaused
		t.homingPauseEnd = t.now.Add(homingPauseTime)
	case t.homing == homingAway && ((t.homeForward && !t.fwdActive()) || (!t.homeForward && !t.revActive())):
		// Section 5.6 steps 7-9: halt, position 0, position certain.
		t.v = 0
		t.x = 0
		t.uncertain = false
		t.homing = homingNone
		t.planning = tic.PlanningModeOff
		t.inputState = tic.InputStateHalt
	case t.blocked(sign(t.v)):
		t.v = 0
	}
}

// stopSpeed is the speed to end this step with so that the deceleration
// limit d still stops the motor exactly rem microsteps on: the nv solving
// nv² = 2·d·(rem − (v+nv)/2·dt), i.e. the trapezoid's deceleration ramp
// sampled at the end of the step rather than at its start.
func stopSpeed(v, rem, d, dt float64) float64 {
	c := rem - v*dt/2
	if c <= 0 {
		return 0
	}
	return (-d*dt + math.Sqrt(d*d*dt*dt+8*d*c)) / 2
}

// ramp moves velocity v towards vdes within the acceleration (da) and
// deceleration (dd) budgets of one step; below the starting speed vs the
// velocity may change instantly (section 5.1, "Starting speed").
func ramp(v, vdes, da, dd, vs float64) float64 {
	if v == vdes {
		return v
	}
	speeding := math.Abs(vdes) > math.Abs(v) && v*vdes >= 0
	if speeding {
		nv := v + sign(vdes)*da
		if math.Abs(v) < vs {
			nv = sign(vdes) * math.Max(math.Abs(nv), math.Min(vs, math.Abs(vdes)))
		}
		if math.Abs(nv) > math.Abs(vdes) {
			nv = vdes
		}
		return nv
	}
	// Slowing down (possibly through zero).
	if math.Abs(vdes) <= vs && math.Abs(v) <= vs {
		return vdes
	}
	nv := v - sign(v)*dd
	if v*vdes >= 0 && math.Abs(nv) < math.Abs(vdes) {
		return vdes
	}
	if nv*v < 0 { // crossed zero: stop this step
		return 0
	}
	return nv
}

// move takes dx commanded microsteps: the counter follows them, the carriage
// follows unless steps are being lost or it is against the hard stop.
func (t *Tic) move(dx float64) {
	t.x += dx
	if t.x >= twoPow32/2 {
		t.x -= twoPow32
	} else if t.x < -twoPow32/2 {
		t.x += twoPow32
	}
	if dx != 0 {
		t.lastStepAt = t.now
	}
	lost := math.Min(math.Abs(dx), t.stallLeft)
	t.stallLeft -= lost
	eff := dx - sign(dx)*lost
	lo, hi := -t.opts.OvertravelSteps, t.opts.TravelSteps+t.opts.OvertravelSteps
	b := t.opts.BacklashSteps
	// The motor turns; the carriage is pushed along only once the nut's
	// play is taken up, and stops at the hard stops (where the motor
	// stalls too).
	t.motor += eff / float64(microstepsPerStep(t.stepMode))
	t.motor = math.Max(lo, math.Min(hi+b, t.motor))
	t.phys = math.Max(t.motor-b, math.Min(t.motor, t.phys))
	t.phys = math.Max(lo, math.Min(hi, t.phys))
}

func sign(f float64) float64 {
	switch {
	case f > 0:
		return 1
	case f < 0:
		return -1
	}
	return 0
}

// wrapDiff maps a difference of int32 positions onto the shortest way round,
// as the Tic does (section 5.1, "Position").
func wrapDiff(d float64) float64 {
	if d >= twoPow32/2 {
		return d - twoPow32
	}
	if d < -twoPow32/2 {
		return d + twoPow32
	}
	return d
}
