package ticaxis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/tic"

	"papscan/hal"
	"papscan/hal/ticaxis/ticspec"
)

// ErrHalted is returned by Wait when Halt stopped the move it was waiting for.
var ErrHalted = errors.New("move halted")

// Options configures an Axis. Zero values get the documented defaults where
// one is given; New rejects the others.
type Options struct {
	// Name names the axis in every error ("x", "y", "z"). Required.
	Name string
	// Address is the Tic's 7-bit I²C address; 0 means tic.I2CAddr (0x0E).
	Address uint16
	// Variant is the Tic model. Required.
	Variant tic.Variant
	// MicrostepsPerUM is the number of microsteps, in StepMode, per µm of
	// carriage travel (e.g. 200 steps/rev, 1/8 step, 8 mm lead: 0.2).
	MicrostepsPerUM float64
	// StepMode is programmed into the Tic; MicrostepsPerUM must match it.
	StepMode tic.StepMode
	// CurrentLimit is the coil current limit. Required (> 0).
	CurrentLimit physic.ElectricCurrent
	// MaxSpeed is the carriage's top speed. Required (> 0).
	MaxSpeed physic.Speed
	// Acceleration is the carriage's acceleration limit in µm/s². Required.
	Acceleration float64
	// Deceleration is the deceleration limit in µm/s²; 0 means Acceleration.
	Deceleration float64
	// HomingTimeout bounds Home; 0 means 30 s.
	HomingTimeout time.Duration
	// HomeForward homes against the forward limit switch instead of the
	// reverse one.
	HomeForward bool
	// Settle is the time the carriage needs to come to rest after the
	// Tic arrives at the target. It runs from the arrival (the Tic's own
	// planned arrival, never before a poll that saw it moving), so a Wait
	// called late, as the second axis of a Stage.MoveTo, waits only what
	// is left of it.
	Settle time.Duration
	// PollInterval is the status polling period; 0 means 5 ms.
	PollInterval time.Duration
	// TravelMin and TravelMax bound move targets, measured from home.
	TravelMin, TravelMax physic.Distance
	// CommandTimeout is the Tic's configured "Command timeout" (its
	// dead-man); 0 means the feature is disabled on the Tic. New checks it
	// against the Tic's setting. While the driver holds a move or homes, it
	// sends a command at least every CommandTimeout/2.
	CommandTimeout time.Duration
	// Group, if set, is shared with the other axes moved together with
	// this one (see Group); nil means the axis stands alone.
	Group *Group
	// Backlash is the lost motion of the axis's screw and nut. When it is
	// above zero, every target is approached from the same side (see
	// ApproachReverse): a move that would arrive from the other side first
	// overshoots the target by Backlash, then comes back. 0 disables it.
	Backlash physic.Distance
	// ApproachReverse makes targets be approached moving in the reverse
	// direction (towards TravelMin); the default is forward, the direction
	// in which the Tic's reverse homing leaves the switch, so positions and
	// the home reference carry the same backlash offset.
	ApproachReverse bool
}

// Axis is a hal.Axis on a Pololu Tic over I²C. It is safe for concurrent
// use; Halt in particular may be called from any goroutine at any time.
type Axis struct {
	opts   Options
	bus    i2c.Bus
	clock  hal.Clock
	dev    *tic.Dev
	maxPos int64 // |int32| bounds of travel, microsteps
	minPos int64
	// Programmed motion limits, in microsteps/s and microsteps/s².
	speed, accel, decel float64

	io sync.Mutex // serialises this axis's I²C transactions

	mu        sync.Mutex
	homed     bool
	fault     error
	holding   bool  // a move or homing is in progress: keep the dead-man fed
	target    int32 // the leg being driven now (the overshoot point, or final)
	final     int32 // the move's target
	lastDir   int   // direction of the last leg: +1 forward, -1 reverse, 0 unknown
	backlash  int64 // Options.Backlash in microsteps
	moveStart time.Time
	budget    time.Duration
	// arriveBy is when the leg being driven to the final target arrives at
	// the latest by the Tic's own planner (trapezoid from rest at the
	// programmed limits, plus a margin); zero when unknown (an overshoot
	// leg is still to come, or the move started while the axis moved).
	// The settle runs from then, so an axis that arrived while another was
	// waited for has already settled part of the way when it is waited for.
	arriveBy time.Time
	haltGen  uint64
	lastCmd  time.Time
}

var _ hal.Axis = (*Axis)(nil)

// New connects to the Tic, configures it and energizes the motor. The axis
// is not homed.
//
// Init sequence: (connection check) → Halt and hold → Set step mode → Set
// current limit → Set max speed → Set max acceleration → Set max
// deceleration → Get setting "command timeout" (checked against
// opts.CommandTimeout) → Energize → Exit safe start → Get error status (must
// be 0).
func New(bus i2c.Bus, clock hal.Clock, opts Options) (*Axis, error) {
	if bus == nil || clock == nil {
		return nil, fmt.Errorf("ticaxis %q: nil bus or clock", opts.Name)
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	a := &Axis{opts: opts, bus: bus, clock: clock}
	n := opts.Name
	u, err := opts.ticUnits()
	if err != nil {
		return nil, err
	}
	a.speed, a.accel, a.decel = float64(u.speed)/ticspec.SpeedScale, float64(u.accel)/ticspec.AccelScale, float64(u.decel)/ticspec.AccelScale
	a.minPos, a.maxPos, a.backlash = u.minPos, u.maxPos, u.backlash
	speed, acc, dec := u.speed, u.accel, u.decel

	dev, err := tic.NewI2C(bus, opts.Variant, opts.Address)
	if err != nil {
		return nil, hal.NewFault(n, hal.FaultBus, fmt.Errorf("tic at 0x%02X: %w", opts.Address, err))
	}
	a.dev = dev
	steps := []struct {
		what string
		do   func() error
	}{
		{"halt and hold", dev.HaltAndHold},
		{"set step mode", func() error { return dev.SetStepMode(opts.StepMode) }},
		{"set current limit", func() error { return dev.SetCurrentLimit(opts.CurrentLimit) }},
		{"set max speed", func() error { return dev.SetMaxSpeed(uint32(speed)) }},
		{"set max acceleration", func() error { return dev.SetMaxAccel(uint32(acc)) }},
		{"set max deceleration", func() error { return dev.SetMaxDecel(uint32(dec)) }},
	}
	for i, s := range steps {
		send := a.config
		if i == 0 {
			send = a.write
		}
		if err := send(s.do); err != nil {
			return nil, hal.NewFault(n, hal.FaultBus, fmt.Errorf("init: %s: %w", s.what, err))
		}
	}
	var setting []byte
	if err := a.read(func() (err error) {
		setting, err = dev.GetSetting(0x09, 2) // "Command timeout", u16 ms
		return err
	}); err != nil {
		return nil, hal.NewFault(n, hal.FaultBus, fmt.Errorf("init: read command timeout setting: %w", err))
	}
	tiC := time.Duration(int(setting[0])|int(setting[1])<<8) * time.Millisecond
	if tiC != opts.CommandTimeout.Truncate(time.Millisecond) {
		return nil, fmt.Errorf("%s: CommandTimeout option is %s but the Tic's setting is %s", n, opts.CommandTimeout, tiC)
	}
	if err := a.write(dev.Energize); err != nil {
		return nil, hal.NewFault(n, hal.FaultBus, fmt.Errorf("init: energize: %w", err))
	}
	if err := a.write(dev.ExitSafeStart); err != nil {
		return nil, hal.NewFault(n, hal.FaultBus, fmt.Errorf("init: exit safe start: %w", err))
	}
	st, err := a.errorStatus()
	if err != nil {
		return nil, hal.NewFault(n, hal.FaultBus, fmt.Errorf("init: %w", err))
	}
	if st != 0 {
		return nil, hal.NewFault(n, hal.FaultDriver, fmt.Errorf("init: tic error: %s", DecodeErrors(st)))
	}
	return a, nil
}

func (o *Options) check() error {
	if o.Name == "" {
		return errors.New("ticaxis: Options.Name is required")
	}
	n := o.Name
	if o.Address == 0 {
		o.Address = tic.I2CAddr
	}
	if o.Address > 0x7F {
		return fmt.Errorf("%s: Address 0x%X is not a 7-bit I2C address", n, o.Address)
	}
	// The Tic's facts are ticspec's, as firmware-config's validator's.
	variant, ok := ticspec.ByModel(string(o.Variant))
	if !ok {
		return fmt.Errorf("%s: Variant %q is not a Tic model", n, o.Variant)
	}
	if !(o.MicrostepsPerUM > 0) || math.IsInf(o.MicrostepsPerUM, 0) {
		return fmt.Errorf("%s: MicrostepsPerUM must be > 0, got %g", n, o.MicrostepsPerUM)
	}
	if !variant.TakesCode(uint8(o.StepMode)) {
		return fmt.Errorf("%s: StepMode %d is not a step mode of the %s", n, o.StepMode, o.Variant)
	}
	if o.CurrentLimit <= 0 || o.CurrentLimit > variant.MaxCurrent {
		return fmt.Errorf("%s: CurrentLimit must be in (0, %s] for the %s, got %s", n, variant.MaxCurrent, o.Variant, o.CurrentLimit)
	}
	if o.MaxSpeed <= 0 {
		return fmt.Errorf("%s: MaxSpeed must be > 0, got %s", n, o.MaxSpeed)
	}
	if !(o.Acceleration > 0) || math.IsInf(o.Acceleration, 0) {
		return fmt.Errorf("%s: Acceleration must be > 0 µm/s², got %g", n, o.Acceleration)
	}
	if o.Deceleration == 0 {
		o.Deceleration = o.Acceleration
	}
	if !(o.Deceleration > 0) || math.IsInf(o.Deceleration, 0) {
		return fmt.Errorf("%s: Deceleration must be > 0 µm/s², got %g", n, o.Deceleration)
	}
	if o.HomingTimeout == 0 {
		o.HomingTimeout = 30 * time.Second
	}
	if o.HomingTimeout < 0 {
		return fmt.Errorf("%s: HomingTimeout must be > 0, got %s", n, o.HomingTimeout)
	}
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Millisecond
	}
	if o.PollInterval < 0 || o.Settle < 0 {
		return fmt.Errorf("%s: PollInterval and Settle must not be negative", n)
	}
	if o.TravelMin >= o.TravelMax {
		return fmt.Errorf("%s: TravelMin %s must be below TravelMax %s", n, o.TravelMin, o.TravelMax)
	}
	if o.Backlash < 0 || o.Backlash >= o.TravelMax-o.TravelMin {
		return fmt.Errorf("%s: Backlash %s must be in [0, travel)", n, o.Backlash)
	}
	if o.CommandTimeout < 0 || o.CommandTimeout > 60*time.Second {
		return fmt.Errorf("%s: CommandTimeout %s outside 0..60s", n, o.CommandTimeout)
	}
	if o.CommandTimeout > 0 && o.PollInterval > o.CommandTimeout/4 {
		return fmt.Errorf("%s: PollInterval %s too long for CommandTimeout %s (max a quarter)", n, o.PollInterval, o.CommandTimeout)
	}
	return nil
}

// units are the options in the Tic's integer units.
type units struct {
	speed, accel, decel      int64 // microsteps per 10,000 s; per 100 s²
	minPos, maxPos, backlash int64 // microsteps
}

// ticUnits converts the checked options into the Tic's units (ticspec:
// speeds in microsteps per 10,000 s, accelerations per 100 s², rounded)
// and checks their ranges.
func (o *Options) ticUnits() (units, error) {
	n := o.Name
	var u units
	var ok bool
	if u.speed, ok = ticspec.SpeedUnits(float64(o.MaxSpeed) / float64(physic.MicroMetrePerSecond) * o.MicrostepsPerUM); !ok {
		return u, fmt.Errorf("%s: MaxSpeed %s × MicrostepsPerUM is outside the Tic's 1..%d microsteps per 10,000 s", n, o.MaxSpeed, ticspec.MaxSpeedUnits)
	}
	if u.accel, ok = ticspec.AccelUnits(o.Acceleration * o.MicrostepsPerUM); !ok {
		return u, fmt.Errorf("%s: Acceleration %g µm/s² × MicrostepsPerUM is outside the Tic's %d..%d microsteps per 100 s²", n, o.Acceleration, ticspec.MinAccelUnits, ticspec.MaxAccelUnits)
	}
	if u.decel, ok = ticspec.AccelUnits(o.Deceleration * o.MicrostepsPerUM); !ok {
		return u, fmt.Errorf("%s: Deceleration %g µm/s² × MicrostepsPerUM is outside the Tic's %d..%d microsteps per 100 s²", n, o.Deceleration, ticspec.MinAccelUnits, ticspec.MaxAccelUnits)
	}
	for _, p := range []struct {
		what string
		d    physic.Distance
		to   *int64
	}{{"TravelMin", o.TravelMin, &u.minPos}, {"TravelMax", o.TravelMax, &u.maxPos}, {"Backlash", o.Backlash, &u.backlash}} {
		if *p.to, ok = ticspec.Position(float64(p.d) / float64(physic.MicroMetre) * o.MicrostepsPerUM); !ok {
			return u, fmt.Errorf("%s: %s: %s is outside the Tic's 32-bit position range", n, p.what, p.d)
		}
	}
	return u, nil
}

// Check reports whether New would accept opts before it touches the bus:
// the same checks of the Tic's facts (ticspec) as firmware-config's
// validator, plus the driver's own.
func (o Options) Check() error {
	if err := o.check(); err != nil {
		return err
	}
	_, err := o.ticUnits()
	return err
}

// toMicrosteps converts a distance from home into microsteps (int64 math,
// rounded) and checks that it fits the Tic's int32 position.
func (a *Axis) toMicrosteps(d physic.Distance) (int64, error) {
	ms, ok := ticspec.Position(float64(d) / float64(physic.MicroMetre) * a.opts.MicrostepsPerUM)
	if !ok {
		return 0, fmt.Errorf("%s is outside the Tic's 32-bit position range", d)
	}
	return ms, nil
}

func (a *Axis) toDistance(pos int32) physic.Distance {
	return physic.Distance(math.Round(float64(pos) / a.opts.MicrostepsPerUM * float64(physic.MicroMetre)))
}

// String implements hal.Axis.
func (a *Axis) String() string { return a.opts.Name }

// Travel implements hal.Axis.
func (a *Axis) Travel() (min, max physic.Distance) { return a.opts.TravelMin, a.opts.TravelMax }

// Homed implements hal.Axis. It is false before homing and after any fault,
// halt or de-energize.
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

// ClearFault is the technician's acknowledge: it clears the latched fault and
// sends "Clear driver error" to the Tic. The axis stays unhomed: Home it
// before moving.
func (a *Axis) ClearFault() error {
	a.mu.Lock()
	a.fault = nil
	a.homed = false
	a.mu.Unlock()
	if err := a.config(a.dev.ClearDriverError); err != nil {
		return fmt.Errorf("%s: clear driver error: %w", a.opts.Name, err)
	}
	return nil
}

// Position implements hal.Axis: the Tic's current (counted) position.
func (a *Axis) Position() (physic.Distance, error) {
	var p int32
	if err := a.read(func() (err error) { p, err = a.dev.GetCurrentPosition(); return }); err != nil {
		return 0, fmt.Errorf("%s: read position: %w", a.opts.Name, err)
	}
	return a.toDistance(p), nil
}

// Halt implements hal.Axis: "Halt and hold" at once. An abrupt stop may lose
// steps, so the axis must be homed again afterwards (the Tic sets "position
// uncertain" too). A Wait in progress returns ErrHalted.
func (a *Axis) Halt() error {
	a.mu.Lock()
	a.haltGen++
	a.homed = false
	a.holding = false
	a.mu.Unlock()
	unregister(a)
	if err := a.write(a.dev.HaltAndHold); err != nil {
		return fmt.Errorf("%s: halt: %w", a.opts.Name, err)
	}
	return nil
}

// Home implements hal.Axis with the Tic's own homing procedure (user's guide
// section 5.6): "Go home", then poll until homing is no longer active.
func (a *Axis) Home(ctx context.Context) error {
	n := a.opts.Name
	a.mu.Lock()
	if a.fault != nil {
		err := a.fault
		a.mu.Unlock()
		return fmt.Errorf("%s: homing refused: %w", n, err)
	}
	a.homed = false
	gen := a.haltGen
	a.mu.Unlock()

	st, err := a.errorStatus()
	if err != nil {
		return a.latch(hal.FaultBus, fmt.Errorf("homing: %w", err))
	}
	if st&^recoverable(true) != 0 {
		return a.latch(ticErrCode(st), fmt.Errorf("homing: tic error: %s", DecodeErrors(st)))
	}
	// Exit safe start also clears a command timeout and a serial error.
	if err := a.write(a.dev.ExitSafeStart); err != nil {
		return a.latch(hal.FaultBus, fmt.Errorf("homing: exit safe start: %w", err))
	}
	if st, err = a.errorStatus(); err != nil {
		return a.latch(hal.FaultBus, fmt.Errorf("homing: %w", err))
	}
	if st != 0 {
		return a.latch(ticErrCode(st), fmt.Errorf("homing: tic error: %s", DecodeErrors(st)))
	}
	goHome := a.dev.GoHomeReverse
	if a.opts.HomeForward {
		goHome = a.dev.GoHomeForward
	}
	if err := a.config(goHome); err != nil {
		return a.latch(hal.FaultBus, fmt.Errorf("homing: go home: %w", err))
	}
	a.hold(true)
	defer a.hold(false)
	start := a.clock.Now()
	for {
		if err := a.clock.Sleep(ctx, a.opts.PollInterval); err != nil {
			_ = a.Halt()
			return fmt.Errorf("%s: homing: %w", n, err)
		}
		if a.halted(gen) {
			return fmt.Errorf("%s: homing: %w", n, ErrHalted)
		}
		st, err := a.errorStatus()
		if err != nil {
			return a.latch(hal.FaultBus, fmt.Errorf("homing: %w", err))
		}
		if st != 0 {
			return a.latch(ticErrCode(st), fmt.Errorf("homing: tic error: %s", DecodeErrors(st)))
		}
		a.keepalive()
		flags, err := a.miscFlags()
		if err != nil {
			return a.latch(hal.FaultBus, fmt.Errorf("homing: %w", err))
		}
		if flags&flagHomingActive == 0 {
			if flags&flagPositionUncertain != 0 {
				return a.latch(hal.FaultDriver, fmt.Errorf("homing ended with the position uncertain"))
			}
			break
		}
		if el := a.clock.Now().Sub(start); el >= a.opts.HomingTimeout {
			return a.latch(hal.FaultLimit, fmt.Errorf("homing: limit switch never triggered after %s: %w", a.opts.HomingTimeout, hal.ErrTimeout))
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.haltGen != gen {
		return fmt.Errorf("%s: homing: %w", n, ErrHalted)
	}
	a.homed = true
	a.target, a.final = 0, 0
	// The Tic's homing ends moving away from the switch.
	a.lastDir = 1
	if a.opts.HomeForward {
		a.lastDir = -1
	}
	return nil
}

// recoverable is the set of Tic errors the driver clears by itself: a command
// timeout and the safe-start bit that follows it happen whenever the axis
// idles longer than the dead-man period, which is harmless at rest. Homing
// (a re-initialisation) also clears a serial error.
func recoverable(homing bool) uint16 {
	b := uint16(1<<tic.ErrorBitCommandTimeout | 1<<tic.ErrorBitSafeStartViolation)
	if homing {
		b |= 1 << tic.ErrorBitSerialError
	}
	return b
}

// Start implements hal.Axis.
func (a *Axis) Start(target physic.Distance) error {
	n := a.opts.Name
	a.mu.Lock()
	switch {
	case a.fault != nil:
		err := a.fault
		a.mu.Unlock()
		return fmt.Errorf("%s: move to %s refused: %w", n, target, err)
	case !a.homed:
		a.mu.Unlock()
		return fmt.Errorf("%s: move to %s refused: %w", n, target, hal.ErrNotHomed)
	}
	wasHolding := a.holding
	prev, lastDir := a.target, a.lastDir
	gen := a.haltGen // a Halt from now on cancels this Start
	a.mu.Unlock()
	if target < a.opts.TravelMin || target > a.opts.TravelMax {
		return fmt.Errorf("%s: move to %s refused: travel is %s..%s: %w", n, target, a.opts.TravelMin, a.opts.TravelMax, hal.ErrOutOfTravel)
	}
	ms, err := a.toMicrosteps(target)
	if err != nil || ms < a.minPos || ms > a.maxPos {
		return fmt.Errorf("%s: move to %s refused: travel is %s..%s: %w", n, target, a.opts.TravelMin, a.opts.TravelMax, hal.ErrOutOfTravel)
	}
	flags, err := a.miscFlags()
	if err != nil {
		return a.latch(hal.FaultBus, fmt.Errorf("move to %s: %w", target, err))
	}
	if flags&flagPositionUncertain != 0 || flags&flagEnergized == 0 {
		return a.latch(flagsCode(flags), fmt.Errorf("move to %s: tic reports %s", target, decodeFlags(flags)))
	}
	st, err := a.errorStatus()
	if err != nil {
		return a.latch(hal.FaultBus, fmt.Errorf("move to %s: %w", target, err))
	}
	if st != 0 {
		if wasHolding || st&^recoverable(false) != 0 {
			return a.latch(ticErrCode(st), fmt.Errorf("move to %s: tic error: %s", target, DecodeErrors(st)))
		}
		// Idle command timeout at rest: resume.
		if err := a.write(a.dev.ExitSafeStart); err != nil {
			return a.latch(hal.FaultBus, fmt.Errorf("move to %s: exit safe start: %w", target, err))
		}
	}
	leg := a.firstLeg(int64(prev), ms, lastDir)
	a.mu.Lock()
	if a.haltGen != gen {
		a.mu.Unlock()
		return fmt.Errorf("%s: move to %s: %w", n, target, ErrHalted)
	}
	a.target, a.final = int32(leg), int32(ms)
	if leg != int64(prev) {
		a.lastDir = sign64(leg - int64(prev))
	}
	a.moveStart = a.clock.Now()
	a.budget = a.moveBudget(math.Abs(float64(leg) - float64(prev)))
	a.arriveBy = time.Time{}
	if leg == ms && !wasHolding {
		a.arriveBy = a.moveStart.Add(a.arrival(math.Abs(float64(leg) - float64(prev))))
	}
	a.holding = true
	a.mu.Unlock()
	register(a)
	if sent, err := a.target32(gen, int32(leg)); !sent {
		return fmt.Errorf("%s: move to %s: %w", n, target, ErrHalted)
	} else if err != nil {
		// Not retried: whether the Tic took the command is unknown.
		return a.latch(hal.FaultBus, fmt.Errorf("move to %s: set target: %w", target, err))
	}
	return nil
}

// approach is +1 when targets are approached moving forward, -1 reverse.
func (a *Axis) approach() int {
	if a.opts.ApproachReverse {
		return -1
	}
	return 1
}

// firstLeg is where a move from prev to target goes first: target itself,
// or, with backlash compensation, the overshoot point target-approach×
// backlash when the move would arrive from the wrong side, or when it
// arrives from the right side but follows a reversal by less than the
// backlash (the play would not be taken up). The overshoot point is
// clamped to the travel: at the very end of travel the approach side cannot
// be honoured and the move goes straight.
func (a *Axis) firstLeg(prev, target int64, lastDir int) int64 {
	if a.backlash <= 0 || target == prev {
		return target
	}
	ap := a.approach()
	dir := sign64(target - prev)
	if dir == ap && (lastDir == ap || abs64(target-prev) >= a.backlash) {
		return target
	}
	return min(max(target-int64(ap)*a.backlash, a.minPos), a.maxPos)
}

func sign64(d int64) int {
	switch {
	case d > 0:
		return 1
	case d < 0:
		return -1
	}
	return 0
}

func abs64(d int64) int64 {
	if d < 0 {
		return -d
	}
	return d
}

// moveBudget is how long a move of d microsteps may take before Wait calls it
// a fault: 1.5 times the trapezoid's time plus 250 ms and two polls.
func (a *Axis) moveBudget(d float64) time.Duration {
	return time.Duration(1.5*a.trapezoid(d)*float64(time.Second)) + 250*time.Millisecond + 2*a.opts.PollInterval
}

// trapezoid is the time, in seconds, the Tic's planner takes for a move of d
// microsteps from rest to rest at the programmed speed and acceleration
// limits (a starting speed only shortens it).
func (a *Axis) trapezoid(d float64) float64 {
	v, ac, de := a.speed, a.accel, a.decel
	if d <= 0 {
		return 0
	}
	if d >= v*v/(2*ac)+v*v/(2*de) {
		return d/v + v/(2*ac) + v/(2*de)
	}
	vp := math.Sqrt(2 * d * ac * de / (ac + de))
	return vp/ac + vp/de
}

// arrival is how long after the target is sent a move of d microsteps
// from rest has arrived at the latest: the planner's trapezoid plus
// arrivalMargin and 0.25 % (the Tic plans in 1 ms steps and rounds its
// limits; the command itself takes a moment on the bus). Wait never counts settle time before it
// nor before a poll that still saw the axis moving.
func (a *Axis) arrival(d float64) time.Duration {
	return time.Duration(1.0025*a.trapezoid(d)*float64(time.Second)) + arrivalMargin
}

// arrivalMargin is added to every predicted arrival.
const arrivalMargin = 2 * time.Millisecond

// Wait implements hal.Axis: it polls the Tic until the carriage stands at
// the target, then waits Settle. Any Tic error, a limit switch or an overlong
// move halts the axis and latches a fault.
func (a *Axis) Wait(ctx context.Context) error {
	n := a.opts.Name
	a.mu.Lock()
	if a.fault != nil {
		err := a.fault
		a.mu.Unlock()
		return err
	}
	if !a.holding {
		a.mu.Unlock()
		return nil
	}
	target, start, budget, gen := a.target, a.moveStart, a.budget, a.haltGen
	where := a.toDistance(a.final)
	a.mu.Unlock()
	// seenMoving is the last poll that found the axis short of its target:
	// it arrived after that.
	var seenMoving time.Time
	for {
		if err := ctx.Err(); err != nil {
			_ = a.Halt()
			return fmt.Errorf("%s: move to %s: %w", n, where, err)
		}
		if a.halted(gen) {
			return fmt.Errorf("%s: move to %s: %w", n, where, ErrHalted)
		}
		// Error status first: feeding the dead-man would clear a command
		// timeout that already fired.
		st, err := a.errorStatus()
		if err != nil {
			return a.latch(hal.FaultBus, fmt.Errorf("move to %s: %w", where, err))
		}
		if st != 0 {
			return a.latch(ticErrCode(st), fmt.Errorf("move to %s: tic error: %s", where, DecodeErrors(st)))
		}
		a.keepalive()
		flags, err := a.miscFlags()
		if err != nil {
			return a.latch(hal.FaultBus, fmt.Errorf("move to %s: %w", where, err))
		}
		if flags&(flagForwardLimit|flagReverseLimit|flagPositionUncertain) != 0 || flags&flagEnergized == 0 {
			return a.latch(flagsCode(flags), fmt.Errorf("move to %s: tic reports %s", where, decodeFlags(flags)))
		}
		var pos, vel int32
		if err := a.read(func() (err error) { pos, err = a.dev.GetCurrentPosition(); return }); err != nil {
			return a.latch(hal.FaultBus, fmt.Errorf("move to %s: read position: %w", where, err))
		}
		if err := a.read(func() (err error) { vel, err = a.dev.GetCurrentVelocity(); return }); err != nil {
			return a.latch(hal.FaultBus, fmt.Errorf("move to %s: read velocity: %w", where, err))
		}
		if pos == target && vel == 0 {
			a.mu.Lock()
			final := a.final
			a.mu.Unlock()
			if final == target {
				break
			}
			// Backlash compensation: the overshoot point is reached; now
			// approach the target from the configured side.
			if sent, err := a.target32(gen, final); !sent {
				continue // halted meanwhile: reported at the top of the loop
			} else if err != nil {
				return a.latch(hal.FaultBus, fmt.Errorf("move to %s: set target after overshoot: %w", a.toDistance(final), err))
			}
			a.mu.Lock()
			a.lastDir = sign64(int64(final) - int64(target))
			a.target = final
			a.moveStart = a.clock.Now()
			a.budget = a.moveBudget(math.Abs(float64(final) - float64(target)))
			a.arriveBy = a.moveStart.Add(a.arrival(math.Abs(float64(final) - float64(target))))
			target, start, budget = a.target, a.moveStart, a.budget
			a.mu.Unlock()
			where = a.toDistance(target)
			continue
		}
		seenMoving = a.clock.Now()
		if el := a.clock.Now().Sub(start); el > budget {
			return a.latch(hal.FaultMotion, fmt.Errorf("move to %s: still at %s after %s (expected under %s): %w", where, a.toDistance(pos), el, budget, hal.ErrTimeout))
		}
		if err := a.clock.Sleep(ctx, a.opts.PollInterval); err != nil {
			_ = a.Halt()
			return fmt.Errorf("%s: move to %s: %w", n, where, err)
		}
	}
	// Settle, feeding the dead-man. The settle started when the axis
	// arrived: at the planner's arrival time, or after the last poll that
	// saw it moving, whichever is later (and now when unknown); only the
	// remainder is waited.
	a.mu.Lock()
	arrived := a.arriveBy
	a.mu.Unlock()
	now := a.clock.Now()
	if arrived.IsZero() || arrived.After(now) {
		arrived = now
	}
	if seenMoving.After(arrived) {
		arrived = seenMoving
	}
	for left := a.opts.Settle - now.Sub(arrived); left > 0; {
		d := min(left, a.opts.PollInterval)
		if err := a.clock.Sleep(ctx, d); err != nil {
			_ = a.Halt()
			return fmt.Errorf("%s: settle at %s: %w", n, where, err)
		}
		left -= d
		a.keepalive()
	}
	a.mu.Lock()
	halted := a.haltGen != gen
	a.holding = false
	a.mu.Unlock()
	unregister(a)
	if halted {
		return fmt.Errorf("%s: move to %s: %w", n, where, ErrHalted)
	}
	return nil
}

// latch records a fault: the axis is halted, unhomed, and refuses moves
// until ClearFault and Home. It returns the *hal.Fault (joined with the error
// of the halt command if that failed too). The first fault stays latched;
// later ones are returned but do not replace it.
func (a *Axis) latch(code hal.FaultCode, cause error) error {
	f := hal.NewFault(a.opts.Name, code, cause)
	a.mu.Lock()
	if a.fault == nil {
		a.fault = f
	}
	a.homed = false
	a.holding = false
	a.haltGen++
	a.mu.Unlock()
	unregister(a)
	if herr := a.write(a.dev.HaltAndHold); herr != nil {
		return errors.Join(f, fmt.Errorf("%s: halt after fault: %w", a.opts.Name, herr))
	}
	return f
}

// ticErrCode classifies a non-zero Tic error status: the command timeout
// firing while the driver held a move means the control loop stalled (a
// motion fault); everything else is the driver's own error.
func ticErrCode(st uint16) hal.FaultCode {
	if st&^recoverable(false) == 0 {
		return hal.FaultMotion
	}
	return hal.FaultDriver
}

// flagsCode classifies alarming misc flags: a limit switch is a limit
// fault, "position uncertain" or de-energized a driver fault.
func flagsCode(f uint8) hal.FaultCode {
	if f&(flagForwardLimit|flagReverseLimit) != 0 {
		return hal.FaultLimit
	}
	return hal.FaultDriver
}

func (a *Axis) halted(gen uint64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.haltGen != gen
}

func (a *Axis) hold(on bool) {
	a.mu.Lock()
	a.holding = on
	a.mu.Unlock()
	if on {
		register(a)
	} else {
		unregister(a)
	}
}

// --- I²C access -------------------------------------------------------------

// write sends one state-changing command. It is never retried. Commands that
// feed the Tic's command timeout (all the driver sends except settings, go
// home and clear driver error) restart the keepalive period.
func (a *Axis) write(f func() error) error { return a.send(f, true) }

// config sends a command that does not feed the Tic's command timeout
// (settings, go home, clear driver error; section 5.4). Never retried.
func (a *Axis) config(f func() error) error { return a.send(f, false) }

func (a *Axis) send(f func() error, feeds bool) error {
	a.io.Lock()
	err := f()
	a.io.Unlock()
	if err == nil && feeds {
		a.mu.Lock()
		a.lastCmd = a.clock.Now()
		a.mu.Unlock()
	}
	return err
}

// target32 sends "Set target position" unless the axis was halted since
// generation gen, and reports whether it sent it. The check and the write
// happen under the I²C lock, so a concurrent Halt either comes first (and
// nothing is sent) or its "Halt and hold" goes out after the target: a move
// never starts after a Halt. Never retried.
func (a *Axis) target32(gen uint64, pos int32) (bool, error) {
	a.io.Lock()
	if a.halted(gen) {
		a.io.Unlock()
		return false, nil
	}
	err := a.dev.SetTargetPosition(pos)
	a.io.Unlock()
	if err == nil {
		a.mu.Lock()
		a.lastCmd = a.clock.Now()
		a.mu.Unlock()
	}
	return true, err
}

// read runs one read, retried once on error.
func (a *Axis) read(f func() error) error {
	a.io.Lock()
	defer a.io.Unlock()
	if err := f(); err == nil {
		return nil
	}
	return f()
}

func (a *Axis) errorStatus() (uint16, error) {
	var st uint16
	err := a.read(func() (err error) { st, err = a.dev.GetErrorStatus(); return })
	if err != nil {
		return 0, fmt.Errorf("read error status: %w", err)
	}
	return st, nil
}

// Misc flags 1 (variable 0x01).
const (
	flagEnergized         = 1 << 0
	flagPositionUncertain = 1 << 1
	flagForwardLimit      = 1 << 2
	flagReverseLimit      = 1 << 3
	flagHomingActive      = 1 << 4
)

// miscFlags reads "Misc flags 1" (variable 0x01) in one block read. periph's
// tic driver offers one getter per bit, each reading the byte again; a single
// read gives a consistent snapshot. The bytes on the wire are exactly those
// of the driver's getVar8: write [0xA1, 0x01], then read 1 byte.
func (a *Axis) miscFlags() (uint8, error) {
	var f uint8
	err := a.read(func() error {
		// One block read of variable 0x01 with periph's I²C device.
		var b [1]byte
		d := i2c.Dev{Bus: a.bus, Addr: a.opts.Address}
		if err := d.Tx([]byte{0xA1, 0x01}, nil); err != nil {
			return err
		}
		if err := d.Tx(nil, b[:]); err != nil {
			return err
		}
		f = b[0]
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("read misc flags: %w", err)
	}
	return f, nil
}

// keepalive feeds the command timeout of this axis and of every other axis
// of its Group that holds a move, so that "Start X, Start Y, Wait X, Wait
// Y" does not let Y's dead-man fire while X is being waited for.
func (a *Axis) keepalive() {
	if a.opts.CommandTimeout <= 0 {
		return
	}
	for _, p := range peers(a) {
		p.mu.Lock()
		due := p.holding && p.clock.Now().Sub(p.lastCmd) >= p.opts.CommandTimeout/2
		p.mu.Unlock()
		if due {
			// A failure is not retried here; the next poll tries again,
			// well within the timeout.
			_ = p.write(p.dev.ResetCommandTimeout)
		}
	}
}

// DecodeErrors names the bits of a Tic "Error status" value.
func DecodeErrors(st uint16) string {
	names := []string{
		tic.ErrorBitIntentionallyDeenergized: "intentionally de-energized",
		tic.ErrorBitMotorDriverError:         "motor driver error",
		tic.ErrorBitLowVin:                   "low VIN",
		tic.ErrorBitKillSwitch:               "kill switch active",
		tic.ErrorBitRequiredInputInvalid:     "required input invalid",
		tic.ErrorBitSerialError:              "serial error",
		tic.ErrorBitCommandTimeout:           "command timeout",
		tic.ErrorBitSafeStartViolation:       "safe start violation",
		tic.ErrorBitErrLineHigh:              "ERR line high",
	}
	var out []string
	for b := 0; b < 16; b++ {
		if st&(1<<b) == 0 {
			continue
		}
		if b < len(names) && names[b] != "" {
			out = append(out, names[b])
		} else {
			out = append(out, fmt.Sprintf("error bit %d", b))
		}
	}
	if len(out) == 0 {
		return "no error"
	}
	return strings.Join(out, ", ")
}

func decodeFlags(f uint8) string {
	var out []string
	if f&flagEnergized == 0 {
		out = append(out, "de-energized")
	}
	if f&flagPositionUncertain != 0 {
		out = append(out, "position uncertain")
	}
	if f&flagForwardLimit != 0 {
		out = append(out, "forward limit switch active")
	}
	if f&flagReverseLimit != 0 {
		out = append(out, "reverse limit switch active")
	}
	if f&flagHomingActive != 0 {
		out = append(out, "homing active")
	}
	return strings.Join(out, ", ")
}

// --- groups -----------------------------------------------------------------

// Group is a set of axes driven together (the stage's X and Y): while one
// axis of the group polls its move, it also feeds the command timeout of
// every other axis of the group that holds a move, so "Start X, Start Y,
// Wait X, Wait Y" does not let Y's dead-man fire while X is waited for.
// Create one with NewGroup and pass it in Options.Group of each axis.
type Group struct {
	mu   sync.Mutex
	axes map[*Axis]struct{}
}

// NewGroup returns an empty group.
func NewGroup() *Group { return &Group{axes: map[*Axis]struct{}{}} }

// register marks a as holding a move in its group.
func register(a *Axis) {
	g := a.opts.Group
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.axes[a] = struct{}{}
}

// unregister marks a as no longer holding a move.
func unregister(a *Axis) {
	g := a.opts.Group
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.axes, a)
}

// peers returns a and the other axes of its group holding a move.
func peers(a *Axis) []*Axis {
	out := []*Axis{a}
	g := a.opts.Group
	if g == nil {
		return out
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for p := range g.axes {
		if p != a {
			out = append(out, p)
		}
	}
	return out
}
