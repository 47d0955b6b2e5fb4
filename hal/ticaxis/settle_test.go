package ticaxis

import (
	"context"
	"testing"
	"time"

	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/ticemu"

	"periph.io/x/conn/v3/physic"
)

// watchClock is a virtual clock that advances in 1 ms steps and records,
// for each watched Tic, the last instant its motor was still stepping: the
// true arrival, to the millisecond.
type watchClock struct {
	*sim.Clock
	emus   []*ticemu.Tic
	moving []time.Time
}

func (c *watchClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for d > 0 {
		s := min(d, time.Millisecond)
		c.Advance(s)
		d -= s
		for i, e := range c.emus {
			if e.Moving() {
				c.moving[i] = c.Now()
			}
		}
	}
	return nil
}

func newStageRig(t *testing.T, settle time.Duration) (*watchClock, hal.Stage) {
	t.Helper()
	clk := &watchClock{Clock: sim.NewClock()}
	bus := ticemu.NewBus()
	ex, ey := ticemu.New(clk, emuOpts()), ticemu.New(clk, emuOpts())
	clk.emus, clk.moving = []*ticemu.Tic{ex, ey}, make([]time.Time, 2)
	if err := bus.Attach(0x0E, ex); err != nil {
		t.Fatal(err)
	}
	if err := bus.Attach(0x0F, ey); err != nil {
		t.Fatal(err)
	}
	g := NewGroup()
	ox, oy := axisOpts("x", 0x0E), axisOpts("y", 0x0F)
	ox.Group, oy.Group = g, g
	ox.Settle, oy.Settle = settle, settle
	x, err := New(bus, clk, ox)
	if err != nil {
		t.Fatal(err)
	}
	y, err := New(bus, clk, oy)
	if err != nil {
		t.Fatal(err)
	}
	st := hal.Stage{X: x, Y: y}
	if err := st.Home(context.Background()); err != nil {
		t.Fatal(err)
	}
	return clk, st
}

// Stage.MoveTo waits X, then Y. Y's short move arrives while X is still
// travelling: its settle runs meanwhile, so the stage is ready one settle
// after the later arrival, not two; and neither axis's Wait returns before
// a full settle after its true arrival.
func TestSettleRunsFromArrivalNotFromWait(t *testing.T) {
	const settle = 60 * time.Millisecond
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		x, y   physic.Distance
		lastUp int // the axis that arrives last
	}{
		{"x long", 20 * physic.MilliMetre, 1 * physic.MilliMetre, 0},
		{"y long", 1 * physic.MilliMetre, 20 * physic.MilliMetre, 1},
		{"equal", 5 * physic.MilliMetre, 5 * physic.MilliMetre, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk, st := newStageRig(t, settle)
			start := clk.Now()
			if err := st.MoveTo(ctx, tc.x, tc.y); err != nil {
				t.Fatal(err)
			}
			end := clk.Now()
			last := clk.moving[tc.lastUp]
			for i, m := range clk.moving {
				if end.Sub(m) < settle {
					t.Errorf("axis %d: MoveTo returned %s after its arrival, before the %s settle", i, end.Sub(m), settle)
				}
			}
			// Slack for the prediction's margin and one poll (without the
			// fix the second axis settles again: a whole settle over).
			if over := end.Sub(last) - settle; over > 15*time.Millisecond {
				t.Errorf("stage ready %s after the last arrival + settle (move took %s): the settles did not overlap", over, end.Sub(start))
			}
		})
	}
}

// An axis waited for long after it arrived has settled by then: Wait
// returns at once, and a later Wait of a fresh move settles fully.
func TestWaitAfterArrivalDoesNotSettleAgain(t *testing.T) {
	const settle = 60 * time.Millisecond
	ctx := context.Background()
	clk, st := newStageRig(t, settle)
	if err := st.X.Start(2 * physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	// The caller does other work (within the Tic's 1 s command timeout).
	if err := clk.Sleep(ctx, 700*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	t0 := clk.Now()
	if err := st.X.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if d := clk.Now().Sub(t0); d > 0 {
		t.Errorf("Wait after arrival and settle took %s, want 0", d)
	}
	// Waited right away: the full settle after the true arrival.
	if err := hal.MoveTo(ctx, st.X, 3*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	if d := clk.Now().Sub(clk.moving[0]); d < settle || d > settle+15*time.Millisecond {
		t.Errorf("returned %s after arrival, want the %s settle", d, settle)
	}
}

// A move against the approach side overshoots and comes back: the settle
// runs from the arrival of the second leg, never from the first.
func TestSettleAfterBacklashLeg(t *testing.T) {
	const settle = 60 * time.Millisecond
	ctx := context.Background()
	clk := &watchClock{Clock: sim.NewClock()}
	bus := ticemu.NewBus()
	eo := emuOpts()
	eo.BacklashSteps = 2
	emu := ticemu.New(clk, eo)
	clk.emus, clk.moving = []*ticemu.Tic{emu}, make([]time.Time, 1)
	if err := bus.Attach(0x0E, emu); err != nil {
		t.Fatal(err)
	}
	o := axisOpts("x", 0x0E)
	o.Settle, o.Backlash = settle, 200*physic.MicroMetre
	ax, err := New(bus, clk, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []physic.Distance{10 * physic.MilliMetre, 4030 * physic.MicroMetre} { // the second from above
		if err := hal.MoveTo(ctx, ax, p); err != nil {
			t.Fatal(err)
		}
		if d := clk.Now().Sub(clk.moving[0]); d < settle || d > settle+15*time.Millisecond {
			t.Errorf("move to %s: Wait returned %s after the arrival, want the %s settle", p, d, settle)
		}
	}
}
