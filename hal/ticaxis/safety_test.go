package ticaxis

import (
	"context"
	"errors"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"papscan/hal"
	"papscan/hal/sim/ticemu"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/tic"

	"papscan/hal/sim"
)

// wantFault checks that err is a latched *hal.Fault of device "x" with code.
func wantFault(t *testing.T, err error, code hal.FaultCode, msg string) {
	t.Helper()
	f := hal.FaultOf(err)
	if f == nil {
		t.Fatalf("err = %v, want a *hal.Fault", err)
	}
	if f.Device != "x" || f.Code != code {
		t.Fatalf("fault %s/%s, want x/%s: %v", f.Device, f.Code, code, err)
	}
	if !errors.Is(err, hal.ErrFault) {
		t.Errorf("errors.Is(err, ErrFault) false: %v", err)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Errorf("message %q lacks %q", err, msg)
	}
}

// requireLatched checks the latching rule: moves and homing are refused
// until ClearFault, moves until a new Home, then the axis works again.
func requireLatched(t *testing.T, r *rig) {
	t.Helper()
	ctx := context.Background()
	if f := hal.FaultOf(r.ax.Fault()); f == nil {
		t.Fatal("no fault latched")
	}
	if r.ax.Homed() {
		t.Fatal("still homed after a fault")
	}
	sets := r.emu.CommandCount(ticemu.CmdSetTargetPosition)
	if err := r.ax.Start(physic.MilliMetre); !errors.Is(err, hal.ErrFault) {
		t.Fatalf("move while latched: %v", err)
	}
	if err := r.ax.Home(ctx); !errors.Is(err, hal.ErrFault) {
		t.Fatalf("home while latched: %v", err)
	}
	if r.emu.CommandCount(ticemu.CmdSetTargetPosition) != sets {
		t.Fatal("a target was sent while latched")
	}
	if err := r.ax.ClearFault(); err != nil {
		t.Fatal(err)
	}
	if err := r.ax.Start(physic.MilliMetre); !errors.Is(err, hal.ErrNotHomed) {
		t.Fatalf("move after ClearFault before Home: %v", err)
	}
}

func TestFaultCodes(t *testing.T) {
	ctx := context.Background()

	t.Run("driver error", func(t *testing.T) {
		r := newRig(t, emuOpts(), nil)
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.ax.Start(20 * physic.MilliMetre); err != nil {
			t.Fatal(err)
		}
		r.clk.after(300*time.Millisecond, r.emu.InjectDriverError)
		wantFault(t, r.ax.Wait(ctx), hal.FaultDriver, "x: driver fault: move to 20mm: tic error: motor driver error")
		requireLatched(t, r)
		// The Tic's driver error is cleared by ClearFault; homing works.
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("kill switch during move", func(t *testing.T) {
		r := newRig(t, emuOpts(), nil)
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.ax.Start(20 * physic.MilliMetre); err != nil {
			t.Fatal(err)
		}
		r.clk.after(300*time.Millisecond, func() { r.emu.SetKillSwitch(true) })
		wantFault(t, r.ax.Wait(ctx), hal.FaultDriver, "kill switch active")
		r.emu.SetKillSwitch(false)
		requireLatched(t, r)
	})

	t.Run("limit outside homing", func(t *testing.T) {
		r := newRig(t, emuOpts(), func(o *Options) { o.TravelMax = 40 * physic.MilliMetre })
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		wantFault(t, hal.MoveTo(ctx, r.ax, 38*physic.MilliMetre), hal.FaultLimit, "forward limit switch active")
		if r.emu.Moving() {
			t.Error("still moving")
		}
		requireLatched(t, r)
	})

	t.Run("homing switch never triggers", func(t *testing.T) {
		r := newRig(t, emuOpts(), nil)
		r.emu.BreakLimitSwitch(true)
		err := r.ax.Home(ctx)
		wantFault(t, err, hal.FaultLimit, "limit switch never triggered")
		if !errors.Is(err, hal.ErrTimeout) {
			t.Errorf("not a timeout: %v", err)
		}
	})

	t.Run("move overruns its budget", func(t *testing.T) {
		r := newRig(t, emuOpts(), nil)
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.bus.Tx(tic.I2CAddr, []byte{ticemu.CmdSetSpeedMax, 0x40, 0x42, 0x0F, 0x00}, nil); err != nil {
			t.Fatal(err)
		}
		wantFault(t, hal.MoveTo(ctx, r.ax, 10*physic.MilliMetre), hal.FaultMotion, "still at")
	})

	t.Run("NACK on set target is not retried", func(t *testing.T) {
		r := newRig(t, emuOpts(), nil)
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		r.emu.InjectNACKOnCommand(ticemu.CmdSetTargetPosition, 1)
		halts := r.emu.CommandCount(ticemu.CmdHaltAndHold)
		err := r.ax.Start(5 * physic.MilliMetre)
		wantFault(t, err, hal.FaultBus, "set target")
		if !errors.Is(err, ticemu.ErrNACK) {
			t.Errorf("cause is not the NACK: %v", err)
		}
		// The state-changing write was sent exactly once (and lost): no
		// blind retry reached the Tic, and the axis was halted.
		if n := r.emu.CommandCount(ticemu.CmdSetTargetPosition); n != 0 {
			t.Errorf("%d set target commands reached the Tic", n)
		}
		if r.emu.CommandCount(ticemu.CmdHaltAndHold) != halts+1 {
			t.Error("not halted after the bus fault")
		}
		requireLatched(t, r)
	})

	t.Run("NACK on reads during a move", func(t *testing.T) {
		r := newRig(t, emuOpts(), nil)
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.ax.Start(20 * physic.MilliMetre); err != nil {
			t.Fatal(err)
		}
		// One NACK per read is absorbed by the retry; two are a fault.
		r.clk.after(100*time.Millisecond, func() { r.emu.InjectNACK(2) })
		wantFault(t, r.ax.Wait(ctx), hal.FaultBus, "i2c")
		if r.emu.Moving() {
			t.Error("still moving after the bus fault")
		}
	})
}

// TestDeadManStopsMotorWhenLoopStalls: a move is started, then the control
// loop stalls (nobody calls Wait, so nothing feeds the command timeout). The
// Tic stops the motor by itself one command timeout later, far from the
// target; the next call into the driver latches the fault.
func TestDeadManStopsMotorWhenLoopStalls(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	ctx := context.Background()
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.ax.Start(25 * physic.MilliMetre); err != nil { // a 2.6 s move
		t.Fatal(err)
	}
	r.clk.Advance(900 * time.Millisecond)
	if !r.emu.Moving() {
		t.Fatal("stopped before the command timeout")
	}
	r.clk.Advance(200 * time.Millisecond) // 1.1 s since the last command
	if r.emu.Moving() {
		t.Fatal("motor still running after the command timeout: no dead-man")
	}
	at := r.emu.PhysicalSteps() * 40
	if at > 15000 {
		t.Errorf("carriage went on to %g µm", at)
	}
	r.clk.Advance(5 * time.Second)
	if p := r.emu.PhysicalSteps() * 40; p != at {
		t.Errorf("carriage moved from %g to %g µm while stalled", at, p)
	}
	wantFault(t, r.ax.Wait(ctx), hal.FaultMotion, "command timeout")
	requireLatched(t, r)
}

// TestBacklashApproachFromOneSide runs the axis on an emulated screw with
// 2 full steps (80 µm) of backlash. Without compensation the carriage ends
// 80 µm apart depending on the side it came from; with it, every target is
// reached from below and the carriage lands on the same spot.
func TestBacklashApproachFromOneSide(t *testing.T) {
	ctx := context.Background()
	eo := emuOpts()
	eo.BacklashSteps = 2
	land := func(t *testing.T, backlash physic.Distance, via physic.Distance) float64 {
		r := newRig(t, eo, func(o *Options) { o.Backlash = backlash })
		if err := r.ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range []physic.Distance{via, 10 * physic.MilliMetre} {
			if err := hal.MoveTo(ctx, r.ax, p); err != nil {
				t.Fatal(err)
			}
		}
		if p, err := r.ax.Position(); err != nil || p != 10*physic.MilliMetre {
			t.Fatalf("position %s, %v", p, err)
		}
		return r.emu.PhysicalSteps() * 40
	}
	below, above := land(t, 0, 5*physic.MilliMetre), land(t, 0, 15*physic.MilliMetre)
	if d := math.Abs(below - above); math.Abs(d-80) > 1 {
		t.Fatalf("emulated backlash: landing differs by %g µm, want 80", d)
	}
	for _, bl := range []physic.Distance{100 * physic.MicroMetre, 200 * physic.MicroMetre} {
		below, above = land(t, bl, 5*physic.MilliMetre), land(t, bl, 15*physic.MilliMetre)
		if d := math.Abs(below - above); d > 0.5 {
			t.Errorf("backlash %s: landing differs by %g µm (from below %g, from above %g)", bl, d, below, above)
		}
	}
	// A small step up after a reversal is smaller than the play: it must
	// also go round, not just nudge the motor inside the play.
	r := newRig(t, eo, func(o *Options) { o.Backlash = 100 * physic.MicroMetre })
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []physic.Distance{10 * physic.MilliMetre, 15 * physic.MilliMetre, 9960 * physic.MicroMetre, 10 * physic.MilliMetre} {
		if err := hal.MoveTo(ctx, r.ax, p); err != nil {
			t.Fatal(err)
		}
	}
	if p := r.emu.PhysicalSteps() * 40; math.Abs(p-below) > 0.5 {
		t.Errorf("after a small step up the carriage is at %g µm, want %g", p, below)
	}
}

// TestBacklashWireBytes: a move down with 200 µm (40 µstep) backlash
// compensation sends two targets: the overshoot below, then the target.
func TestBacklashWireBytes(t *testing.T) {
	const A = tic.I2CAddr
	w := func(b ...byte) i2ctest.IO { return i2ctest.IO{Addr: A, W: b} }
	r := func(b ...byte) i2ctest.IO { return i2ctest.IO{Addr: A, R: b} }
	poll := func(pos byte) []i2ctest.IO {
		return []i2ctest.IO{
			w(0xA1, 0x02), r(0x00, 0x00),
			w(0xA1, 0x01), r(0x01),
			w(0xA1, 0x22), r(pos, 0x00, 0x00, 0x00),
			w(0xA1, 0x26), r(0x00, 0x00, 0x00, 0x00),
		}
	}
	ops := []i2ctest.IO{
		w(0xA1, 0x49), r(0x00),
		w(0x89), w(0x94, 0x03), w(0x91, 20),
		w(0xE6, 0x00, 0x2D, 0x31, 0x01), w(0xEA, 0x40, 0x42, 0x0F, 0x00), w(0xE9, 0x40, 0x42, 0x0F, 0x00),
		w(0xA8, 0x09), r(0xE8, 0x03),
		w(0x85), w(0x83), w(0xA1, 0x02), r(0x00, 0x00),
		// Home.
		w(0xA1, 0x02), r(0x00, 0x00), w(0x83), w(0xA1, 0x02), r(0x00, 0x00),
		w(0x97, 0x00),
		w(0xA1, 0x02), r(0x00, 0x00), w(0xA1, 0x01), r(0x01),
		// Start(1 mm) from 0: upwards, straight to 200 µsteps.
		w(0xA1, 0x01), r(0x01), w(0xA1, 0x02), r(0x00, 0x00),
		w(0xE0, 0xC8, 0x00, 0x00, 0x00),
	}
	ops = append(ops, poll(0xC8)...)
	// Start(0.5 mm): downwards: first 100-40 = 60 µsteps, then 100.
	ops = append(ops, w(0xA1, 0x01), r(0x01), w(0xA1, 0x02), r(0x00, 0x00), w(0xE0, 60, 0x00, 0x00, 0x00))
	ops = append(ops, poll(60)...)
	ops = append(ops, w(0xE0, 100, 0x00, 0x00, 0x00))
	ops = append(ops, poll(100)...)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	o := axisOpts("x", 0)
	o.Settle = 0
	o.Backlash = 200 * physic.MicroMetre
	ax, err := New(bus, sim.NewClock(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []physic.Distance{physic.MilliMetre, 500 * physic.MicroMetre} {
		if err := hal.MoveTo(ctx, ax, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

// hookBus runs hook before the n-th transfer (1-based) from now on.
type hookBus struct {
	*ticemu.Bus
	mu   sync.Mutex
	n    int
	hook func()
}

func (b *hookBus) Tx(addr uint16, w, r []byte) error {
	b.mu.Lock()
	b.n--
	var h func()
	if b.n == 0 {
		h = b.hook
	}
	b.mu.Unlock()
	if h != nil {
		h()
	}
	return b.Bus.Tx(addr, w, r)
}

// TestHaltDuringStartWinsOverTheTarget: a Halt from another goroutine that
// lands while Start is between its checks and its "Set target position"
// stops the move from ever being sent.
func TestHaltDuringStartWinsOverTheTarget(t *testing.T) {
	clk := sim.NewClock()
	emuBus := ticemu.NewBus()
	emu := ticemu.New(clk, emuOpts())
	if err := emuBus.Attach(tic.I2CAddr, emu); err != nil {
		t.Fatal(err)
	}
	bus := &hookBus{Bus: emuBus}
	ax, err := New(bus, clk, axisOpts("x", 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := ax.Home(context.Background()); err != nil {
		t.Fatal(err)
	}
	halted := make(chan error, 1)
	bus.mu.Lock()
	bus.n = 2 // Start reads misc flags, then error status: halt during the latter
	bus.hook = func() {
		go func() { halted <- ax.Halt() }()
		for ax.Homed() { // Halt unhomes before it queues for the bus
			runtime.Gosched()
		}
	}
	bus.mu.Unlock()
	err = ax.Start(20 * physic.MilliMetre)
	if !errors.Is(err, ErrHalted) {
		t.Fatalf("Start: %v", err)
	}
	if err := <-halted; err != nil {
		t.Fatal(err)
	}
	if n := emu.CommandCount(ticemu.CmdSetTargetPosition); n != 0 {
		t.Fatalf("%d targets sent after the Halt", n)
	}
	clk.Advance(time.Second)
	if emu.Moving() {
		t.Fatal("moving after Halt")
	}
}

// TestPositionUncertainIsDriverFault: after the Tic stopped a move abruptly
// by itself (here its dead-man), it reports "position uncertain"; the next
// Start reads that back and latches a driver fault instead of moving from
// a position nobody knows.
func TestPositionUncertainIsDriverFault(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	ctx := context.Background()
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.ax.Start(25 * physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	r.clk.Advance(3 * time.Second) // the loop stalls; the Tic stops by itself
	sets := r.emu.CommandCount(ticemu.CmdSetTargetPosition)
	err := r.ax.Start(5 * physic.MilliMetre)
	wantFault(t, err, hal.FaultDriver, "tic reports position uncertain")
	if r.emu.CommandCount(ticemu.CmdSetTargetPosition) != sets {
		t.Error("a target was sent from an uncertain position")
	}
	requireLatched(t, r)
}
