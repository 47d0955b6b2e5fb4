package dacemu

import (
	"math"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/hal/sim"
)

func TestFirstOrderStageAndControlRegister(t *testing.T) {
	clk := sim.NewClock()
	d := New(clk, Options{Stroke: 100 * physic.MicroMetre, Tau: 2 * time.Millisecond})
	// Gain 1: code 32768 is half of 2.5 V, half the stroke.
	if err := d.I2CTx([]byte{0x30, 0x80, 0x00}, nil); err != nil {
		t.Fatal(err)
	}
	if d.Output() != 1250*physic.MilliVolt {
		t.Errorf("output %s", d.Output())
	}
	clk.Advance(2 * time.Millisecond) // one time constant
	if got, want := d.UM(), 50*(1-math.Exp(-1)); math.Abs(got-want) > 0.01 {
		t.Errorf("after τ at %g µm, want %g", got, want)
	}
	clk.Advance(50 * time.Millisecond)
	if math.Abs(d.UM()-50) > 0.001 {
		t.Errorf("at rest at %g µm", d.UM())
	}
	// Read back the input register.
	r := make([]byte, 2)
	if err := d.I2CTx(nil, r); err != nil || r[0] != 0x80 || r[1] != 0 {
		t.Errorf("read back % X, %v", r, err)
	}
	// Gain 2 doubles the output: clamped at the full stroke.
	_ = d.I2CTx([]byte{0x40, 0x08, 0x00}, nil)
	clk.Advance(50 * time.Millisecond)
	if math.Abs(d.UM()-100) > 0.001 {
		t.Errorf("gain 2 at %g µm", d.UM())
	}
	// Power-down (PD = 01) drops the output to 0.
	_ = d.I2CTx([]byte{0x40, 0x20, 0x00}, nil)
	clk.Advance(50 * time.Millisecond)
	if d.UM() > 0.001 {
		t.Errorf("powered down at %g µm", d.UM())
	}
	// Write input then update: the output changes only on update.
	_ = d.I2CTx([]byte{0x40, 0x00, 0x00}, nil)
	_ = d.I2CTx([]byte{0x10, 0x40, 0x00}, nil)
	if d.Code() != 0x8000 {
		t.Errorf("write input changed the output: 0x%04X", d.Code())
	}
	_ = d.I2CTx([]byte{0x20, 0, 0}, nil)
	if d.Code() != 0x4000 {
		t.Errorf("update: 0x%04X", d.Code())
	}
	// Software reset.
	_ = d.I2CTx([]byte{0x40, 0x80, 0x00}, nil)
	if d.Code() != 0 {
		t.Errorf("reset: 0x%04X", d.Code())
	}
	for _, w := range [][]byte{{0x30, 1}, {0x90, 0, 0}} {
		if err := d.I2CTx(w, nil); err == nil {
			t.Errorf("% X accepted", w)
		}
	}
}
