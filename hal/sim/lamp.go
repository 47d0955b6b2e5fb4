package sim

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"papscan/hal/sim/slide"
)

// Lamp is the simulated transmitted light as the camera sees it: it
// records when the lamp's line was on, with the true stage pose at each
// edge, so the camera can integrate the light over an exposure along the
// true motion. A pulse shorter than the camera's exposure is overdriven
// (PulseGain) so that one pulse exposes a frame as fully as steady light
// over the whole exposure does, as a strobe driver does.
type Lamp struct {
	clock interface{ Now() time.Time }
	pose  func() (x, y, z float64)

	mu    sync.Mutex
	on    bool
	level float64 // light while on, relative to full (a PWM duty cycle)
	since time.Time
	from  [3]float64
	spans []LitSpan
	stuck bool // the line no longer reaches the lamp
}

// LitSpan is one interval of light with the true pose at its edges.
type LitSpan struct {
	Start, End time.Time
	From, To   [3]float64 // x, y, z (µm) at Start and End
	// Level is the light relative to full during the span: 1 for a
	// switched lamp, the duty cycle of a PWM-dimmed one (whose period is
	// far shorter than an exposure, so a frame integrates its mean).
	Level float64
}

// NewLamp returns a lamp, off, whose edges sample pose.
func NewLamp(clock interface{ Now() time.Time }, pose func() (x, y, z float64)) *Lamp {
	return &Lamp{clock: clock, pose: pose}
}

// Set switches the lamp (the level the line drives it to).
func (l *Lamp) Set(on bool) {
	if on {
		l.SetLevel(1)
	} else {
		l.SetLevel(0)
	}
}

// SetLevel sets the lamp's light relative to full, 0 (off) to 1: the duty
// cycle of the PWM output that drives it (hal/sim/pca9685emu's OnOutput).
// Levels outside [0, 1] are clamped.
func (l *Lamp) SetLevel(level float64) {
	level = min(max(level, 0), 1)
	if !(level >= 0) { // NaN
		level = 0
	}
	now := l.clock.Now()
	x, y, z := l.pose()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stuck {
		level = 0
	}
	on := level > 0
	if on == l.on && (!on || level == l.level) {
		return
	}
	if l.on { // close the span of the old level
		l.spans = append(l.spans, LitSpan{Start: l.since, End: now, From: l.from, To: [3]float64{x, y, z}, Level: l.level})
		if len(l.spans) > 64 {
			l.spans = append(l.spans[:0], l.spans[len(l.spans)-32:]...)
		}
	}
	l.on, l.level = on, level
	if on {
		l.since, l.from = now, [3]float64{x, y, z}
	}
}

// Break makes the lamp stay dark whatever its line does (a dead LED, a
// broken strobe wire); Repair ends it.
func (l *Lamp) Break() {
	l.mu.Lock()
	l.stuck = true
	l.mu.Unlock()
	l.Set(false)
}

// Repair ends Break.
func (l *Lamp) Repair() {
	l.mu.Lock()
	l.stuck = false
	l.mu.Unlock()
}

// lit returns the light within [t0, t1]: the spans that overlap it
// (clipped; a span still on is closed at t1 with pose now) and the time
// they cover, unweighted and weighted by their level (full-light time).
func (l *Lamp) lit(t0, t1 time.Time) (spans []LitSpan, on, full time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	all := l.spans
	if l.on {
		x, y, z := l.pose()
		all = append(all[:len(all):len(all)], LitSpan{Start: l.since, End: l.clock.Now(), From: l.from, To: [3]float64{x, y, z}, Level: l.level})
	}
	for _, s := range all {
		a, b := s.Start, s.End
		if !b.After(t0) || !a.Before(t1) {
			continue
		}
		if a.Before(t0) {
			a = t0
		}
		if b.After(t1) {
			b = t1
		}
		on += b.Sub(a)
		full += time.Duration(float64(b.Sub(a)) * s.Level)
		if d := s.End.Sub(s.Start); d > 0 {
			s.Level *= float64(b.Sub(a)) / float64(d) // a pulse cut by the exposure's edge gives that much less
			// The poses at the cut edges, along the span's straight path.
			fa, fb := float64(a.Sub(s.Start))/float64(d), float64(b.Sub(s.Start))/float64(d)
			from, to := s.From, s.To
			for k := range 3 {
				s.From[k] = from[k] + (to[k]-from[k])*fa
				s.To[k] = from[k] + (to[k]-from[k])*fb
			}
		}
		s.Start, s.End = a, b
		spans = append(spans, s)
	}
	return spans, on, full
}

// lastPulseSince is the start of the last span that started at or after
// t, zero if none.
func (l *Lamp) lastPulseSince(t time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.spans); n > 0 && !l.spans[n-1].Start.Before(t) {
		return l.spans[n-1].Start
	}
	return time.Time{}
}

// LinePin is a GPIO output line in the simulator: a gpiotest pin whose
// level switches the simulated device on its other end (a strobe Lamp, a
// camera's Trigger input), active high unless ActiveLow.
type LinePin struct {
	*gpiotest.Pin
	Device    interface{ Set(on bool) }
	ActiveLow bool
}

// Out implements gpio.PinOut.
func (p *LinePin) Out(l gpio.Level) error {
	if err := p.Pin.Out(l); err != nil {
		return err
	}
	p.Device.Set(bool(l) != p.ActiveLow)
	return nil
}

// readLit is ReadFrame for a camera that sees a Lamp. The camera runs free:
// frame k is exposed from phase+k×FrameInterval for Exposure. A read
// returns the frame holding the last pulse fired since the previous frame
// (waiting for its exposure to end), else the next frame that starts now or
// later. The frame's light is the lamp's, integrated along the true pose:
// no light, a dark frame.
func (c *Camera) readLit(ctx context.Context, dst []byte) ([]byte, error) {
	now := c.clock.Now()
	iv := c.opts.FrameInterval
	origin := Epoch.Add(cameraPhase)
	k := uint64(0)
	if d := now.Sub(origin); d > 0 {
		k = uint64((d + iv - 1) / iv) // next start >= now
	}
	if p := c.opts.Lamp.lastPulseSince(c.litEnd); !p.IsZero() && p.After(origin) {
		k = uint64(p.Sub(origin) / iv) // the pulse's frame (dark if the pulse fell between exposures)
	}
	if k <= c.seq && c.frames > 0 {
		k = c.seq + 1
	}
	start := origin.Add(time.Duration(k) * iv)
	end := start.Add(c.opts.Exposure)
	var x0, y0, z0 float64
	if now.Before(start) {
		if err := c.clock.Sleep(ctx, start.Sub(now)); err != nil {
			return dst[:0], err
		}
		x0, y0, z0 = c.opts.Pose()
	}
	s := c.specimen()
	if c.opts.LineTime > 0 {
		return c.readRollingLit(ctx, dst, s, k, start, now.Before(start), [3]float64{x0, y0, z0})
	}
	if now := c.clock.Now(); now.Before(end) {
		if err := c.clock.Sleep(ctx, end.Sub(now)); err != nil {
			return dst[:0], err
		}
	}
	spans, on, full := c.opts.Lamp.lit(start, end)
	light := 0.0
	var from, to [3]float64
	switch {
	case len(spans) == 0:
		x0, y0, z0 = c.opts.Pose()
		from, to = [3]float64{x0, y0, z0}, [3]float64{x0, y0, z0}
	case on >= c.opts.Exposure*9/10:
		// Steady light over the exposure: the path from its start to end.
		x1, y1, _ := c.opts.Pose()
		if !now.Before(start) { // started before the read: poses from the lamp's record
			x0, y0, z0 = spans[0].From[0], spans[0].From[1], spans[0].From[2]
		}
		from, to = [3]float64{x0, y0, z0}, [3]float64{x1, y1, z0}
		light = float64(full) / float64(c.opts.Exposure)
	default:
		// Pulses: each is overdriven to a full exposure's light.
		from, to = spans[0].From, spans[len(spans)-1].To
		for _, sp := range spans {
			light += sp.Level
		}
	}
	c.render(s, from[0], from[1], (from[2]+to[2])/2, to[0], to[1], math.Min(light, 4))
	c.frames++
	c.seq, c.litEnd = k, end
	c.stamp(k, start)
	return c.encode(dst), nil
}

// readRollingLit finishes readLit for a rolling shutter: it waits for
// the frame's last row, then renders each row under the lamp's light at
// its own time. The pose track holds the pose at the frame's start (when
// the read came before it), at the lamp's edges and at the frame's end.
func (c *Camera) readRollingLit(ctx context.Context, dst []byte, s *slide.Slide, k uint64, start time.Time, haveStart bool, p0 [3]float64) ([]byte, error) {
	end := c.frameEnd(start)
	if now := c.clock.Now(); now.Before(end) {
		if err := c.clock.Sleep(ctx, end.Sub(now)); err != nil {
			return dst[:0], err
		}
	}
	var tr poseTrack
	if haveStart {
		tr.add(start, p0)
	}
	addEdges(&tr, c.opts.Lamp, start, end)
	x1, y1, z1 := c.opts.Pose()
	tr.add(c.clock.Now(), [3]float64{x1, y1, z1})
	c.renderRolling(s, start, tr)
	c.frames++
	c.seq, c.litEnd = k, end
	c.stamp(k, start)
	return c.encode(dst), nil
}

// cameraPhase is where the free-running camera's frame grid starts.
const cameraPhase = 7300 * time.Microsecond

// String names the lamp for errors.
func (l *Lamp) String() string { return fmt.Sprintf("sim lamp (on %v)", l.on) }
