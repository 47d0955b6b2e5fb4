package panel

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"papscan/hal"
)

// Debouncer turns raw samples of a contact into a stable level: a new level
// counts once it has held for Delay without a bounce. It is pure logic fed
// with explicit times, so any clock drives it. The zero level is "released".
type Debouncer struct {
	Delay time.Duration

	stable    bool
	candidate bool
	since     time.Time // when candidate was first seen
}

// Sample feeds the raw level seen at t. It returns the debounced level and,
// when that level changed at this sample, changed = true and at = the time
// the new level began (the first sample of it, not when it was confirmed),
// so press durations are not skewed by the debounce delay.
func (d *Debouncer) Sample(raw bool, t time.Time) (level, changed bool, at time.Time) {
	if raw != d.candidate {
		d.candidate, d.since = raw, t
	}
	if d.candidate != d.stable && t.Sub(d.since) >= d.Delay {
		d.stable = d.candidate
		return d.stable, true, d.since
	}
	return d.stable, false, time.Time{}
}

// Level is the debounced level.
func (d *Debouncer) Level() bool { return d.stable }

// Button is one panel button on a GPIO input.
type Button struct {
	Name      string
	Pin       gpio.PinIn
	ActiveLow bool
	Pull      gpio.Pull
}

// ButtonOptions tune the button reader.
type ButtonOptions struct {
	Debounce  time.Duration // a level must hold this long (default 20 ms)
	LongPress time.Duration // a press held at least this long is long (default 2 s)
	// Poll is the longest wait for an edge before the level is sampled
	// anyway (default Debounce/2): it lets a debounce confirm after the
	// last bounce even though no further edge comes.
	Poll time.Duration
	// Now is the clock (default time.Now; tests use testing/synctest).
	Now func() time.Time
}

// Buttons reads the panel's buttons and delivers debounced presses: short,
// long (held at least LongPress) and chords (two or more buttons held
// together, e.g. Button "ack+start": names sorted and joined with "+"; the
// buttons of a chord give no presses of their own).
type Buttons struct {
	buttons []Button
	o       ButtonOptions
	presses chan hal.Press
	once    sync.Once
}

var _ hal.Buttons = (*Buttons)(nil)

// NewButtons configures the pins as inputs with both edges and returns the
// reader; start it with Run.
func NewButtons(bs []Button, o ButtonOptions) (*Buttons, error) {
	if o.Debounce <= 0 {
		o.Debounce = 20 * time.Millisecond
	}
	if o.LongPress <= 0 {
		o.LongPress = 2 * time.Second
	}
	if o.LongPress <= o.Debounce {
		return nil, fmt.Errorf("panel: long press %s must exceed debounce %s", o.LongPress, o.Debounce)
	}
	if o.Poll <= 0 {
		o.Poll = max(o.Debounce/2, time.Millisecond)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	seen := map[string]bool{}
	for _, b := range bs {
		if b.Pin == nil || b.Name == "" || strings.Contains(b.Name, "+") {
			return nil, fmt.Errorf("panel: button %q: needs a name without '+' and a pin", b.Name)
		}
		if seen[b.Name] {
			return nil, fmt.Errorf("panel: button %q twice", b.Name)
		}
		seen[b.Name] = true
		if err := b.Pin.In(b.Pull, gpio.BothEdges); err != nil {
			return nil, fmt.Errorf("panel: button %s: %w", b.Name, err)
		}
	}
	return &Buttons{buttons: bs, o: o, presses: make(chan hal.Press, 8)}, nil
}

// Presses implements hal.Buttons.
func (b *Buttons) Presses() <-chan hal.Press { return b.presses }

type sample struct {
	i   int
	raw bool
	t   time.Time
}

// Run reads the buttons until ctx ends, then closes Presses. One goroutine
// per pin waits for an edge (with the finite Poll timeout gpioioctl needs)
// and samples the level; one goroutine debounces and decodes presses.
func (b *Buttons) Run(ctx context.Context) error {
	started := false
	b.once.Do(func() { started = true })
	if !started {
		return errors.New("panel: Buttons.Run called twice")
	}
	defer close(b.presses)
	samples := make(chan sample, 4*len(b.buttons))
	var wg sync.WaitGroup
	for i, bt := range b.buttons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			active := gpio.Level(!bt.ActiveLow)
			for ctx.Err() == nil {
				bt.Pin.WaitForEdge(b.o.Poll)
				s := sample{i: i, raw: bt.Pin.Read() == active, t: b.o.Now()}
				select {
				case samples <- s:
				case <-ctx.Done():
				}
			}
		}()
	}
	defer wg.Wait()
	dec := newDecoder(b.buttons, b.o.Debounce, b.o.LongPress)
	for {
		select {
		case <-ctx.Done():
			return nil
		case s := <-samples:
			if p, ok := dec.feed(s); ok {
				select {
				case b.presses <- p:
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
}

// decoder turns debounced levels into presses and chords.
type decoder struct {
	names []string
	deb   []Debouncer
	down  []time.Time // press start per button; zero when released
	long  time.Duration

	chord      map[int]bool // buttons of the chord in progress
	chordStart time.Time    // when the chord's last button went down
	chordEnd   time.Time    // when the chord's first button was released
}

func newDecoder(bs []Button, debounce, long time.Duration) *decoder {
	d := &decoder{names: make([]string, len(bs)), deb: make([]Debouncer, len(bs)), down: make([]time.Time, len(bs)), long: long}
	for i, b := range bs {
		d.names[i] = b.Name
		d.deb[i].Delay = debounce
	}
	return d
}

func (d *decoder) held() int {
	n := 0
	for _, t := range d.down {
		if !t.IsZero() {
			n++
		}
	}
	return n
}

func (d *decoder) feed(s sample) (hal.Press, bool) {
	lvl, changed, at := d.deb[s.i].Sample(s.raw, s.t)
	if !changed {
		return hal.Press{}, false
	}
	if lvl { // pressed
		d.down[s.i] = at
		if d.held() >= 2 {
			if d.chord == nil {
				d.chord = map[int]bool{}
			}
			for i, t := range d.down {
				if !t.IsZero() {
					d.chord[i] = true
				}
			}
			d.chordStart = at
		}
		return hal.Press{}, false
	}
	start := d.down[s.i]
	d.down[s.i] = time.Time{}
	if d.chord != nil {
		if d.chordEnd.IsZero() {
			d.chordEnd = at
		}
		if d.held() > 0 {
			return hal.Press{}, false // wait for the chord's last release
		}
		var names []string
		for i := range d.chord {
			names = append(names, d.names[i])
		}
		sort.Strings(names)
		p := hal.Press{Button: strings.Join(names, "+"), Long: d.chordEnd.Sub(d.chordStart) >= d.long, At: at}
		d.chord, d.chordEnd = nil, time.Time{}
		return p, true
	}
	if start.IsZero() {
		return hal.Press{}, false
	}
	return hal.Press{Button: d.names[s.i], Long: at.Sub(start) >= d.long, At: at}, true
}
