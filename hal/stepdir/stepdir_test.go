package stepdir

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/stepemu"
)

// A loader-like axis: 200 steps/rev × 4 microsteps / 10 mm lead = 80 steps/mm.
func opts() Options {
	return Options{
		Name:          "loader",
		StepsPerUM:    0.08,
		MaxSpeed:      20 * physic.MilliMetrePerSecond, // 1600 steps/s
		Acceleration:  50_000,                          // 50 mm/s² = 4000 steps/s²
		HomingSpeed:   10 * physic.MilliMetrePerSecond,
		HomingTimeout: 20 * time.Second,
		TravelMin:     0,
		TravelMax:     100 * physic.MilliMetre,
		Settle:        20 * time.Millisecond,
	}
}

func rig(t *testing.T, clk hal.Clock, eo stepemu.Options, mod func(*Options)) (*stepemu.Driver, *Axis) {
	t.Helper()
	eo.Name = "L"
	eo.EnableActiveLow = true
	if eo.TravelSteps == 0 {
		eo.TravelSteps = 8200
	}
	emu := stepemu.New(clk, eo)
	o := opts()
	if mod != nil {
		mod(&o)
	}
	ax, err := New(Pins{Step: emu.Step(), Dir: emu.Dir(), Enable: emu.Enable(), Limit: emu.Limit(), EnableActiveLow: true}, clk, o)
	if err != nil {
		t.Fatal(err)
	}
	return emu, ax
}

func TestHomeAndMoveCountsSteps(t *testing.T) {
	clk := sim.NewClock()
	emu, ax := rig(t, clk, stepemu.Options{StartSteps: 3000}, nil)
	if !emu.Enabled() {
		t.Fatal("driver not enabled")
	}
	ctx := context.Background()
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	// The switch trips at 0 and releases at 1: home is 1 step from it.
	if p := emu.Position(); p != 1 {
		t.Fatalf("homed at %d steps from the trip point", p)
	}
	pulses := emu.Pulses()
	start := clk.Now()
	if err := hal.MoveTo(ctx, ax, 50*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	if n := emu.Pulses() - pulses; n != 4000 {
		t.Errorf("%d pulses for 50 mm, want 4000", n)
	}
	if p := emu.Position(); p != 4001 {
		t.Errorf("carriage at step %d, want 4001", p)
	}
	if p, _ := ax.Position(); p != 50*physic.MilliMetre {
		t.Errorf("position %s", p)
	}
	// 4000 steps at 1600/s, 4000/s²: 0.4 s ramps (320 steps each), 3360
	// steps cruising (2.1 s): 2.9 s, plus 20 ms settle.
	want := 2900*time.Millisecond + 20*time.Millisecond
	if took := clk.Now().Sub(start); took < want-time.Millisecond || took > want+time.Millisecond {
		t.Errorf("move took %s, want %s", took, want)
	}
	if emu.Lost() != 0 {
		t.Errorf("%d steps lost", emu.Lost())
	}
	// Back home: the reverse direction.
	if err := hal.MoveTo(ctx, ax, 0); err != nil {
		t.Fatal(err)
	}
	if p := emu.Position(); p != 1 {
		t.Errorf("back at step %d, want 1", p)
	}
}

// TestRampKeepsSpeedAndAcceleration checks the pulse train itself: no
// interval shorter than 1/max speed, and the speed changes no faster than
// the acceleration allows.
func TestRampKeepsSpeedAndAcceleration(t *testing.T) {
	clk := sim.NewClock()
	emu, ax := rig(t, clk, stepemu.Options{StartSteps: 10, MaxStepRate: 1700 * physic.Hertz}, nil)
	ctx := context.Background()
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	for _, dist := range []physic.Distance{30 * physic.MilliMetre, 2 * physic.MilliMetre} { // trapezoid, triangle
		emu.Record(true)
		from, _ := ax.Position()
		if err := hal.MoveTo(ctx, ax, from+dist); err != nil {
			t.Fatal(err)
		}
		ts := emu.PulseTimes()
		if want := int(ax.steps(dist)); len(ts) != want {
			t.Fatalf("%d pulses, want %d", len(ts), want)
		}
		var vmax float64
		for i := 2; i < len(ts); i++ {
			v1 := 1 / ts[i-1].Sub(ts[i-2]).Seconds()
			v2 := 1 / ts[i].Sub(ts[i-1]).Seconds()
			vmax = math.Max(vmax, v2)
			dt := (ts[i].Sub(ts[i-2])).Seconds() / 2
			if acc := math.Abs(v2-v1) / dt; acc > 4000*1.05 {
				t.Fatalf("pulse %d: speed %0.f→%0.f steps/s is %0.f steps/s², above 4000", i, v1, v2, acc)
			}
		}
		if vmax > 1600*1.001 {
			t.Errorf("top speed %0.f steps/s, above 1600", vmax)
		}
		if emu.Lost() != 0 {
			t.Errorf("%d steps lost: the motor could not follow", emu.Lost())
		}
	}
}

// TestMoveRefusals runs on the real clock inside a synctest bubble: the
// move's goroutine cannot finish between the two Starts (bubble time only
// advances when every goroutine is blocked), whereas the virtual sim clock
// lets it race to the end on a slow machine (seen under qemu-user).
func TestMoveRefusals(t *testing.T) {
	synctest.Test(t, testMoveRefusals)
}

func testMoveRefusals(t *testing.T) {
	emu, ax := rig(t, hal.SystemClock{}, stepemu.Options{StartSteps: 100}, nil)
	if err := ax.Start(physic.MilliMetre); !errors.Is(err, hal.ErrNotHomed) || !strings.HasPrefix(err.Error(), "loader: ") {
		t.Fatalf("before homing: %v", err)
	}
	if emu.Pulses() != 0 {
		t.Fatal("pulses before homing")
	}
	ctx := context.Background()
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	p := emu.Pulses()
	for _, target := range []physic.Distance{-physic.MicroMetre, 100*physic.MilliMetre + 20*physic.MicroMetre} {
		if err := ax.Start(target); !errors.Is(err, hal.ErrOutOfTravel) {
			t.Errorf("Start(%s): %v", target, err)
		}
	}
	if err := ax.Start(10 * physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	if err := ax.Start(20 * physic.MilliMetre); !errors.Is(err, ErrBusy) {
		t.Errorf("second Start during a move: %v", err)
	}
	if err := ax.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if n := emu.Pulses() - p; n != 800 {
		t.Errorf("%d pulses", n)
	}
}

func TestHomingFailsLoudlyWithBrokenSwitch(t *testing.T) {
	clk := sim.NewClock()
	emu, ax := rig(t, clk, stepemu.Options{StartSteps: 3000}, nil)
	emu.BreakLimitSwitch()
	start := clk.Now()
	err := ax.Home(context.Background())
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultLimit || f.Device != "loader" || !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "loader: limit fault: homing: limit switch never triggered after 20s") {
		t.Errorf("message: %v", err)
	}
	if el := clk.Now().Sub(start); el < 20*time.Second || el > 20*time.Second+10*time.Millisecond {
		t.Errorf("gave up after %s", el)
	}
	// The carriage ran into the hard stop; steps were lost there.
	if emu.Position() != -50 || emu.Lost() == 0 {
		t.Errorf("carriage at %d, %d lost", emu.Position(), emu.Lost())
	}
	if ax.Homed() || ax.Fault() == nil {
		t.Error("want unhomed with a latched fault")
	}
	if err := ax.Home(context.Background()); !errors.Is(err, hal.ErrFault) {
		t.Errorf("homing while latched: %v", err)
	}
}

// TestLimitOutsideHomingLatches: the carriage was pushed towards the switch
// behind the driver's back (a crash, a technician); the next move towards
// the switch finds it active and latches a limit fault at once.
func TestLimitOutsideHomingLatches(t *testing.T) {
	clk := sim.NewClock()
	emu, ax := rig(t, clk, stepemu.Options{StartSteps: 300}, nil)
	ctx := context.Background()
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hal.MoveTo(ctx, ax, 5*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
	emu.Push(-390) // now 11 steps from the trip point, the driver thinks 400
	p := emu.Pulses()
	err := hal.MoveTo(ctx, ax, physic.MilliMetre)
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultLimit || !strings.Contains(err.Error(), "limit switch active") {
		t.Fatalf("err = %v", err)
	}
	if n := emu.Pulses() - p; n != 11 {
		t.Errorf("%d pulses after the switch, want exactly the 11 up to it", n)
	}
	if err := ax.Start(2 * physic.MilliMetre); !errors.Is(err, hal.ErrFault) {
		t.Errorf("move while latched: %v", err)
	}
	if err := ax.ClearFault(); err != nil {
		t.Fatal(err)
	}
	if err := ax.Start(2 * physic.MilliMetre); !errors.Is(err, hal.ErrNotHomed) {
		t.Errorf("move after clear, before home: %v", err)
	}
	if err := ax.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := hal.MoveTo(ctx, ax, 2*physic.MilliMetre); err != nil {
		t.Fatal(err)
	}
}

// TestHaltStopsPulsesAtOnce runs on the real clock inside a synctest
// bubble: Halt from another goroutine mid-move returns only when the step
// goroutine has stopped, and no pulse follows.
func TestHaltStopsPulsesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clk := hal.SystemClock{}
		emu, ax := rig(t, clk, stepemu.Options{StartSteps: 5}, nil)
		ctx := context.Background()
		if err := ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ax.Start(90 * physic.MilliMetre); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- ax.Wait(ctx) }()
		time.Sleep(time.Second)
		if err := ax.Halt(); err != nil {
			t.Fatal(err)
		}
		p := emu.Pulses()
		if err := <-done; !errors.Is(err, ErrHalted) {
			t.Fatalf("Wait: %v", err)
		}
		time.Sleep(time.Second)
		if emu.Pulses() != p {
			t.Fatal("pulses after Halt returned")
		}
		if p < 1000 || p > 1600 {
			t.Errorf("%d pulses in the first second", p)
		}
		if ax.Homed() {
			t.Error("still homed after Halt")
		}
		if ax.Fault() != nil {
			t.Error("Halt is not a fault")
		}
		// Cancelling Wait halts too.
		if err := ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		if err := ax.Start(90 * physic.MilliMetre); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		if err := ax.Wait(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait with deadline: %v", err)
		}
		p = emu.Pulses()
		time.Sleep(time.Second)
		if emu.Pulses() != p {
			t.Fatal("pulses after a cancelled Wait")
		}
		if err := ax.Close(); err != nil {
			t.Fatal(err)
		}
		if emu.Enabled() {
			t.Error("driver still enabled after Close")
		}
	})
}

func TestGPIOWriteErrorIsDriverFault(t *testing.T) {
	clk := sim.NewClock()
	emu := stepemu.New(clk, stepemu.Options{Name: "L", StartSteps: 100})
	step := &failingPin{PinIO: emu.Step()}
	ax, err := New(Pins{Step: step, Dir: emu.Dir(), Enable: emu.Enable(), Limit: emu.Limit()}, clk, opts())
	if err != nil {
		t.Fatal(err)
	}
	if err := ax.Home(context.Background()); err != nil {
		t.Fatal(err)
	}
	step.fail = true
	err = hal.MoveTo(context.Background(), ax, 10*physic.MilliMetre)
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultDriver || !strings.Contains(err.Error(), "step output") {
		t.Fatalf("err = %v", err)
	}
}

type failingPin struct {
	gpio.PinIO
	fail bool
}

func (p *failingPin) Out(l gpio.Level) error {
	if p.fail {
		return errors.New("gpiochip0: EIO")
	}
	return p.PinIO.Out(l)
}

func TestOptionsChecked(t *testing.T) {
	pin := func(n string) *gpiotest.Pin { return &gpiotest.Pin{N: n} }
	pins := Pins{Step: pin("s"), Dir: pin("d"), Enable: pin("e"), Limit: pin("l")}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Name = "" }, "Name"},
		{func(o *Options) { o.StepsPerUM = 0 }, "StepsPerUM"},
		{func(o *Options) { o.MaxSpeed = 0 }, "MaxSpeed"},
		{func(o *Options) { o.MaxSpeed = 30 * physic.MilliMetrePerSecond }, "2400 steps/s exceeds the step rate limit"},
		{func(o *Options) { o.MaxStepRate = 5 * physic.KiloHertz }, "MaxStepRate"},
		{func(o *Options) { o.Acceleration = math.NaN() }, "Acceleration"},
		{func(o *Options) { o.TravelMax = 0 }, "TravelMin"},
		{func(o *Options) { o.HomingSpeed = 50 * physic.MilliMetrePerSecond }, "HomingSpeed"},
	} {
		o := opts()
		tc.mod(&o)
		if _, err := New(pins, sim.NewClock(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.want, err)
		}
	}
	if _, err := New(Pins{Step: pin("s")}, sim.NewClock(), opts()); err == nil {
		t.Error("missing pins accepted")
	}
}

func TestProfileTime(t *testing.T) {
	// Trapezoid: d=4000, v=1600, a=4000: ramps of 320 steps, 0.4 s.
	for _, c := range []struct{ s, want float64 }{{0, 0}, {320, 0.4}, {2000, 0.4 + 1680.0/1600}, {4000, 2.9}} {
		if got := ProfileTime(c.s, 4000, 1600, 4000); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("trapezoid t(%g) = %g, want %g", c.s, got, c.want)
		}
	}
	// Triangle: d=100, a=4000: peak at 50 steps after sqrt(100/4000) s.
	tp := math.Sqrt(100.0 / 4000)
	if got := ProfileTime(50, 100, 1600, 4000); math.Abs(got-tp) > 1e-9 {
		t.Errorf("triangle peak at %g, want %g", got, tp)
	}
	if got := ProfileTime(100, 100, 1600, 4000); math.Abs(got-2*tp) > 1e-9 {
		t.Errorf("triangle end at %g, want %g", got, 2*tp)
	}
}

// TestBacklashApproachFromOneSide: on a screw with 3 steps of play, without
// compensation the carriage lands 3 steps apart depending on the side it
// came from; with compensation on the same step.
func TestBacklashApproachFromOneSide(t *testing.T) {
	ctx := context.Background()
	land := func(backlash physic.Distance, via physic.Distance) int64 {
		clk := sim.NewClock()
		emu, ax := rig(t, clk, stepemu.Options{StartSteps: 500, BacklashSteps: 3}, func(o *Options) { o.Backlash = backlash })
		if err := ax.Home(ctx); err != nil {
			t.Fatal(err)
		}
		for _, p := range []physic.Distance{via, 10 * physic.MilliMetre} {
			if err := hal.MoveTo(ctx, ax, p); err != nil {
				t.Fatal(err)
			}
		}
		if p, _ := ax.Position(); p != 10*physic.MilliMetre {
			t.Fatalf("position %s", p)
		}
		return emu.Position()
	}
	if below, above := land(0, 5*physic.MilliMetre), land(0, 15*physic.MilliMetre); above-below != 3 {
		t.Fatalf("emulated play: landed at %d from below, %d from above", below, above)
	}
	// 50 µm = 4 steps of compensation.
	if below, above := land(50*physic.MicroMetre, 5*physic.MilliMetre), land(50*physic.MicroMetre, 15*physic.MilliMetre); below != above {
		t.Errorf("compensated: landed at %d from below, %d from above", below, above)
	}
}
