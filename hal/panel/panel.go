package panel

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"papscan/hal"
)

// Tick is the blink clock's period: BlinkFast toggles every tick (4 Hz),
// BlinkSlow every four ticks (1 Hz).
const Tick = 125 * time.Millisecond

// LED is one indicator LED on a GPIO output.
type LED struct {
	name      string
	pin       gpio.PinOut
	activeLow bool

	mu      sync.Mutex
	pattern hal.Pattern
	code    int // blink code shown instead of pattern when > 0
	lit     bool
	err     error // last write error, reported by Show
}

var _ hal.Indicator = (*LED)(nil)

// NewLED takes pin over and switches the LED off.
func NewLED(name string, pin gpio.PinOut, activeLow bool) (*LED, error) {
	if pin == nil {
		return nil, fmt.Errorf("led %s: no pin", name)
	}
	l := &LED{name: name, pin: pin, activeLow: activeLow}
	if err := l.write(false); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *LED) String() string { return "led " + l.name }

// write sets the LED; l.mu is held or l is not shared yet.
func (l *LED) write(on bool) error {
	lvl := gpio.Level(on != l.activeLow)
	if err := l.pin.Out(lvl); err != nil {
		l.err = fmt.Errorf("%s: %w", l, err)
		return l.err
	}
	l.lit, l.err = on, nil
	return nil
}

// Show sets the LED's pattern. Steady patterns take effect at once; blink
// patterns start at the panel's next tick.
func (l *LED) Show(p hal.Pattern) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pattern, l.code = p, 0
	switch p {
	case hal.Off:
		return l.write(false)
	case hal.On:
		return l.write(true)
	case hal.BlinkSlow, hal.BlinkFast:
		return l.err
	}
	return fmt.Errorf("%s: unknown pattern %v", l, p)
}

// ShowSignal sets a pattern or a blink code (s.Blinks > 0; it starts at
// the panel's next tick).
func (l *LED) ShowSignal(s Signal) error {
	if s.Blinks <= 0 {
		return l.Show(s.Pattern)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pattern, l.code = hal.BlinkFast, s.Blinks
	return l.err
}

// Signal is what the LED shows.
func (l *LED) Signal() Signal {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.code > 0 {
		return Signal{Blinks: l.code}
	}
	return Signal{Pattern: l.pattern}
}

// Pattern implements hal.Indicator (a blink code reports BlinkFast).
func (l *LED) Pattern() hal.Pattern {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pattern
}

// Lit reports whether the LED is on at this moment (the software state).
func (l *LED) Lit() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lit
}

// step advances blink patterns to tick n.
func (l *LED) step(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.code > 0 {
		_ = l.write(codeLit(l.code, n))
		return
	}
	switch l.pattern {
	case hal.BlinkFast:
		_ = l.write(n%2 == 0)
	case hal.BlinkSlow:
		_ = l.write(n%8 < 4)
	}
}

// State is what the robot is doing, as the panel shows it.
type State int

// Robot states shown on the panel.
const (
	StateStarting  State = iota
	StateReady           // idle, waiting for a magazine or a command
	StateScanning        // scanning a magazine
	StateDone            // magazine finished, waiting for the technician
	StateFault           // a latched fault needs the technician
	StatePaused          // scanning paused by the technician (takes effect between slides)
	StateAttention       // stopped with work left: a slide needs a rerun
	StateStopping        // the service is stopping: parking, flushing results
)

var stateNames = [...]string{"starting", "ready", "scanning", "done", "fault", "paused", "attention", "stopping"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Patterns is what each LED shows in a state without overlays: ready
// (green), busy (amber), fault (red). Blink codes report BlinkFast; see
// Lights for the whole language.
func Patterns(s State) (ready, busy, fault hal.Pattern) {
	r, b, f := Lights(View{State: s})
	return r.Pattern, b.Pattern, f.Pattern
}

// Panel is the set of status LEDs.
type Panel struct {
	Ready, Busy, Fault *LED

	mu   sync.Mutex
	view View
}

// Show puts the panel in state s, without overlays.
func (p *Panel) Show(s State) error { return p.ShowView(View{State: s}) }

// ShowView shows v in the panel's LED language (see Lights).
func (p *Panel) ShowView(v View) error {
	p.mu.Lock()
	p.view = v
	p.mu.Unlock()
	r, b, f := Lights(v)
	return errors.Join(p.Ready.ShowSignal(r), p.Busy.ShowSignal(b), p.Fault.ShowSignal(f))
}

// State is the state last shown.
func (p *Panel) State() State {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.view.State
}

// View is the view last shown.
func (p *Panel) View() View {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.view
}

// Run clocks the blink patterns until ctx ends, then switches every LED
// off.
func (p *Panel) Run(ctx context.Context) error {
	t := time.NewTicker(Tick)
	defer t.Stop()
	for n := 0; ; n++ {
		for _, l := range []*LED{p.Ready, p.Busy, p.Fault} {
			l.step(n)
		}
		select {
		case <-ctx.Done():
			return errors.Join(p.Ready.Show(hal.Off), p.Busy.Show(hal.Off), p.Fault.Show(hal.Off))
		case <-t.C:
		}
	}
}

// WaitPress blocks until the button on pin is pressed and released, or ctx
// ends. A level must hold for debounce to count (periph's own debouncer
// ignores its arguments). It reports whether the press was long (held at
// least long). Edges are awaited with a finite timeout, as gpioioctl
// requires.
func WaitPress(ctx context.Context, pin gpio.PinIn, activeLow bool, debounce, long time.Duration) (bool, error) {
	active := gpio.Level(!activeLow)
	stable := func(want gpio.Level) bool {
		t := time.NewTimer(debounce)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		return pin.Read() == want
	}
	var down time.Time
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		pin.WaitForEdge(50 * time.Millisecond)
		lvl := pin.Read()
		switch {
		case down.IsZero() && lvl == active && stable(active):
			down = time.Now()
		case !down.IsZero() && lvl != active && stable(!active):
			return time.Since(down) >= long, nil
		}
	}
}
