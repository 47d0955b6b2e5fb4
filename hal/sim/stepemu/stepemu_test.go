package stepemu

import (
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	"papscan/hal/sim"
)

func TestStepsDirectionEnableAndLimit(t *testing.T) {
	clk := sim.NewClock()
	d := New(clk, Options{Name: "T", StartSteps: 2, TravelSteps: 10, EnableActiveLow: true, MaxStepRate: physic.KiloHertz})
	step := func(n int) {
		for range n {
			clk.Advance(2 * time.Millisecond)
			_ = d.Step().Out(gpio.High)
			_ = d.Step().Out(gpio.Low)
		}
	}
	// Not enabled yet: the pulse is lost.
	step(1)
	_ = d.Enable().Out(gpio.High) // inactive (active low): disabled
	step(1)
	if d.Position() != 2 || d.Lost() != 2 || d.Pulses() != 2 {
		t.Fatalf("disabled driver moved: pos %d lost %d", d.Position(), d.Lost())
	}
	_ = d.Enable().Out(gpio.Low) // enabled
	p := d.Position()
	_ = d.Dir().Out(gpio.High)
	step(3)
	if d.Position() != p+3 {
		t.Fatalf("forward: %d, want %d", d.Position(), p+3)
	}
	if d.Limit().Read() != gpio.Low {
		t.Fatal("limit active away from the switch")
	}
	_ = d.Dir().Out(gpio.Low)
	step(int(d.Position()))
	if d.Position() != 0 || d.Limit().Read() != gpio.High {
		t.Fatalf("at %d the switch reads %s", d.Position(), d.Limit().Read())
	}
	// Too fast: a pulse 0.5 ms after the previous one is lost.
	_ = d.Dir().Out(gpio.High)
	lost := d.Lost()
	clk.Advance(500 * time.Microsecond)
	_ = d.Step().Out(gpio.High)
	_ = d.Step().Out(gpio.Low)
	if d.Lost() != lost+1 || d.Position() != 0 {
		t.Fatalf("fast pulse moved the carriage: %d, lost %d", d.Position(), d.Lost())
	}
	// Hard stop at the far end.
	step(20)
	if d.Position() != 10 {
		t.Fatalf("carriage past the hard stop: %d", d.Position())
	}
	d.BreakLimitSwitch()
	d.Push(-20)
	if d.Limit().Read() != gpio.Low {
		t.Fatal("broken switch reads active")
	}
}
