package sim

import (
	"context"
	"sync"
	"time"

	"papscan/hal"
)

// Clock is a virtual clock. Sleep advances it by the requested duration and
// returns at once, so simulated machine
// time passes as fast as the host can compute. It is safe for concurrent use;
// concurrent sleepers each advance the clock, which models work done one
// after another on the machine.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

var _ hal.Clock = (*Clock)(nil)

// Epoch is where every new Clock starts: a fixed instant, so simulated runs
// are reproducible.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// NewClock returns a virtual clock set to Epoch.
func NewClock() *Clock { return &Clock{now: Epoch} }

// Now implements hal.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep implements hal.Clock: it advances the clock by d.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}

// Advance moves the clock forward by d (negative d is ignored).
func (c *Clock) Advance(d time.Duration) {
	if d <= 0 {
		return
	}
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Elapsed is the machine time since Epoch.
func (c *Clock) Elapsed() time.Duration { return c.Now().Sub(Epoch) }
