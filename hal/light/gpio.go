package light

import (
	"fmt"
	"sync"

	"periph.io/x/conn/v3/gpio"

	"papscan/hal"
)

// GPIO is an on/off lamp on a GPIO output: any brightness above zero
// switches it on. The level is kept in software, never read back.
type GPIO struct {
	name      string
	pin       gpio.PinOut
	activeLow bool

	mu    sync.Mutex
	level float64
}

var _ hal.Light = (*GPIO)(nil)

// NewGPIO takes pin over and switches the lamp off.
func NewGPIO(name string, pin gpio.PinOut, activeLow bool) (*GPIO, error) {
	if pin == nil {
		return nil, fmt.Errorf("light %s: no pin", name)
	}
	l := &GPIO{name: name, pin: pin, activeLow: activeLow}
	return l, l.SetBrightness(0)
}

func (l *GPIO) String() string { return "light " + l.name }

// SetBrightness implements hal.Light. Levels outside [0, 1] are an error.
func (l *GPIO) SetBrightness(level float64) error {
	if !(level >= 0 && level <= 1) {
		return fmt.Errorf("%s: brightness %g outside [0, 1]", l, level)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	on := level > 0
	if err := l.pin.Out(gpio.Level(on != l.activeLow)); err != nil {
		return fmt.Errorf("%s: %w", l, err)
	}
	if on {
		l.level = 1
	} else {
		l.level = 0
	}
	return nil
}

// Brightness implements hal.Light: 0 or 1.
func (l *GPIO) Brightness() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.level
}
