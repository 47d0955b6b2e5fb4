package pca9685emu

import (
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/hal/sim/ticemu"
)

// Register addresses and bits.
const (
	RegMode1    = 0x00
	RegMode2    = 0x01
	RegLED0     = 0x06
	RegAllLED   = 0xFA
	RegPreScale = 0xFE

	mode1Restart = 0x80
	mode1AI      = 0x20
	mode1Sleep   = 0x10
	fullBit      = 0x10
)

// Options time a chip at the wire. The zero value is an untimed chip: every
// transfer takes no time.
type Options struct {
	// Clock, when set, is advanced by each transfer's time on the wire at
	// BusSpeed before the transfer takes effect: the outputs change at the
	// write's STOP condition (MODE2 OCH = 0, the power-on setting), so a
	// pulse switched on by one write and off by another lasts the time
	// between their STOPs. A virtual clock (hal/sim.Clock) fits.
	Clock interface{ Advance(time.Duration) }
	// BusSpeed is the I²C clock; default 100 kHz (standard mode, the
	// Linux default for most buses).
	BusSpeed physic.Frequency
}

// WireTime is how long one transfer occupies an I²C bus at speed
// (ticemu.WireTime).
func WireTime(nw, nr int, speed physic.Frequency) time.Duration {
	return ticemu.WireTime(nw, nr, speed)
}

// Chip is an emulated PCA9685. Safe for concurrent use.
type Chip struct {
	opts     Options
	mu       sync.Mutex
	regs     [256]byte
	nackLeft int
	writes   int
	watch    map[int]*watcher
}

// watcher is a function told about one output's level.
type watcher struct {
	fn    func(level float64)
	level float64
}

var _ ticemu.Device = (*Chip)(nil)

// New returns an untimed chip in its power-on state.
func New() *Chip { return NewTimed(Options{}) }

// NewTimed returns a chip in its power-on state whose transfers take
// their time on the wire (Options).
func NewTimed(o Options) *Chip {
	if o.BusSpeed <= 0 {
		o.BusSpeed = 100 * physic.KiloHertz
	}
	c := &Chip{opts: o, watch: map[int]*watcher{}}
	c.regs[RegMode1] = 0x11
	c.regs[RegMode2] = 0x04
	c.regs[RegPreScale] = 0x1E
	for ch := range 16 {
		c.regs[RegLED0+4*ch+3] = fullBit // power-on: LEDn full off
	}
	return c
}

// InjectNACK makes the next n transfers fail with ticemu.ErrNACK.
func (c *Chip) InjectNACK(n int) {
	c.mu.Lock()
	c.nackLeft = n
	c.mu.Unlock()
}

// Writes counts the write transfers accepted.
func (c *Chip) Writes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// Register returns the value of register r.
func (c *Chip) Register(r byte) byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[r]
}

// Sleeping reports whether the oscillator is off (MODE1 SLEEP): outputs
// are then off whatever their registers say.
func (c *Chip) Sleeping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regs[RegMode1]&mode1Sleep != 0
}

// Frequency is the PWM frequency set by PRE_SCALE.
func (c *Chip) Frequency() physic.Frequency {
	c.mu.Lock()
	defer c.mu.Unlock()
	return 25 * physic.MegaHertz / physic.Frequency(4096*(int64(c.regs[RegPreScale])+1))
}

// OnOutput calls fn with channel ch's output level (its duty cycle, 0..1,
// as Duty) now and whenever a transfer changes it, at the transfer's STOP
// (after the clock was advanced by its wire time). fn runs outside the
// chip's lock; it must not call back into the bus. A second call replaces
// the first; a nil fn stops watching.
func (c *Chip) OnOutput(ch int, fn func(level float64)) {
	c.mu.Lock()
	if fn == nil {
		delete(c.watch, ch)
		c.mu.Unlock()
		return
	}
	w := &watcher{fn: fn, level: c.duty(ch)}
	c.watch[ch] = w
	c.mu.Unlock()
	fn(w.level)
}

// Duty is channel ch's duty cycle, 0..1, as the output pin shows it (0
// while sleeping).
func (c *Chip) Duty(ch int) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.duty(ch)
}

func (c *Chip) duty(ch int) float64 {
	if ch < 0 || ch > 15 || c.regs[RegMode1]&mode1Sleep != 0 {
		return 0
	}
	b := c.regs[RegLED0+4*ch : RegLED0+4*ch+4]
	switch {
	case b[3]&fullBit != 0:
		return 0
	case b[1]&fullBit != 0:
		return 1
	}
	on := int(b[0]) | int(b[1]&0x0F)<<8
	off := int(b[2]) | int(b[3]&0x0F)<<8
	d := (off - on + 4096) % 4096
	return float64(d) / 4096
}

// I2CTx implements ticemu.Device: a write sets the register pointer from
// its first byte and writes the rest; a read returns registers from the
// pointer on.
//
// A timed chip (NewTimed) advances its clock by the transfer's wire time
// first, and then calls the output watchers whose level changed.
func (c *Chip) I2CTx(w, r []byte) error {
	if c.opts.Clock != nil {
		c.opts.Clock.Advance(WireTime(len(w), len(r), c.opts.BusSpeed))
	}
	c.mu.Lock()
	err := c.tx(w, r)
	var changed []func()
	for ch, wt := range c.watch {
		if l := c.duty(ch); l != wt.level {
			wt.level = l
			fn := wt.fn
			changed = append(changed, func() { fn(l) })
		}
	}
	c.mu.Unlock()
	for _, f := range changed {
		f()
	}
	return err
}

func (c *Chip) tx(w, r []byte) error {
	if c.nackLeft > 0 {
		c.nackLeft--
		return fmt.Errorf("injected fault: %w", ticemu.ErrNACK)
	}
	if len(w) == 0 && len(r) > 0 {
		return fmt.Errorf("pca9685: read without a register pointer")
	}
	if len(w) == 0 {
		return nil
	}
	ptr := w[0]
	ai := c.regs[RegMode1]&mode1AI != 0
	for _, v := range w[1:] {
		c.set(ptr, v)
		if ai {
			ptr++
		}
	}
	if len(w) > 1 {
		c.writes++
	}
	for i := range r {
		if ptr >= RegAllLED && ptr < RegPreScale {
			r[i] = 0 // ALL_LED reads as zero
		} else {
			r[i] = c.regs[ptr]
		}
		if ai {
			ptr++
		}
	}
	return nil
}

func (c *Chip) set(reg, v byte) {
	switch {
	case reg == RegMode1:
		c.regs[reg] = v &^ mode1Restart // writing 1 clears RESTART
	case reg == RegPreScale:
		if c.regs[RegMode1]&mode1Sleep != 0 { // blocked while running
			c.regs[reg] = max(v, 3) // the chip clamps to 3
		}
	case reg >= RegAllLED && reg < RegPreScale:
		for ch := range 16 {
			c.regs[RegLED0+4*ch+int(reg-RegAllLED)] = v
		}
	default:
		c.regs[reg] = v
	}
}
