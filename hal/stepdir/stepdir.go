package stepdir

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"papscan/hal"
)

// DefaultMaxStepRate is the default and highest step rate the driver
// generates (see the package documentation).
const DefaultMaxStepRate = 2 * physic.KiloHertz

// ErrHalted is returned by Wait when Halt stopped the move.
var ErrHalted = errors.New("move halted")

// ErrBusy is returned by Start while a move is running.
var ErrBusy = errors.New("a move is in progress")

// Pins are the driver chip's lines.
type Pins struct {
	Step, Dir, Enable gpio.PinOut
	Limit             gpio.PinIn
	// EnableActiveLow: ENABLE is active low (A4988, DRV8825: "/EN").
	EnableActiveLow bool
	// LimitActiveLow: the switch pulls its line low when active.
	LimitActiveLow bool
	// LimitPull is the bias programmed on the limit input.
	LimitPull gpio.Pull
	// DirInvert swaps the motor direction (DIR high = reverse).
	DirInvert bool
}

// Options configures an Axis.
type Options struct {
	// Name names the axis in errors and faults. Required.
	Name string
	// StepsPerUM is the number of (micro)steps per µm of travel. Required.
	StepsPerUM float64
	// MaxSpeed and Acceleration (µm/s²) shape the trapezoid. Required.
	MaxSpeed     physic.Speed
	Acceleration float64
	// HomingSpeed is the constant speed towards the switch; 0 means
	// MaxSpeed/4. The axis backs off the switch at a quarter of it.
	HomingSpeed physic.Speed
	// HomingTimeout bounds Home; 0 means 30 s.
	HomingTimeout time.Duration
	// HomeForward: the switch is at the forward end.
	HomeForward bool
	// TravelMin and TravelMax bound targets, measured from home.
	TravelMin, TravelMax physic.Distance
	// Settle is waited after a move, before Wait returns.
	Settle time.Duration
	// MaxStepRate caps the step rate; 0 means DefaultMaxStepRate, which is
	// also the highest accepted.
	MaxStepRate physic.Frequency
	// Backlash, when above zero, makes every target be approached from the
	// same side (forward, or reverse with ApproachReverse): a move that
	// would arrive from the other side first overshoots by Backlash.
	Backlash        physic.Distance
	ApproachReverse bool
}

// Axis is a hal.Axis on a STEP/DIR/ENABLE driver. It is safe for concurrent
// use.
type Axis struct {
	opts  Options
	pins  Pins
	clock hal.Clock
	// Limits in steps, steps/s, steps/s².
	minPos, maxPos int64
	speed, accel   float64
	homeRate       float64

	mu    sync.Mutex
	homed bool
	fault error
	pos   int64 // steps from home, as counted
	// lastDir is the direction of the last step: +1, -1, 0 unknown.
	lastDir  int
	backlash int64 // Options.Backlash in steps
	move     *move
	closed   bool
}

type move struct {
	target int64
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done is closed
	halted bool
}

var _ hal.Axis = (*Axis)(nil)

// running reports whether m's step goroutine is still going.
func (m *move) running() bool {
	if m == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// New takes the pins over, enables the driver and returns an unhomed axis.
func New(pins Pins, clock hal.Clock, o Options) (*Axis, error) {
	if o.Name == "" {
		return nil, errors.New("stepdir: Options.Name is required")
	}
	n := o.Name
	if pins.Step == nil || pins.Dir == nil || pins.Enable == nil || pins.Limit == nil || clock == nil {
		return nil, fmt.Errorf("%s: step, dir, enable and limit pins and a clock are required", n)
	}
	if !(o.StepsPerUM > 0) || math.IsInf(o.StepsPerUM, 0) {
		return nil, fmt.Errorf("%s: StepsPerUM must be > 0, got %g", n, o.StepsPerUM)
	}
	if o.MaxSpeed <= 0 {
		return nil, fmt.Errorf("%s: MaxSpeed must be > 0, got %s", n, o.MaxSpeed)
	}
	if !(o.Acceleration > 0) || math.IsInf(o.Acceleration, 0) {
		return nil, fmt.Errorf("%s: Acceleration must be > 0 µm/s², got %g", n, o.Acceleration)
	}
	if o.HomingSpeed == 0 {
		o.HomingSpeed = o.MaxSpeed / 4
	}
	if o.HomingSpeed <= 0 || o.HomingSpeed > o.MaxSpeed {
		return nil, fmt.Errorf("%s: HomingSpeed must be in (0, MaxSpeed], got %s", n, o.HomingSpeed)
	}
	if o.HomingTimeout == 0 {
		o.HomingTimeout = 30 * time.Second
	}
	if o.HomingTimeout < 0 || o.Settle < 0 {
		return nil, fmt.Errorf("%s: HomingTimeout and Settle must not be negative", n)
	}
	if o.TravelMin >= o.TravelMax {
		return nil, fmt.Errorf("%s: TravelMin %s must be below TravelMax %s", n, o.TravelMin, o.TravelMax)
	}
	if o.MaxStepRate == 0 {
		o.MaxStepRate = DefaultMaxStepRate
	}
	if o.MaxStepRate < 0 || o.MaxStepRate > DefaultMaxStepRate {
		return nil, fmt.Errorf("%s: MaxStepRate must be in (0, %s], got %s", n, DefaultMaxStepRate, o.MaxStepRate)
	}
	a := &Axis{opts: o, pins: pins, clock: clock}
	um := float64(physic.MicroMetrePerSecond)
	a.speed = float64(o.MaxSpeed) / um * o.StepsPerUM
	a.homeRate = float64(o.HomingSpeed) / um * o.StepsPerUM
	a.accel = o.Acceleration * o.StepsPerUM
	if rate := float64(o.MaxStepRate) / float64(physic.Hertz); a.speed > rate {
		return nil, fmt.Errorf("%s: MaxSpeed %s × %g steps/µm = %.0f steps/s exceeds the step rate limit %s",
			n, o.MaxSpeed, o.StepsPerUM, a.speed, o.MaxStepRate)
	}
	a.minPos, a.maxPos = a.steps(o.TravelMin), a.steps(o.TravelMax)
	if o.Backlash < 0 || o.Backlash >= o.TravelMax-o.TravelMin {
		return nil, fmt.Errorf("%s: Backlash %s must be in [0, travel)", n, o.Backlash)
	}
	a.backlash = a.steps(o.Backlash)
	if float64(a.maxPos-a.minPos) > 1<<40 {
		return nil, fmt.Errorf("%s: travel of %d steps is implausible", n, a.maxPos-a.minPos)
	}
	if err := pins.Limit.In(pins.LimitPull, gpio.NoEdge); err != nil {
		return nil, hal.NewFault(n, hal.FaultDriver, fmt.Errorf("limit input: %w", err))
	}
	if err := pins.Step.Out(gpio.Low); err != nil {
		return nil, hal.NewFault(n, hal.FaultDriver, fmt.Errorf("step output: %w", err))
	}
	if err := pins.Dir.Out(gpio.Low); err != nil {
		return nil, hal.NewFault(n, hal.FaultDriver, fmt.Errorf("dir output: %w", err))
	}
	if err := a.enable(true); err != nil {
		return nil, hal.NewFault(n, hal.FaultDriver, err)
	}
	return a, nil
}

func (a *Axis) steps(d physic.Distance) int64 {
	return int64(math.Round(float64(d) / float64(physic.MicroMetre) * a.opts.StepsPerUM))
}

func (a *Axis) distance(s int64) physic.Distance {
	return physic.Distance(math.Round(float64(s) / a.opts.StepsPerUM * float64(physic.MicroMetre)))
}

func (a *Axis) enable(on bool) error {
	if err := a.pins.Enable.Out(gpio.Level(on != a.pins.EnableActiveLow)); err != nil {
		return fmt.Errorf("enable output: %w", err)
	}
	return nil
}

// String implements hal.Axis.
func (a *Axis) String() string { return a.opts.Name }

// Travel implements hal.Axis.
func (a *Axis) Travel() (min, max physic.Distance) { return a.opts.TravelMin, a.opts.TravelMax }

// Homed implements hal.Axis.
func (a *Axis) Homed() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.homed
}

// Fault returns the latched fault, or nil.
func (a *Axis) Fault() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fault
}

// ClearFault clears the latched fault; the axis stays unhomed.
func (a *Axis) ClearFault() error {
	a.mu.Lock()
	a.fault = nil
	a.homed = false
	a.mu.Unlock()
	return nil
}

// Position implements hal.Axis: the counted position (live during a move).
func (a *Axis) Position() (physic.Distance, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.distance(a.pos), nil
}

// Close halts and disables the driver (the motor is free).
func (a *Axis) Close() error {
	err := a.Halt()
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	return errors.Join(err, a.enable(false))
}

// Halt implements hal.Axis: it stops the pulses and returns once the step
// goroutine has stopped. The axis must be homed again.
func (a *Axis) Halt() error {
	a.mu.Lock()
	m := a.move
	a.homed = false
	if m != nil {
		m.halted = true
	}
	a.mu.Unlock()
	if m != nil {
		m.cancel()
		<-m.done
		a.mu.Lock()
		if a.move == m {
			a.move = nil
		}
		a.mu.Unlock()
	}
	return nil
}

// latch records a fault and unhomes the axis. The caller has stopped
// stepping.
func (a *Axis) latch(code hal.FaultCode, cause error) error {
	f := hal.NewFault(a.opts.Name, code, cause)
	a.mu.Lock()
	if a.fault == nil {
		a.fault = f
	}
	a.homed = false
	a.mu.Unlock()
	return f
}

func (a *Axis) limitActive() bool {
	return bool(a.pins.Limit.Read()) != a.pins.LimitActiveLow
}

// setDir drives DIR for a move forward (+1) or reverse (-1).
func (a *Axis) setDir(dir int) error {
	if err := a.pins.Dir.Out(gpio.Level((dir > 0) != a.pins.DirInvert)); err != nil {
		return fmt.Errorf("dir output: %w", err)
	}
	return nil
}

// pulse makes one step: STEP high then low. The two writes are the pulse.
func (a *Axis) pulse() error {
	if err := a.pins.Step.Out(gpio.High); err != nil {
		return fmt.Errorf("step output: %w", err)
	}
	if err := a.pins.Step.Out(gpio.Low); err != nil {
		return fmt.Errorf("step output: %w", err)
	}
	return nil
}

// Home implements hal.Axis: towards the switch at HomingSpeed until it is
// active, then away at a quarter of that speed until it releases; that
// point is zero.
func (a *Axis) Home(ctx context.Context) error {
	n := a.opts.Name
	a.mu.Lock()
	switch {
	case a.fault != nil:
		err := a.fault
		a.mu.Unlock()
		return fmt.Errorf("%s: homing refused: %w", n, err)
	case a.move.running():
		a.mu.Unlock()
		return fmt.Errorf("%s: homing refused: %w", n, ErrBusy)
	case a.closed:
		a.mu.Unlock()
		return fmt.Errorf("%s: homing refused: axis closed", n)
	}
	a.homed = false
	a.mu.Unlock()
	towards := -1
	if a.opts.HomeForward {
		towards = 1
	}
	start := a.clock.Now()
	seek := func(dir int, rate float64, until bool, what string) error {
		if err := a.setDir(dir); err != nil {
			return a.latch(hal.FaultDriver, fmt.Errorf("homing: %w", err))
		}
		period := time.Duration(float64(time.Second) / rate)
		for a.limitActive() != until {
			if el := a.clock.Now().Sub(start); el >= a.opts.HomingTimeout {
				return a.latch(hal.FaultLimit, fmt.Errorf("homing: limit switch %s after %s: %w", what, a.opts.HomingTimeout, hal.ErrTimeout))
			}
			if err := a.clock.Sleep(ctx, period); err != nil {
				return fmt.Errorf("%s: homing: %w", n, err)
			}
			if err := a.pulse(); err != nil {
				return a.latch(hal.FaultDriver, fmt.Errorf("homing: %w", err))
			}
			a.mu.Lock()
			a.pos += int64(dir)
			a.mu.Unlock()
		}
		return nil
	}
	if err := seek(towards, a.homeRate, true, "never triggered"); err != nil {
		return err
	}
	if err := seek(-towards, a.homeRate/4, false, "never released"); err != nil {
		return err
	}
	a.mu.Lock()
	a.pos = 0
	a.homed = true
	a.lastDir = -towards // homing ends moving away from the switch
	a.mu.Unlock()
	return nil
}

// Start implements hal.Axis: it starts the step goroutine.
func (a *Axis) Start(target physic.Distance) error {
	n := a.opts.Name
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.fault != nil:
		return fmt.Errorf("%s: move to %s refused: %w", n, target, a.fault)
	case !a.homed:
		return fmt.Errorf("%s: move to %s refused: %w", n, target, hal.ErrNotHomed)
	case a.move.running():
		return fmt.Errorf("%s: move to %s refused: %w", n, target, ErrBusy)
	}
	to := a.steps(target)
	if target < a.opts.TravelMin || target > a.opts.TravelMax || to < a.minPos || to > a.maxPos {
		return fmt.Errorf("%s: move to %s refused: travel is %s..%s: %w", n, target, a.opts.TravelMin, a.opts.TravelMax, hal.ErrOutOfTravel)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &move{target: to, cancel: cancel, done: make(chan struct{})}
	a.move = m
	from := a.pos
	leg := a.firstLeg(from, to, a.lastDir)
	go func() {
		defer close(m.done)
		defer cancel()
		if leg != to {
			// Backlash compensation: overshoot, then approach.
			if m.err = a.run(ctx, from, leg); m.err != nil {
				return
			}
			a.setLastDir(leg - from)
			from = leg
		}
		m.err = a.run(ctx, from, to)
		a.setLastDir(to - from)
	}()
	return nil
}

func (a *Axis) setLastDir(d int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case d > 0:
		a.lastDir = 1
	case d < 0:
		a.lastDir = -1
	}
}

// firstLeg is where a move from prev to target goes first: target, or with
// backlash compensation the overshoot point target-approach×backlash when
// the move would arrive from the wrong side, or from the right side after
// a reversal by less than the backlash. Clamped to the travel. a.mu held.
func (a *Axis) firstLeg(prev, target int64, lastDir int) int64 {
	if a.backlash <= 0 || target == prev {
		return target
	}
	ap := int64(1)
	if a.opts.ApproachReverse {
		ap = -1
	}
	d := target - prev
	if d*ap > 0 && (int64(lastDir) == ap || d*ap >= a.backlash) {
		return target
	}
	return min(max(target-ap*a.backlash, a.minPos), a.maxPos)
}

// ProfileTime is the time, from the start of a trapezoidal move of d steps
// with top speed v (steps/s) and acceleration acc (steps/s²), at which the
// carriage passes s steps (0 <= s <= d). It is a triangle when d is too
// short to reach v.
func ProfileTime(s, d, v, acc float64) float64 {
	da := v * v / (2 * acc)
	if 2*da >= d {
		tp := math.Sqrt(d / acc)
		if s <= d/2 {
			return math.Sqrt(2 * s / acc)
		}
		return 2*tp - math.Sqrt(2*(d-s)/acc)
	}
	ta := v / acc
	switch {
	case s <= da:
		return math.Sqrt(2 * s / acc)
	case s <= d-da:
		return ta + (s-da)/v
	}
	return 2*ta + (d-2*da)/v - math.Sqrt(2*(d-s)/acc)
}

// run steps from from to to on the trapezoid; pulse k (1-based) goes out at
// ProfileTime(k-0.5) after the start.
func (a *Axis) run(ctx context.Context, from, to int64) error {
	where := a.distance(to)
	dir := 1
	if to < from {
		dir = -1
	}
	total := to - from
	if total < 0 {
		total = -total
	}
	if total == 0 {
		return nil
	}
	if err := a.setDir(dir); err != nil {
		return a.latch(hal.FaultDriver, fmt.Errorf("move to %s: %w", where, err))
	}
	towardsSwitch := (dir < 0) != a.opts.HomeForward
	start := a.clock.Now()
	d := float64(total)
	for k := int64(1); k <= total; k++ {
		at := start.Add(time.Duration(ProfileTime(float64(k)-0.5, d, a.speed, a.accel) * float64(time.Second)))
		if err := a.clock.Sleep(ctx, at.Sub(a.clock.Now())); err != nil {
			return fmt.Errorf("%s: move to %s: %w", a.opts.Name, where, ErrHalted)
		}
		if now := a.clock.Now(); now.After(at) {
			// Woken late: shift the rest of the schedule, so the next
			// interval is the profile's, instead of catching up with a
			// burst of pulses the motor cannot follow.
			start = start.Add(now.Sub(at))
		}
		if towardsSwitch && a.limitActive() {
			return a.latch(hal.FaultLimit, fmt.Errorf("move to %s: limit switch active at %s (outside homing)", where, a.distance(a.pos)))
		}
		if err := a.pulse(); err != nil {
			return a.latch(hal.FaultDriver, fmt.Errorf("move to %s: %w", where, err))
		}
		a.mu.Lock()
		a.pos += int64(dir)
		a.mu.Unlock()
	}
	// The rotor finishes its last step by the end of the profile.
	end := start.Add(time.Duration(ProfileTime(d, d, a.speed, a.accel) * float64(time.Second)))
	if err := a.clock.Sleep(ctx, end.Sub(a.clock.Now())); err != nil {
		return fmt.Errorf("%s: move to %s: %w", a.opts.Name, where, ErrHalted)
	}
	return nil
}

// Wait implements hal.Axis.
func (a *Axis) Wait(ctx context.Context) error {
	a.mu.Lock()
	m := a.move
	f := a.fault
	a.mu.Unlock()
	if m == nil {
		return f
	}
	select {
	case <-m.done:
	case <-ctx.Done():
		_ = a.Halt()
		return fmt.Errorf("%s: move to %s: %w", a.opts.Name, a.distance(m.target), ctx.Err())
	}
	a.mu.Lock()
	if a.move == m {
		a.move = nil
	}
	halted := m.halted
	a.mu.Unlock()
	if m.err != nil {
		return m.err
	}
	if halted {
		return fmt.Errorf("%s: move to %s: %w", a.opts.Name, a.distance(m.target), ErrHalted)
	}
	if err := a.clock.Sleep(ctx, a.opts.Settle); err != nil {
		return fmt.Errorf("%s: settle: %w", a.opts.Name, err)
	}
	return nil
}
