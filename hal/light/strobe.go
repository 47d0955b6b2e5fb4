package light

import (
	"context"
	"fmt"
	"sync"
	"time"

	"papscan/hal"
)

// Strobe makes a lamp flash: Fire switches it fully on for the pulse width
// and off again, through the lamp's own driver (a GPIO line or a PCA9685
// channel), timed by the machine's clock. It is also the lamp's hal.Light,
// so the steady light of the stationary frames (autofocus, self-test) and
// the pulses of the moving frames go through one driver.
//
// On the robot the pulse width is what the clock can time: a userspace
// GPIO write and a kernel timer give pulses of tens of microseconds at
// best; a pulse of a few microseconds needs a hardware one-shot on the
// line. A lamp whose switching takes time on a bus (a PCA9685: each edge
// is an I²C write whose STOP changes the output) tells it through
// SwitchTime: the light then ends that long after the off call starts, so
// Fire waits that much less, and refuses a pulse shorter than it.
type Strobe struct {
	hal.Light
	clock hal.Clock

	mu     sync.Mutex
	pulses uint64
}

var (
	_ hal.Light  = (*Strobe)(nil)
	_ hal.Strobe = (*Strobe)(nil)
)

// NewStrobe returns lamp l as a strobe timed by clock.
func NewStrobe(l hal.Light, clock hal.Clock) (*Strobe, error) {
	if l == nil || clock == nil {
		return nil, fmt.Errorf("strobe: nil lamp or clock")
	}
	return &Strobe{Light: l, clock: clock}, nil
}

// String implements hal.Strobe.
func (s *Strobe) String() string { return s.Light.String() + " (strobe)" }

// Fire implements hal.Strobe. The lamp is left off after the pulse, even
// when ctx ends during it.
func (s *Strobe) Fire(ctx context.Context, width time.Duration) error {
	if width <= 0 {
		return fmt.Errorf("%s: pulse width %v must be > 0", s, width)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	wait := width
	if st, ok := s.Light.(interface{ SwitchTime() time.Duration }); ok {
		if sw := st.SwitchTime(); width < sw {
			return fmt.Errorf("%s: pulse width %v is shorter than the %v the lamp takes to switch off (an I2C write)", s, width, sw)
		} else {
			wait -= sw
		}
	}
	if err := s.Light.SetBrightness(1); err != nil {
		return fmt.Errorf("%s: pulse: %w", s, err)
	}
	werr := s.clock.Sleep(ctx, wait)
	if err := s.Light.SetBrightness(0); err != nil {
		return fmt.Errorf("%s: pulse end: %w", s, err)
	}
	if werr != nil {
		return werr
	}
	s.mu.Lock()
	s.pulses++
	s.mu.Unlock()
	return nil
}

// Pulses is the number of pulses fired.
func (s *Strobe) Pulses() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pulses
}
