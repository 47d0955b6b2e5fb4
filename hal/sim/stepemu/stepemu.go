package stepemu

import (
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"

	"papscan/hal"
)

// Options describes the emulated driver, motor and mechanics.
type Options struct {
	// Name prefixes the pins' names ("<name>_STEP", ...).
	Name string
	// TravelSteps is the distance from the limit switch's trip point to
	// the far hard stop, in steps. Default 10000.
	TravelSteps int64
	// StartSteps is the carriage's power-up position, steps from the trip
	// point (unknown to the driver).
	StartSteps int64
	// OvertravelSteps is how far behind the trip point the near hard stop
	// is. Default 50.
	OvertravelSteps int64
	// EnableActiveLow: the ENABLE input is active low (A4988, DRV8825).
	EnableActiveLow bool
	// LimitActiveLow: the limit switch pulls its line low when active.
	LimitActiveLow bool
	// MaxStepRate is the fastest the motor follows; a pulse closer than
	// 1/MaxStepRate to the previous one is lost (a stall). 0: no limit.
	MaxStepRate physic.Frequency
	// BacklashSteps is the play of the screw and nut: after a reversal the
	// motor turns this many steps before the carriage follows.
	BacklashSteps int64
}

// Driver is the emulated driver chip plus motor, screw and switch. It is
// safe for concurrent use.
type Driver struct {
	clock hal.Clock
	opts  Options

	mu         sync.Mutex
	pos        int64 // true carriage position, steps from the trip point
	motor      int64 // motor position: the carriage is in [motor-backlash, motor]
	dirHigh    bool
	enabled    bool
	stepHigh   bool
	pulses     int
	lost       int
	lastPulse  time.Time
	minGap     time.Duration
	limitBroke bool
	times      []time.Time // pulse times, when recording

	step, dir, enable, limit *pin
}

// New returns an emulated driver. Its pins are Step, Dir, Enable, Limit.
func New(clock hal.Clock, o Options) *Driver {
	if o.TravelSteps <= 0 {
		o.TravelSteps = 10000
	}
	if o.OvertravelSteps <= 0 {
		o.OvertravelSteps = 50
	}
	d := &Driver{clock: clock, opts: o, pos: o.StartSteps, motor: o.StartSteps}
	mk := func(role string) *pin {
		return &pin{Pin: gpiotest.Pin{N: o.Name + "_" + role, EdgesChan: make(chan gpio.Level, 1)}, d: d, role: role}
	}
	d.step, d.dir, d.enable, d.limit = mk("STEP"), mk("DIR"), mk("ENABLE"), mk("LIMIT")
	return d
}

// Step, Dir, Enable and Limit are the driver's GPIO lines.
func (d *Driver) Step() gpio.PinIO   { return d.step }
func (d *Driver) Dir() gpio.PinIO    { return d.dir }
func (d *Driver) Enable() gpio.PinIO { return d.enable }
func (d *Driver) Limit() gpio.PinIO  { return d.limit }

// Position is the carriage's true position in steps from the switch's trip
// point (what a camera would see).
func (d *Driver) Position() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pos
}

// Pulses is the number of rising edges seen on STEP.
func (d *Driver) Pulses() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pulses
}

// Lost is the number of pulses that did not move the carriage (driver
// disabled, too fast, against a hard stop).
func (d *Driver) Lost() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lost
}

// Enabled reports whether the driver is energized.
func (d *Driver) Enabled() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.enabled
}

// MinInterval is the shortest time seen between two pulses (0 before two).
func (d *Driver) MinInterval() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.minGap
}

// Record starts (or stops) keeping every pulse's time; PulseTimes returns
// them.
func (d *Driver) Record(on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if on {
		d.times = []time.Time{}
	} else {
		d.times = nil
	}
}

// PulseTimes returns the recorded pulse times.
func (d *Driver) PulseTimes() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.times...)
}

// BreakLimitSwitch makes the switch never report active (a cut wire).
func (d *Driver) BreakLimitSwitch() {
	d.mu.Lock()
	d.limitBroke = true
	d.mu.Unlock()
}

// Push moves the carriage by hand (a technician, or a crash), n steps.
func (d *Driver) Push(n int64) {
	d.mu.Lock()
	d.pos += n
	d.motor += n
	d.mu.Unlock()
}

func (d *Driver) limitActive() bool {
	return !d.limitBroke && d.pos <= 0
}

func (d *Driver) out(role string, l gpio.Level) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch role {
	case "DIR":
		d.dirHigh = bool(l)
	case "ENABLE":
		d.enabled = bool(l) != d.opts.EnableActiveLow
	case "STEP":
		rising := bool(l) && !d.stepHigh
		d.stepHigh = bool(l)
		if !rising {
			return
		}
		now := d.clock.Now()
		d.pulses++
		if d.times != nil {
			d.times = append(d.times, now)
		}
		fast := false
		if d.pulses > 1 {
			gap := now.Sub(d.lastPulse)
			if d.minGap == 0 || gap < d.minGap {
				d.minGap = gap
			}
			if r := d.opts.MaxStepRate; r > 0 && gap < r.Period() {
				fast = true
			}
		}
		d.lastPulse = now
		motor := d.motor - 1
		if d.dirHigh {
			motor = d.motor + 1
		}
		next := min(max(d.pos, motor-d.opts.BacklashSteps), motor)
		if !d.enabled || fast || next < -d.opts.OvertravelSteps || next > d.opts.TravelSteps {
			d.lost++
			return
		}
		d.motor, d.pos = motor, next
	}
}

// pin is one line of the driver: a gpiotest pin whose writes drive the
// emulation and, for LIMIT, whose reads come from it.
type pin struct {
	gpiotest.Pin
	d    *Driver
	role string
}

var _ gpio.PinIO = (*pin)(nil)

// Out implements gpio.PinOut.
func (p *pin) Out(l gpio.Level) error {
	if err := p.Pin.Out(l); err != nil {
		return err
	}
	p.d.out(p.role, l)
	return nil
}

// Read implements gpio.PinIn; the LIMIT line reads the switch.
func (p *pin) Read() gpio.Level {
	if p.role != "LIMIT" {
		return p.Pin.Read()
	}
	p.d.mu.Lock()
	defer p.d.mu.Unlock()
	return gpio.Level(p.d.limitActive() != p.d.opts.LimitActiveLow)
}
