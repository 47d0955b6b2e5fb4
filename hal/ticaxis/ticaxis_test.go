package ticaxis

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/ticemu"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/tic"
)

// 200 steps/rev, 1/8 step, 8 mm lead: 0.2 microsteps per µm, 40 µm per full step.
func axisOpts(name string, addr uint16) Options {
	return Options{
		Name:            name,
		Address:         addr,
		Variant:         tic.TicT834,
		MicrostepsPerUM: 0.2,
		StepMode:        tic.StepModeMicrostep8,
		CurrentLimit:    640 * physic.MilliAmpere,
		MaxSpeed:        10 * physic.MilliMetrePerSecond,
		Acceleration:    50000,
		TravelMin:       0,
		TravelMax:       25 * physic.MilliMetre,
		CommandTimeout:  time.Second,
		Settle:          10 * time.Millisecond,
	}
}

func emuOpts() ticemu.Options {
	return ticemu.Options{
		TravelSteps:        30000 / 40, // 30 mm between the switches
		StartSteps:         300,
		HomingSpeedTowards: 40_000_000, // 4000 µsteps/s = 20 mm/s
		HomingSpeedAway:    2_000_000,
	}
}

// hookClock is a virtual clock that runs f once when machine time passes at.
type hookClock struct {
	*sim.Clock
	mu sync.Mutex
	at time.Time
	f  func()
}

func (c *hookClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := c.Clock.Sleep(ctx, d); err != nil {
		return err
	}
	c.mu.Lock()
	f := c.f
	if f != nil && !c.Now().Before(c.at) {
		c.f = nil
	} else {
		f = nil
	}
	c.mu.Unlock()
	if f != nil {
		f()
	}
	return nil
}

func (c *hookClock) after(d time.Duration, f func()) {
	c.mu.Lock()
	c.at, c.f = c.Now().Add(d), f
	c.mu.Unlock()
}

type rig struct {
	clk *hookClock
	bus *ticemu.Bus
	emu *ticemu.Tic
	ax  *Axis
}

func newRig(t *testing.T, eo ticemu.Options, mod func(*Options)) *rig {
	t.Helper()
	clk := &hookClock{Clock: sim.NewClock()}
	bus := ticemu.NewBus()
	emu := ticemu.New(clk, eo)
	if err := bus.Attach(tic.I2CAddr, emu); err != nil {
		t.Fatal(err)
	}
	o := axisOpts("x", 0)
	if mod != nil {
		mod(&o)
	}
	ax, err := New(bus, clk, o)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{clk, bus, emu, ax}
}

func TestHomeAndMove(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	ctx := context.Background()
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if !r.ax.Homed() {
		t.Fatal("not homed")
	}
	if p := r.emu.PhysicalSteps(); math.Abs(p) > 0.01 {
		t.Fatalf("home at %g full steps from the switch", p)
	}
	start := r.clk.Now()
	if err := hal.MoveTo(ctx, r.ax, 12500*physic.MicroMetre); err != nil {
		t.Fatal(err)
	}
	took := r.clk.Now().Sub(start)
	// 2500 µsteps at 2000 µsteps/s, 10000 µsteps/s²: 1.45 s, + settle.
	if took < 1450*time.Millisecond || took > 1480*time.Millisecond {
		t.Errorf("move took %s", took)
	}
	if p, err := r.ax.Position(); err != nil || p != 12500*physic.MicroMetre {
		t.Fatalf("position %s, %v", p, err)
	}
	if p := r.emu.PhysicalSteps() * 40; math.Abs(p-12500) > 0.5 {
		t.Errorf("carriage at %g µm, want 12500", p)
	}
	// Idle longer than the command timeout: the Tic times out at rest and
	// the next move resumes.
	r.clk.Advance(5 * time.Second)
	if err := hal.MoveTo(ctx, r.ax, 1*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
}

func TestStageKeepsBothDeadMenFed(t *testing.T) {
	clk := sim.NewClock()
	bus := ticemu.NewBus()
	ex, ey := ticemu.New(clk, emuOpts()), ticemu.New(clk, emuOpts())
	if err := bus.Attach(0x0E, ex); err != nil {
		t.Fatal(err)
	}
	if err := bus.Attach(0x0F, ey); err != nil {
		t.Fatal(err)
	}
	g := NewGroup()
	ox, oy := axisOpts("x", 0x0E), axisOpts("y", 0x0F)
	ox.Group, oy.Group = g, g
	x, err := New(bus, clk, ox)
	if err != nil {
		t.Fatal(err)
	}
	y, err := New(bus, clk, oy)
	if err != nil {
		t.Fatal(err)
	}
	st := hal.Stage{X: x, Y: y}
	ctx := context.Background()
	if err := st.Home(ctx); err != nil {
		t.Fatal(err)
	}
	// Both moves take over 2 s: Y's dead-man must be fed while X is waited.
	if err := st.MoveTo(ctx, 24*physic.MilliMetre, 23*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	px, py, err := st.Position()
	if err != nil || px != 24*physic.MilliMetre || py != 23*physic.MilliMetre {
		t.Fatalf("stage at %s, %s, %v", px, py, err)
	}
}

func TestMoveRefusedBeforeHoming(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	err := r.ax.Start(5 * physic.MilliMetre)
	if !errors.Is(err, hal.ErrNotHomed) {
		t.Fatalf("err = %v, want ErrNotHomed", err)
	}
	if !strings.HasPrefix(err.Error(), "x: ") {
		t.Errorf("error does not name the axis: %v", err)
	}
	if n := r.emu.CommandCount(ticemu.CmdSetTargetPosition); n != 0 {
		t.Errorf("%d set target commands sent", n)
	}
}

func TestMoveRefusedOutsideTravel(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	if err := r.ax.Home(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, target := range []physic.Distance{-physic.MicroMetre, 25*physic.MilliMetre + physic.MicroMetre} {
		err := r.ax.Start(target)
		if !errors.Is(err, hal.ErrOutOfTravel) {
			t.Fatalf("Start(%s) err = %v", target, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "x:") || !strings.Contains(msg, target.String()) || !strings.Contains(msg, "25mm") {
			t.Errorf("message lacks axis, target or travel: %s", msg)
		}
	}
	if n := r.emu.CommandCount(ticemu.CmdSetTargetPosition); n != 0 {
		t.Errorf("%d set target commands sent", n)
	}
}

func TestHomingFailsLoudlyWithBrokenSwitch(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	r.emu.BreakLimitSwitch(true)
	halts := r.emu.CommandCount(ticemu.CmdHaltAndHold)
	start := r.clk.Now()
	err := r.ax.Home(context.Background())
	if !errors.Is(err, hal.ErrTimeout) || !errors.Is(err, hal.ErrFault) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "x: limit fault: homing: limit switch never triggered after 30s") {
		t.Errorf("message: %v", err)
	}
	if el := r.clk.Now().Sub(start); el < 30*time.Second || el > 31*time.Second {
		t.Errorf("gave up after %s", el)
	}
	if r.emu.CommandCount(ticemu.CmdHaltAndHold) <= halts {
		t.Error("no halt sent")
	}
	if r.emu.Moving() {
		t.Error("motor still moving")
	}
	if r.ax.Homed() || r.ax.Fault() == nil {
		t.Error("want unhomed with a latched fault")
	}
	// The dead-man was fed throughout: the only error is the one we caused.
	if st := r.emu.ErrorStatus(); st&(1<<tic.ErrorBitCommandTimeout) != 0 {
		t.Errorf("command timeout during homing: %#x", st)
	}
}

func TestDriverErrorDuringMoveLatchesFault(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	ctx := context.Background()
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.ax.Start(20 * physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	halts := r.emu.CommandCount(ticemu.CmdHaltAndHold)
	r.clk.after(500*time.Millisecond, r.emu.InjectDriverError)
	err := r.ax.Wait(ctx)
	if !errors.Is(err, hal.ErrFault) || !strings.Contains(err.Error(), "x: ") || !strings.Contains(err.Error(), "tic error: motor driver error") {
		t.Fatalf("err = %v", err)
	}
	if r.emu.CommandCount(ticemu.CmdHaltAndHold) != halts+1 {
		t.Error("halt not sent")
	}
	if r.ax.Fault() == nil || r.ax.Homed() {
		t.Fatal("fault not latched")
	}
	if err := r.ax.Start(1 * physic.MilliMetre); !errors.Is(err, hal.ErrFault) {
		t.Fatalf("move after fault: %v", err)
	}
	if err := r.ax.Home(ctx); !errors.Is(err, hal.ErrFault) {
		t.Fatalf("home before ClearFault: %v", err)
	}
	if err := r.ax.ClearFault(); err != nil {
		t.Fatal(err)
	}
	if err := r.ax.Start(1 * physic.MilliMetre); !errors.Is(err, hal.ErrNotHomed) {
		t.Fatalf("move after ClearFault, before Home: %v", err)
	}
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hal.MoveTo(ctx, r.ax, 1*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
}

func TestCancelMidMoveHalts(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	if err := r.ax.Home(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := r.ax.Start(20 * physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	halts := r.emu.CommandCount(ticemu.CmdHaltAndHold)
	r.clk.after(300*time.Millisecond, cancel)
	err := r.ax.Wait(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if r.emu.CommandCount(ticemu.CmdHaltAndHold) != halts+1 || r.emu.Moving() {
		t.Fatal("not halted")
	}
	if r.ax.Homed() {
		t.Error("homed after an abrupt halt")
	}
	if r.ax.Fault() != nil {
		t.Error("a cancel is not a fault")
	}
}

func TestLimitSwitchOutsideHomingIsFault(t *testing.T) {
	// Travel configured past the physical forward switch.
	r := newRig(t, emuOpts(), func(o *Options) { o.TravelMax = 40 * physic.MilliMetre })
	ctx := context.Background()
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	err := hal.MoveTo(ctx, r.ax, 38*physic.MilliMetre)
	if !errors.Is(err, hal.ErrFault) || !strings.Contains(err.Error(), "forward limit switch active") {
		t.Fatalf("err = %v", err)
	}
}

func TestSlowMoveTimesOut(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	ctx := context.Background()
	if err := r.ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	// Someone reprograms the Tic's max speed behind the driver's back.
	if err := r.bus.Tx(tic.I2CAddr, []byte{ticemu.CmdSetSpeedMax, 0x40, 0x42, 0x0F, 0x00}, nil); err != nil {
		t.Fatal(err)
	}
	err := hal.MoveTo(ctx, r.ax, 10*physic.MilliMetre)
	if !errors.Is(err, hal.ErrTimeout) || !errors.Is(err, hal.ErrFault) {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

func TestNACKReadRetriedOnce(t *testing.T) {
	r := newRig(t, emuOpts(), nil)
	r.emu.InjectNACK(1)
	if _, err := r.ax.Position(); err != nil {
		t.Fatalf("one NACK should be retried: %v", err)
	}
	r.emu.InjectNACK(2)
	if _, err := r.ax.Position(); !errors.Is(err, ticemu.ErrNACK) || !strings.HasPrefix(err.Error(), "x: ") {
		t.Fatalf("two NACKs: %v", err)
	}
}

func TestOptionsChecked(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Name = "" }, "Name"},
		{func(o *Options) { o.MicrostepsPerUM = 0 }, "MicrostepsPerUM"},
		{func(o *Options) { o.MaxSpeed = 0 }, "MaxSpeed"},
		{func(o *Options) { o.MaxSpeed = 100 * physic.MetrePerSecond }, "MaxSpeed"},
		{func(o *Options) { o.Acceleration = -1 }, "Acceleration"},
		{func(o *Options) { o.TravelMax = -1 }, "TravelMin"},
		{func(o *Options) {
			o.MicrostepsPerUM, o.MaxSpeed, o.TravelMax = 100, 100*physic.MicroMetrePerSecond, 25*physic.Metre
		}, "TravelMax"},
		{func(o *Options) { o.Variant = "Tic X" }, "Variant"},
		{func(o *Options) { o.CurrentLimit = 0 }, "CurrentLimit"},
		{func(o *Options) { o.CommandTimeout = 500 * time.Millisecond }, "CommandTimeout"},
	} {
		clk := sim.NewClock()
		bus := ticemu.NewBus()
		if err := bus.Attach(tic.I2CAddr, ticemu.New(clk, emuOpts())); err != nil {
			t.Fatal(err)
		}
		o := axisOpts("x", 0)
		tc.mod(&o)
		_, err := New(bus, clk, o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v", tc.want, err)
		}
	}
}

// TestWireBytes proves the driver speaks the Tic's I²C protocol byte for
// byte: the init sequence of New, a homing, and a Start + Wait.
func TestWireBytes(t *testing.T) {
	const A = tic.I2CAddr
	w := func(b ...byte) i2ctest.IO { return i2ctest.IO{Addr: A, W: b} }
	r := func(b ...byte) i2ctest.IO { return i2ctest.IO{Addr: A, R: b} }
	ops := []i2ctest.IO{
		// New.
		w(0xA1, 0x49), r(0x00), // tic.NewI2C: get step mode
		w(0x89),                         // halt and hold
		w(0x94, 0x03),                   // step mode 1/8
		w(0x91, 20),                     // current limit 640 mA / 32 mA
		w(0xE6, 0x00, 0x2D, 0x31, 0x01), // max speed 20,000,000 (2000 µsteps/s)
		w(0xEA, 0x40, 0x42, 0x0F, 0x00), // max accel 1,000,000 (10000 µsteps/s²)
		w(0xE9, 0x40, 0x42, 0x0F, 0x00), // max decel
		w(0xA8, 0x09), r(0xE8, 0x03),    // setting: command timeout 1000 ms
		w(0x85),                      // energize
		w(0x83),                      // exit safe start
		w(0xA1, 0x02), r(0x00, 0x00), // error status
		// Home.
		w(0xA1, 0x02), r(0x00, 0x00),
		w(0x83),
		w(0xA1, 0x02), r(0x00, 0x00),
		w(0x97, 0x00), // go home reverse
		w(0xA1, 0x02), r(0x00, 0x00),
		w(0xA1, 0x01), r(0x11), // energized, homing active
		w(0xA1, 0x02), r(0x00, 0x00),
		w(0xA1, 0x01), r(0x01), // energized, homed
		// Start(1 mm) = 200 µsteps.
		w(0xA1, 0x01), r(0x01),
		w(0xA1, 0x02), r(0x00, 0x00),
		w(0xE0, 0xC8, 0x00, 0x00, 0x00),
		// Wait.
		w(0xA1, 0x02), r(0x00, 0x00),
		w(0xA1, 0x01), r(0x01),
		w(0xA1, 0x22), r(0xC8, 0x00, 0x00, 0x00), // current position
		w(0xA1, 0x26), r(0x00, 0x00, 0x00, 0x00), // current velocity
	}
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	clk := sim.NewClock()
	o := axisOpts("x", 0)
	o.Settle = 0
	ax, err := New(bus, clk, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ax.Start(physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	if err := ax.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
