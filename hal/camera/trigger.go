package camera

import (
	"context"
	"fmt"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"papscan/hal"
)

// TriggerOptions configure a TriggerLine.
type TriggerOptions struct {
	// Name names the line in errors; default "camera trigger".
	Name string
	// ActiveLow: the camera triggers on the line going low.
	ActiveLow bool
	// Pulse is how long the line is held active; default 10 µs.
	Pulse time.Duration
	// MinInterval is the shortest time between two pulses' leading edges:
	// the camera's frame period. A camera still busy with a frame ignores
	// a trigger, so Fire waits until the interval is over. 0: no wait.
	MinInterval time.Duration
	// Clock times the pulse and the interval. Required.
	Clock hal.Clock
}

// TriggerLine is a GPIO output wired to a camera's external trigger
// input: each Fire exposes one frame, from the edge to the line's active
// level. It implements hal.Strobe (a pulse of the line) and is what
// Triggered and Recovering.SetTrigger fire before each frame they read.
// The line's level is kept in software, never read back.
type TriggerLine struct {
	pin  gpio.PinOut
	opts TriggerOptions

	mu   sync.Mutex
	last time.Time // leading edge of the last pulse
	n    uint64
}

var _ hal.Strobe = (*TriggerLine)(nil)

// NewTriggerLine takes pin over and drives it inactive.
func NewTriggerLine(pin gpio.PinOut, o TriggerOptions) (*TriggerLine, error) {
	if o.Name == "" {
		o.Name = "camera trigger"
	}
	if pin == nil || o.Clock == nil {
		return nil, fmt.Errorf("%s: no pin or clock", o.Name)
	}
	if o.Pulse <= 0 {
		o.Pulse = 10 * time.Microsecond
	}
	t := &TriggerLine{pin: pin, opts: o}
	if err := pin.Out(gpio.Level(o.ActiveLow)); err != nil {
		return nil, fmt.Errorf("%s: %w", o.Name, err)
	}
	return t, nil
}

// String implements hal.Strobe.
func (t *TriggerLine) String() string { return t.opts.Name }

// Pulses is the number of trigger pulses given.
func (t *TriggerLine) Pulses() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Trigger pulses the line for the configured width (Fire).
func (t *TriggerLine) Trigger(ctx context.Context) error { return t.Fire(ctx, t.opts.Pulse) }

// Fire implements hal.Strobe: it waits until MinInterval has passed since
// the last pulse's leading edge, drives the line active for width and
// inactive again (also when ctx ends during the pulse).
func (t *TriggerLine) Fire(ctx context.Context, width time.Duration) error {
	if width <= 0 {
		return fmt.Errorf("%s: pulse width %v must be > 0", t, width)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && t.opts.MinInterval > 0 {
		if d := t.last.Add(t.opts.MinInterval).Sub(t.opts.Clock.Now()); d > 0 {
			if err := t.opts.Clock.Sleep(ctx, d); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.pin.Out(gpio.Level(!t.opts.ActiveLow)); err != nil {
		return fmt.Errorf("%s: %w", t, err)
	}
	t.last = t.opts.Clock.Now()
	werr := t.opts.Clock.Sleep(ctx, width)
	if err := t.pin.Out(gpio.Level(t.opts.ActiveLow)); err != nil {
		return fmt.Errorf("%s: pulse end: %w", t, err)
	}
	t.n++
	return werr
}

// LastEdge is the time of the last pulse's leading edge, on the clock
// (zero before the first): when the camera began exposing its frame.
func (t *TriggerLine) LastEdge() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// Trigger is what a triggered frame source fires before each read.
type Trigger interface {
	fmt.Stringer
	Trigger(ctx context.Context) error
	// LastEdge is when the last trigger pulse began.
	LastEdge() time.Time
}

// triggeredInfo is the frame information of a triggered read: the
// source's sequence number, and as its timestamp the trigger's edge,
// which the agent timed on its own clock (a camera's buffer timestamp
// jitters by tens of microseconds or more: a millimetre per second of
// stage speed makes that a fraction of a micrometre per frame).
func triggeredInfo(src hal.FrameSource, t Trigger) hal.FrameInfo {
	var fi hal.FrameInfo
	if ft, ok := src.(hal.FrameTimer); ok {
		fi = ft.LastFrame()
	}
	if e := t.LastEdge(); !e.IsZero() && !fi.Timestamp.IsZero() {
		fi.Timestamp = e
	}
	return fi
}

// Triggered is a hal.FrameSource of a camera in external-trigger mode:
// each ReadFrame pulses the trigger, then reads the frame it exposed.
// Frame timing (hal.FrameTimer) and faults (hal.Latching) are the
// source's. Recovering.SetTrigger does the same below the recovery, so
// that a read retried after a reopen triggers again.
type Triggered struct {
	hal.FrameSource
	trig Trigger
}

var (
	_ hal.FrameSource = (*Triggered)(nil)
	_ hal.FrameTimer  = (*Triggered)(nil)
)

// NewTriggered returns src read through trigger t.
func NewTriggered(src hal.FrameSource, t Trigger) *Triggered {
	return &Triggered{FrameSource: src, trig: t}
}

// ReadFrame implements hal.FrameSource.
func (s *Triggered) ReadFrame(ctx context.Context, dst []byte) ([]byte, error) {
	if err := s.trig.Trigger(ctx); err != nil {
		return dst[:0], fmt.Errorf("%s: %w", s.FrameSource, err)
	}
	return s.FrameSource.ReadFrame(ctx, dst)
}

// LastFrame implements hal.FrameTimer when the source does; the
// timestamp is the trigger's edge (see triggeredInfo).
func (s *Triggered) LastFrame() hal.FrameInfo { return triggeredInfo(s.FrameSource, s.trig) }
