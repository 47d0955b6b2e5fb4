package sim

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"papscan/hal"
)

// Trigger is the simulated camera's external trigger input: it records
// each edge to the active level with the true stage pose at that instant,
// and the camera (CameraOptions.Trigger) exposes one frame from each edge
// it is not too busy to take.
type Trigger struct {
	clock interface{ Now() time.Time }
	pose  func() (x, y, z float64)

	mu     sync.Mutex
	active bool
	edges  []TriggerEdge
	broken bool
	n      int
}

// TriggerEdge is one leading edge of a trigger pulse.
type TriggerEdge struct {
	At   time.Time
	Pose [3]float64 // true x, y, z (µm) at the edge
}

// NewTrigger returns an idle trigger input whose edges sample pose.
func NewTrigger(clock interface{ Now() time.Time }, pose func() (x, y, z float64)) *Trigger {
	return &Trigger{clock: clock, pose: pose}
}

// Set is the line's level at the camera (true: active).
func (t *Trigger) Set(active bool) {
	now := t.clock.Now()
	x, y, z := t.pose()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.broken {
		active = false
	}
	if active && !t.active {
		t.n++
		t.edges = append(t.edges, TriggerEdge{At: now, Pose: [3]float64{x, y, z}})
		if len(t.edges) > 64 {
			t.edges = append(t.edges[:0], t.edges[len(t.edges)-32:]...)
		}
	}
	t.active = active
}

// Edges is the number of leading edges the camera saw.
func (t *Trigger) Edges() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// Break cuts the trigger wire: the camera sees no edge whatever the line
// does, so it exposes nothing. Repair ends it.
func (t *Trigger) Break() {
	t.mu.Lock()
	t.broken, t.active = true, false
	t.mu.Unlock()
}

// Repair ends Break.
func (t *Trigger) Repair() {
	t.mu.Lock()
	t.broken = false
	t.mu.Unlock()
}

// take returns the first edge at or after notBefore and forgets every
// edge up to it (edges before notBefore came while the sensor was busy
// and were ignored).
func (t *Trigger) take(notBefore time.Time) (TriggerEdge, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, e := range t.edges {
		if !e.At.Before(notBefore) {
			t.edges = append(t.edges[:0], t.edges[i+1:]...)
			return e, true
		}
	}
	t.edges = t.edges[:0]
	return TriggerEdge{}, false
}

// readTriggered is ReadFrame for a camera in external-trigger mode: the
// frame is exposed from the first trigger edge since the sensor became
// free (the previous exposure's start plus FrameInterval: edges before
// that are ignored, as a busy sensor ignores them) for Exposure, along the
// true motion from the pose at the edge; under a Lamp its light is the
// lamp's. No edge: the read waits for the timeout and fails with
// hal.ErrTimeout, as a triggered camera that never exposes does.
func (c *Camera) readTriggered(ctx context.Context, dst []byte) ([]byte, error) {
	e, ok := c.opts.Trigger.take(c.next)
	if !ok {
		if err := c.clock.Sleep(ctx, c.opts.Timeout); err != nil {
			return dst[:0], err
		}
		return dst[:0], fmt.Errorf("%s: no trigger edge, no frame within %v: %w", c.opts.Name, c.opts.Timeout, hal.ErrTimeout)
	}
	start := e.At
	end := start.Add(c.opts.Exposure)
	c.next = start.Add(c.opts.FrameInterval)
	s := c.specimen()
	if c.opts.LineTime > 0 {
		fend := c.frameEnd(start)
		if now := c.clock.Now(); now.Before(fend) {
			if err := c.clock.Sleep(ctx, fend.Sub(now)); err != nil {
				return dst[:0], err
			}
		}
		tr := poseTrack{{start, e.Pose}}
		if c.opts.Lamp != nil {
			addEdges(&tr, c.opts.Lamp, start, fend)
		}
		x, y, z := c.opts.Pose()
		tr.add(c.clock.Now(), [3]float64{x, y, z})
		c.renderRolling(s, start, tr)
		c.frames++
		c.stamp(c.frames, start)
		return c.encode(dst), nil
	}
	x0, y0, z0 := e.Pose[0], e.Pose[1], e.Pose[2]
	now := c.clock.Now()
	if now.Before(end) {
		if err := c.clock.Sleep(ctx, end.Sub(now)); err != nil {
			return dst[:0], err
		}
	}
	x1, y1, _ := c.opts.Pose()
	if late := c.clock.Now().Sub(start); late > c.opts.Exposure {
		// Read after the exposure ended: the pose at its end, along the
		// straight path from the edge to now.
		f := float64(c.opts.Exposure) / float64(late)
		x1, y1 = x0+(x1-x0)*f, y0+(y1-y0)*f
	}
	light := 1.0
	if c.opts.Lamp != nil {
		spans, on, full := c.opts.Lamp.lit(start, end)
		switch {
		case len(spans) == 0:
			light, x1, y1 = 0, x0, y0
		case on >= c.opts.Exposure*9/10:
			light = float64(full) / float64(c.opts.Exposure)
		default:
			light = 0
			for _, sp := range spans {
				light += sp.Level
			}
			x0, y0, x1, y1 = spans[0].From[0], spans[0].From[1], spans[len(spans)-1].To[0], spans[len(spans)-1].To[1]
		}
	}
	c.render(s, x0, y0, z0, x1, y1, math.Min(light, 4))
	c.frames++
	c.stamp(c.frames, start)
	return c.encode(dst), nil
}
