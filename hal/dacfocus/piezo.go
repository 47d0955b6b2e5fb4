package dacfocus

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"

	"papscan/hal"
)

// Options configures a Piezo.
type Options struct {
	// Name names the device in errors and faults ("z"). Required.
	Name string
	// Address is the DAC's 7-bit I²C address (0x4C or 0x4E).
	Address uint16
	// FullScale is the stage's displacement at DAC code 65535. Required.
	FullScale physic.Distance
	// RangeMin, RangeMax bound SetZ, within [0, FullScale].
	RangeMin, RangeMax physic.Distance
	// Settle is waited after every SetZ.
	Settle time.Duration
	// Gain2 selects the DAC's 0..2×VREF output range (for a 0..5 V
	// amplifier input); otherwise 0..2.5 V.
	Gain2 bool
	// Backlash, above zero, compensates the piezo's hysteresis: every
	// target is approached from the same side (upwards, or downwards with
	// ApproachReverse); a move that would arrive from the other side first
	// overshoots by Backlash, clamped to the range.
	Backlash        physic.Distance
	ApproachReverse bool
}

// Piezo is a hal.Focus on an AD5693R-driven piezo stage. It is safe for
// concurrent use.
type Piezo struct {
	opts  Options
	clock hal.Clock
	dac   *AD5693R

	mu      sync.Mutex
	homed   bool
	fault   error
	z       physic.Distance
	lastDir int // direction of the last change: +1 up, -1 down, 0 unknown
}

var _ hal.Focus = (*Piezo)(nil)

// New checks the options and initialises the DAC; the stage is not homed.
func New(bus i2c.Bus, clock hal.Clock, o Options) (*Piezo, error) {
	if o.Name == "" {
		return nil, errors.New("dacfocus: Options.Name is required")
	}
	n := o.Name
	if clock == nil {
		return nil, fmt.Errorf("%s: nil clock", n)
	}
	if o.FullScale <= 0 {
		return nil, fmt.Errorf("%s: FullScale must be > 0, got %s", n, o.FullScale)
	}
	if o.RangeMin < 0 || o.RangeMax > o.FullScale || o.RangeMin >= o.RangeMax {
		return nil, fmt.Errorf("%s: range %s..%s must lie within 0..%s (FullScale) and not be empty", n, o.RangeMin, o.RangeMax, o.FullScale)
	}
	if o.Settle < 0 {
		return nil, fmt.Errorf("%s: Settle must not be negative", n)
	}
	dac, err := NewAD5693R(bus, o.Address, o.Gain2)
	if err != nil {
		return nil, hal.NewFault(n, hal.FaultBus, err)
	}
	return &Piezo{opts: o, clock: clock, dac: dac}, nil
}

func (p *Piezo) String() string { return p.opts.Name }

// Range implements hal.Focus.
func (p *Piezo) Range() (min, max physic.Distance) { return p.opts.RangeMin, p.opts.RangeMax }

// Code is the DAC code for z (rounded to the nearest LSB, FullScale/65535).
func (p *Piezo) Code(z physic.Distance) uint16 {
	return uint16(math.Round(float64(z) / float64(p.opts.FullScale) * 65535))
}

func (p *Piezo) position(code uint16) physic.Distance {
	return physic.Distance(math.Round(float64(code) / 65535 * float64(p.opts.FullScale)))
}

// Homed reports whether the stage was homed since the last fault.
func (p *Piezo) Homed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.homed
}

// Fault returns the latched fault, or nil.
func (p *Piezo) Fault() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fault
}

// ClearFault clears the latched fault; Home before the next SetZ.
func (p *Piezo) ClearFault() error {
	p.mu.Lock()
	p.fault, p.homed = nil, false
	p.mu.Unlock()
	return nil
}

// Home implements hal.Focus: the stage is absolute, so homing rewrites the
// control register and drives it to RangeMin.
func (p *Piezo) Home(ctx context.Context) error {
	p.mu.Lock()
	if p.fault != nil {
		err := p.fault
		p.mu.Unlock()
		return fmt.Errorf("%s: homing refused: %w", p.opts.Name, err)
	}
	var ctrl uint16
	if p.opts.Gain2 {
		ctrl = CtrlGain2
	}
	err := p.dac.write(CmdWriteControl, ctrl)
	p.mu.Unlock()
	if err != nil {
		return p.latch(fmt.Errorf("homing: write control register: %w", err))
	}
	if err := p.set(ctx, p.opts.RangeMin, true); err != nil {
		return err
	}
	return nil
}

// SetZ implements hal.Focus.
func (p *Piezo) SetZ(ctx context.Context, z physic.Distance) error { return p.set(ctx, z, false) }

func (p *Piezo) set(ctx context.Context, z physic.Distance, homing bool) error {
	n := p.opts.Name
	p.mu.Lock()
	switch {
	case p.fault != nil:
		err := p.fault
		p.mu.Unlock()
		return fmt.Errorf("%s: move to %s refused: %w", n, z, err)
	case !p.homed && !homing:
		p.mu.Unlock()
		return fmt.Errorf("%s: move to %s refused: %w", n, z, hal.ErrNotHomed)
	case z < p.opts.RangeMin || z > p.opts.RangeMax:
		p.mu.Unlock()
		return fmt.Errorf("%s: move to %s refused: range is %s..%s: %w", n, z, p.opts.RangeMin, p.opts.RangeMax, hal.ErrOutOfTravel)
	}
	legs := []physic.Distance{z}
	if over, ok := p.overshoot(z, homing); ok {
		legs = []physic.Distance{over, z}
	}
	from := p.z
	for _, leg := range legs {
		code := p.Code(leg)
		err := p.dac.Write(code)
		var back uint16
		if err == nil {
			if back, err = p.dac.ReadBack(); err != nil {
				back, err = p.dac.ReadBack() // reads may be retried
			}
		}
		if err == nil && back != code {
			err = fmt.Errorf("DAC reads back 0x%04X after writing 0x%04X", back, code)
		}
		if err != nil {
			p.mu.Unlock()
			return p.latch(fmt.Errorf("move to %s: %w", z, err))
		}
		switch {
		case leg > from:
			p.lastDir = 1
		case leg < from:
			p.lastDir = -1
		}
		from = leg
		p.z = p.position(code)
	}
	if homing {
		p.homed = true
		p.lastDir = 0
	}
	p.mu.Unlock()
	if err := p.clock.Sleep(ctx, p.opts.Settle); err != nil {
		return fmt.Errorf("%s: settle at %s: %w", n, z, err)
	}
	return nil
}

// overshoot returns the point a move to z passes first with hysteresis
// compensation, if any: when the move would arrive from the wrong side, or
// from the right side after a reversal by less than Backlash. p.mu held.
func (p *Piezo) overshoot(z physic.Distance, homing bool) (physic.Distance, bool) {
	bl := p.opts.Backlash
	if bl <= 0 || homing || z == p.z {
		return 0, false
	}
	ap := physic.Distance(1)
	if p.opts.ApproachReverse {
		ap = -1
	}
	d := (z - p.z) * ap
	if d > 0 && (p.lastDir == int(ap) || d >= bl) {
		return 0, false
	}
	over := min(max(z-ap*bl, p.opts.RangeMin), p.opts.RangeMax)
	return over, over != z
}

// latch records a bus fault.
func (p *Piezo) latch(cause error) error {
	f := hal.NewFault(p.opts.Name, hal.FaultBus, cause)
	p.mu.Lock()
	if p.fault == nil {
		p.fault = f
	}
	p.homed = false
	p.mu.Unlock()
	return f
}

// Z implements hal.Focus: the commanded position (the stage is open loop).
func (p *Piezo) Z() (physic.Distance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.z, nil
}

// Halt implements hal.Focus. A piezo holds its position and nothing is
// moving on its own, so there is nothing to stop.
func (p *Piezo) Halt() error { return nil }
