package dacemu

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/sim/ticemu"
)

// AD5693R command nibbles and control bits (datasheet, "Serial Interface").
const (
	cmdNOP          = 0x00
	cmdWriteInput   = 0x10
	cmdUpdateDAC    = 0x20
	cmdWriteDACIn   = 0x30
	cmdWriteControl = 0x40

	ctrlReset = 1 << 15
	ctrlPD    = 3 << 13
	ctrlRefOf = 1 << 12
	ctrlGain2 = 1 << 11
)

// VRef is the AD5693R's internal reference.
const VRef = 2500 * physic.MilliVolt

// Options describes the DAC's wiring and the stage.
type Options struct {
	// Stroke is the stage's displacement at the amplifier's full-scale
	// input VoltsFullStroke. Default 100 µm.
	Stroke physic.Distance
	// VoltsFullStroke is the amplifier input for the full stroke; default
	// VRef (so a gain-1 DAC at code 65535 gives the full stroke).
	VoltsFullStroke physic.ElectricPotential
	// Tau is the stage's time constant; default 1 ms.
	Tau time.Duration
}

// DAC is an emulated AD5693R plus piezo stage. Safe for concurrent use.
type DAC struct {
	clock hal.Clock
	opts  Options

	mu       sync.Mutex
	input    uint16
	dac      uint16
	control  uint16
	from     float64 // stage position (m) at the last output change
	changed  time.Time
	nackLeft int
	nackRead int
	writes   int
}

var _ ticemu.Device = (*DAC)(nil)

// New returns a DAC in its power-on state: code 0, control 0.
func New(clock hal.Clock, o Options) *DAC {
	if o.Stroke <= 0 {
		o.Stroke = 100 * physic.MicroMetre
	}
	if o.VoltsFullStroke <= 0 {
		o.VoltsFullStroke = VRef
	}
	if o.Tau <= 0 {
		o.Tau = time.Millisecond
	}
	return &DAC{clock: clock, opts: o, changed: clock.Now()}
}

// InjectNACK makes the next n transfers fail with ticemu.ErrNACK.
func (d *DAC) InjectNACK(n int) {
	d.mu.Lock()
	d.nackLeft = n
	d.mu.Unlock()
}

// InjectReadNACK makes the next n read-only transfers fail with
// ticemu.ErrNACK; writes pass.
func (d *DAC) InjectReadNACK(n int) {
	d.mu.Lock()
	d.nackRead = n
	d.mu.Unlock()
}

// Writes is the number of accepted writes.
func (d *DAC) Writes() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.writes
}

// Code is the DAC register (the code on the output).
func (d *DAC) Code() uint16 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dac
}

// Output is the DAC's output voltage.
func (d *DAC) Output() physic.ElectricPotential {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.output()
}

func (d *DAC) output() physic.ElectricPotential {
	if d.control&ctrlPD != 0 || d.control&ctrlRefOf != 0 {
		return 0
	}
	full := float64(VRef)
	if d.control&ctrlGain2 != 0 {
		full *= 2
	}
	return physic.ElectricPotential(math.Round(float64(d.dac) / 65536 * full))
}

// target is the stage's steady-state position for the current output, in
// metres (clamped to the stroke).
func (d *DAC) target() float64 {
	f := float64(d.output()) / float64(d.opts.VoltsFullStroke)
	return math.Min(f, 1) * float64(d.opts.Stroke) / float64(physic.Metre)
}

func (d *DAC) posAt(now time.Time) float64 {
	t := now.Sub(d.changed).Seconds()
	return d.target() + (d.from-d.target())*math.Exp(-t/d.opts.Tau.Seconds())
}

// Position is the stage's true position now.
func (d *DAC) Position() physic.Distance {
	d.mu.Lock()
	defer d.mu.Unlock()
	return physic.Distance(math.Round(d.posAt(d.clock.Now()) * float64(physic.Metre)))
}

// UM is Position in µm, for the simulated camera.
func (d *DAC) UM() float64 {
	return float64(d.Position()) / float64(physic.MicroMetre)
}

// change applies f to the registers, keeping the stage's motion continuous.
func (d *DAC) change(f func()) {
	now := d.clock.Now()
	d.from = d.posAt(now)
	d.changed = now
	f()
}

var errFormat = errors.New("ad5693r: malformed transfer")

// I2CTx implements ticemu.Device.
func (d *DAC) I2CTx(w, r []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nackLeft > 0 {
		d.nackLeft--
		return fmt.Errorf("injected fault: %w", ticemu.ErrNACK)
	}
	if len(w) == 0 && d.nackRead > 0 {
		d.nackRead--
		return fmt.Errorf("injected fault on read: %w", ticemu.ErrNACK)
	}
	if len(w) > 0 {
		if len(w) != 3 {
			return fmt.Errorf("%w: write of %d bytes, want 3", errFormat, len(w))
		}
		v := uint16(w[1])<<8 | uint16(w[2])
		switch w[0] & 0xF0 {
		case cmdNOP:
		case cmdWriteInput:
			d.input = v
		case cmdUpdateDAC:
			d.change(func() { d.dac = d.input })
		case cmdWriteDACIn:
			d.change(func() { d.input, d.dac = v, v })
		case cmdWriteControl:
			if v&ctrlReset != 0 {
				d.change(func() { d.input, d.dac, d.control = 0, 0, 0 })
			} else {
				d.change(func() { d.control = v & (ctrlPD | ctrlRefOf | ctrlGain2) })
			}
		default:
			return fmt.Errorf("%w: unknown command 0x%02X", errFormat, w[0])
		}
		d.writes++
	}
	if len(r) > 0 {
		if len(r) != 2 {
			return fmt.Errorf("%w: read of %d bytes, want 2", errFormat, len(r))
		}
		r[0], r[1] = byte(d.input>>8), byte(d.input)
	}
	return nil
}
