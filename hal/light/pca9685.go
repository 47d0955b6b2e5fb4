package light

import (
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/pca9685"

	"papscan/hal"
)

// PCA9685Options configures a PWM-dimmed lamp on one PCA9685 channel.
type PCA9685Options struct {
	// Name names the lamp in errors and faults; default "light".
	Name string
	// Address is the PCA9685's 7-bit I²C address; 0 means 0x40.
	Address uint16
	// Channel is the output, 0..15.
	Channel int
	// Frequency is the PWM frequency, 24 Hz..1526 Hz (the chip's prescaler
	// range with its 25 MHz oscillator). Pick it well above the camera's
	// frame rate and not near a multiple of it, or frames flicker.
	Frequency physic.Frequency
	// BusSpeed is the I²C bus clock the chip is written at; default
	// 100 kHz. It sets how long a switch of the lamp takes (SwitchTime).
	BusSpeed physic.Frequency
}

// PCA9685 is a hal.Light dimmed by a PCA9685 PWM channel through periph's
// devices/v3/pca9685 driver. Brightness maps linearly onto the duty cycle in
// 4096 steps; 0 and 1 use the chip's full-off and full-on bits (no residual
// glitch pulses). A failed I²C write latches a hal.FaultBus: SetBrightness
// is refused until ClearFault, since the lamp's real state is unknown.
//
// periph's driver waits (time.Sleep, wall clock) about 300 ms in total for
// the oscillator while NewPCA9685 initialises the chip.
type PCA9685 struct {
	opts PCA9685Options
	dev  *pca9685.Dev

	freq physic.Frequency

	mu    sync.Mutex
	level float64
	fault error
}

var _ hal.Light = (*PCA9685)(nil)

// oscPer4096 is the PCA9685's 25 MHz internal oscillator over its 4096-count
// period.
const oscPer4096 = 25 * physic.MegaHertz / 4096

// PreScale is the PRE_SCALE register value for PWM frequency f (datasheet
// equation 1: round(25 MHz / (4096 × f)) - 1), at least 3.
func PreScale(f physic.Frequency) int64 {
	return max(int64((oscPer4096+f/2)/f)-1, 3)
}

// Frequency is the PWM frequency the chip runs at (the prescaler's
// resolution makes it differ from the one asked for by up to a few %).
func (l *PCA9685) Frequency() physic.Frequency { return l.freq }

// NewPCA9685 initialises the chip (all outputs off, totem-pole outputs,
// auto-increment, the PWM frequency) and switches the lamp off.
func NewPCA9685(bus i2c.Bus, o PCA9685Options) (*PCA9685, error) {
	if o.Name == "" {
		o.Name = "light"
	}
	if o.Address == 0 {
		o.Address = pca9685.I2CAddr
	}
	if o.BusSpeed <= 0 {
		o.BusSpeed = 100 * physic.KiloHertz
	}
	if o.Address > 0x7F {
		return nil, fmt.Errorf("%s: 0x%X is not a 7-bit I2C address", o.Name, o.Address)
	}
	if o.Channel < 0 || o.Channel > 15 {
		return nil, fmt.Errorf("%s: PCA9685 channel must be 0..15, got %d", o.Name, o.Channel)
	}
	if o.Frequency < 24*physic.Hertz || o.Frequency > 1526*physic.Hertz {
		return nil, fmt.Errorf("%s: PWM frequency must be in 24Hz..1526Hz, got %s", o.Name, o.Frequency)
	}
	dev, err := pca9685.NewI2C(bus, o.Address)
	if err != nil {
		return nil, hal.NewFault(o.Name, hal.FaultBus, fmt.Errorf("pca9685 at 0x%02X: init: %w", o.Address, err))
	}
	// periph's SetPwmFreq writes PRE_SCALE = round(25 MHz/(4096 f)),
	// missing the datasheet's "- 1" (equation 1), which makes 1 kHz come out
	// as 872 Hz. Ask it for the frequency whose rounding gives the right
	// prescaler.
	pre := PreScale(o.Frequency)
	if err := dev.SetPwmFreq(oscPer4096 / physic.Frequency(pre)); err != nil {
		return nil, hal.NewFault(o.Name, hal.FaultBus, fmt.Errorf("pca9685 at 0x%02X: set PWM frequency: %w", o.Address, err))
	}
	l := &PCA9685{opts: o, dev: dev, freq: oscPer4096 / physic.Frequency(pre+1)}
	if err := l.SetBrightness(0); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *PCA9685) String() string {
	return fmt.Sprintf("%s (pca9685 0x%02X channel %d)", l.opts.Name, l.opts.Address, l.opts.Channel)
}

// I2CWriteTime is how long a write of n bytes (after the address byte)
// occupies an I²C bus at speed: START, 9 bit times per byte with its
// acknowledge, STOP.
func I2CWriteTime(n int, speed physic.Frequency) time.Duration {
	bits := int64(9*(1+n) + 2)
	return time.Duration(bits * int64(time.Second) / int64(speed/physic.Hertz))
}

// SwitchOnTime is the time from the call that switches the lamp fully on
// to the light: the full-on write (register pointer and three bytes) on the
// wire, whose STOP changes the output. 470 µs at 100 kHz.
func (l *PCA9685) SwitchOnTime() time.Duration { return I2CWriteTime(4, l.opts.BusSpeed) }

// SwitchTime is the time from the call that switches the lamp off to the
// dark: the full-off write (register pointer and one byte) on the wire.
// A strobe pulse can be no shorter (290 µs at 100 kHz; the kernel's I²C
// call adds its own latency on the robot).
func (l *PCA9685) SwitchTime() time.Duration { return I2CWriteTime(2, l.opts.BusSpeed) }

// Duty is the 12-bit off count for level (0..4095 within a 4096-count
// period); 0 and 4096 mean the full-off and full-on bits.
func Duty(level float64) gpio.Duty {
	return gpio.Duty(math.Round(level * 4096))
}

// SetBrightness implements hal.Light.
func (l *PCA9685) SetBrightness(level float64) error {
	if !(level >= 0 && level <= 1) {
		return fmt.Errorf("%s: brightness %g outside [0, 1]", l.opts.Name, level)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fault != nil {
		return fmt.Errorf("%s: brightness refused: %w", l.opts.Name, l.fault)
	}
	var err error
	switch d := Duty(level); {
	case d <= 0:
		err = l.dev.SetFullOff(l.opts.Channel)
	case d >= 4096:
		err = l.dev.SetFullOn(l.opts.Channel)
	default:
		err = l.dev.SetPwm(l.opts.Channel, 0, d)
	}
	if err != nil {
		// Not retried: whether the chip took the write is unknown.
		l.fault = hal.NewFault(l.opts.Name, hal.FaultBus, fmt.Errorf("set brightness %g: %w", level, err))
		return l.fault
	}
	l.level = level
	return nil
}

// Brightness implements hal.Light: the last level set.
func (l *PCA9685) Brightness() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.level
}

// Fault returns the latched fault, or nil.
func (l *PCA9685) Fault() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fault
}

// ClearFault clears the latched fault and switches the lamp off.
func (l *PCA9685) ClearFault() error {
	l.mu.Lock()
	l.fault = nil
	l.mu.Unlock()
	return l.SetBrightness(0)
}
