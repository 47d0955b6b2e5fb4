package dacfocus

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/dacemu"
	"papscan/hal/sim/ticemu"
)

func opts() Options {
	return Options{
		Name:      "z",
		Address:   0x4C,
		FullScale: 100 * physic.MicroMetre,
		RangeMin:  0,
		RangeMax:  100 * physic.MicroMetre,
		Settle:    5 * time.Millisecond,
	}
}

// TestWireBytes: the exact AD5693R traffic of New, Home and SetZ(25 µm).
func TestWireBytes(t *testing.T) {
	const A = 0x4C
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: A, W: []byte{0x40, 0x08, 0x00}}, // control: gain 2, ref on, normal
		{Addr: A, W: []byte{0x40, 0x08, 0x00}}, // Home: control again
		{Addr: A, W: []byte{0x30, 0x00, 0x00}}, // write DAC and input: 0
		{Addr: A, R: []byte{0x00, 0x00}},       // read back
		{Addr: A, W: []byte{0x30, 0x40, 0x00}}, // 25 µm of 100: 16384 = 0x4000
		{Addr: A, R: []byte{0x40, 0x00}},
	}, DontPanic: true}
	o := opts()
	o.Gain2 = true
	p, err := New(bus, sim.NewClock(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.SetZ(ctx, 25*physic.MicroMetre); err != nil {
		t.Fatal(err)
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
	if z, _ := p.Z(); math.Abs(float64(z-25*physic.MicroMetre)) > 1 {
		t.Errorf("Z = %s", z)
	}
}

func rig(t *testing.T) (*sim.Clock, *dacemu.DAC, *Piezo) {
	t.Helper()
	clk := sim.NewClock()
	bus := ticemu.NewBus()
	dac := dacemu.New(clk, dacemu.Options{Stroke: 100 * physic.MicroMetre, Tau: time.Millisecond})
	if err := bus.Attach(0x4C, dac); err != nil {
		t.Fatal(err)
	}
	p, err := New(bus, clk, opts())
	if err != nil {
		t.Fatal(err)
	}
	return clk, dac, p
}

// TestSettlesOnTheEmulatedStage: after SetZ returns (5 settle = 5 τ), the
// stage is within e^-5 of the step from its target.
func TestSettlesOnTheEmulatedStage(t *testing.T) {
	clk, dac, p := rig(t)
	ctx := context.Background()
	if err := p.SetZ(ctx, 10*physic.MicroMetre); !errors.Is(err, hal.ErrNotHomed) {
		t.Fatalf("before Home: %v", err)
	}
	if err := p.Home(ctx); err != nil {
		t.Fatal(err)
	}
	start := clk.Now()
	if err := p.SetZ(ctx, 60*physic.MicroMetre); err != nil {
		t.Fatal(err)
	}
	if took := clk.Now().Sub(start); took != 5*time.Millisecond {
		t.Errorf("SetZ took %s", took)
	}
	if err := math.Abs(dac.UM() - 60); err > 60*math.Exp(-5)+0.01 {
		t.Errorf("stage at %g µm after settling", dac.UM())
	}
	clk.Advance(20 * time.Millisecond)
	if err := math.Abs(dac.UM() - 60); err > 0.002 {
		t.Errorf("stage at %g µm at rest, want 60 (1.5 nm LSB)", dac.UM())
	}
	for _, z := range []physic.Distance{-physic.NanoMetre, 100*physic.MicroMetre + physic.NanoMetre} {
		if err := p.SetZ(ctx, z); !errors.Is(err, hal.ErrOutOfTravel) {
			t.Errorf("SetZ(%s): %v", z, err)
		}
	}
}

func TestNACKLatchesBusFault(t *testing.T) {
	_, dac, p := rig(t)
	ctx := context.Background()
	if err := p.Home(ctx); err != nil {
		t.Fatal(err)
	}
	writes := dac.Writes()
	dac.InjectNACK(1)
	err := p.SetZ(ctx, 30*physic.MicroMetre)
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultBus || f.Device != "z" || !errors.Is(err, ticemu.ErrNACK) {
		t.Fatalf("err = %v", err)
	}
	if dac.Writes() != writes {
		t.Error("the write was retried")
	}
	if err := p.SetZ(ctx, 30*physic.MicroMetre); !errors.Is(err, hal.ErrFault) {
		t.Fatalf("SetZ while latched: %v", err)
	}
	if err := p.Home(ctx); !errors.Is(err, hal.ErrFault) {
		t.Fatalf("Home while latched: %v", err)
	}
	if err := p.ClearFault(); err != nil {
		t.Fatal(err)
	}
	if err := p.SetZ(ctx, 30*physic.MicroMetre); !errors.Is(err, hal.ErrNotHomed) {
		t.Fatalf("SetZ after ClearFault: %v", err)
	}
	if err := p.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.SetZ(ctx, 30*physic.MicroMetre); err != nil {
		t.Fatal(err)
	}
	// A read-back NACK is retried once (reads are safe to repeat); the
	// write is not repeated. Two in a row are a fault.
	writes = dac.Writes()
	dac.InjectReadNACK(1)
	if err := p.SetZ(ctx, 40*physic.MicroMetre); err != nil {
		t.Fatalf("one read NACK: %v", err)
	}
	if dac.Writes() != writes+1 {
		t.Errorf("%d writes for one SetZ", dac.Writes()-writes)
	}
	dac.InjectReadNACK(2)
	if f := hal.FaultOf(p.SetZ(ctx, 50*physic.MicroMetre)); f == nil || f.Code != hal.FaultBus {
		t.Errorf("two read NACKs: %v", f)
	}
}

// TestReadBackMismatchIsFault: a DAC that answers with another code (a
// second device on the address, a glitch) latches a bus fault.
func TestReadBackMismatchIsFault(t *testing.T) {
	bus := &i2ctest.Playback{Ops: []i2ctest.IO{
		{Addr: 0x4C, W: []byte{0x40, 0x00, 0x00}},
		{Addr: 0x4C, W: []byte{0x40, 0x00, 0x00}},
		{Addr: 0x4C, W: []byte{0x30, 0x00, 0x00}},
		{Addr: 0x4C, R: []byte{0x12, 0x34}},
	}, DontPanic: true}
	p, err := New(bus, sim.NewClock(), opts())
	if err != nil {
		t.Fatal(err)
	}
	err = p.Home(context.Background())
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultBus || !strings.Contains(err.Error(), "reads back 0x1234 after writing 0x0000") {
		t.Fatalf("err = %v", err)
	}
}

func TestOptionsChecked(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true}
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Name = "" }, "Name"},
		{func(o *Options) { o.FullScale = 0 }, "FullScale"},
		{func(o *Options) { o.RangeMax = 200 * physic.MicroMetre }, "range"},
		{func(o *Options) { o.RangeMin = o.RangeMax }, "range"},
		{func(o *Options) { o.Address = 0x80 }, "7-bit"},
	} {
		o := opts()
		tc.mod(&o)
		if _, err := New(bus, sim.NewClock(), o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.want, err)
		}
	}
}

// TestHysteresisApproachWireBytes: with 2 µm compensation (approach
// upwards), a move down to 20 µm first goes to 18 µm, then up to 20 µm; a
// move up goes straight.
func TestHysteresisApproachWireBytes(t *testing.T) {
	const A = 0x4C
	code := func(um float64) (byte, byte) {
		c := uint16(math.Round(um / 100 * 65535))
		return byte(c >> 8), byte(c)
	}
	set := func(um float64) []i2ctest.IO {
		h, l := code(um)
		return []i2ctest.IO{{Addr: A, W: []byte{0x30, h, l}}, {Addr: A, R: []byte{h, l}}}
	}
	ops := []i2ctest.IO{{Addr: A, W: []byte{0x40, 0, 0}}, {Addr: A, W: []byte{0x40, 0, 0}}}
	ops = append(ops, set(0)...)  // Home
	ops = append(ops, set(30)...) // up: straight
	ops = append(ops, set(18)...) // down: overshoot
	ops = append(ops, set(20)...) // then approach from below
	ops = append(ops, set(21)...) // up 1 µm after an upward approach: straight
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	o := opts()
	o.Backlash = 2 * physic.MicroMetre
	p, err := New(bus, sim.NewClock(), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Home(ctx); err != nil {
		t.Fatal(err)
	}
	for _, z := range []physic.Distance{30, 20, 21} {
		if err := p.SetZ(ctx, z*physic.MicroMetre); err != nil {
			t.Fatal(err)
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}
