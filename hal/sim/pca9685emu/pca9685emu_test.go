package pca9685emu

import (
	"fmt"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"
)

func TestRegisters(t *testing.T) {
	c := New()
	if !c.Sleeping() || c.Duty(0) != 0 {
		t.Fatal("power-on state wrong")
	}
	// PRE_SCALE is writable only while asleep.
	if err := c.I2CTx([]byte{RegPreScale, 5}, nil); err != nil {
		t.Fatal(err)
	}
	if c.Frequency() != 25*physic.MegaHertz/(4096*6) {
		t.Errorf("frequency %s", c.Frequency())
	}
	_ = c.I2CTx([]byte{RegMode1, 0x20}, nil) // wake, auto-increment
	_ = c.I2CTx([]byte{RegPreScale, 100}, nil)
	if c.Register(RegPreScale) != 5 {
		t.Error("PRE_SCALE written while running")
	}
	// Channel 2: on at 1024, off at 3072: 50 %.
	_ = c.I2CTx([]byte{RegLED0 + 8, 0x00, 0x04, 0x00, 0x0C}, nil)
	if d := c.Duty(2); d != 0.5 {
		t.Errorf("duty %g", d)
	}
	// Read back with auto-increment.
	r := make([]byte, 4)
	if err := c.I2CTx([]byte{RegLED0 + 8}, r); err != nil || r[1] != 0x04 || r[3] != 0x0C {
		t.Errorf("read back % X, %v", r, err)
	}
	// ALL_LED full on, then channel 2 full off wins over full on.
	_ = c.I2CTx([]byte{RegAllLED, 0, 0x10, 0, 0}, nil)
	if c.Duty(9) != 1 {
		t.Errorf("all-LED full on: %g", c.Duty(9))
	}
	_ = c.I2CTx([]byte{RegLED0 + 8 + 3, 0x10}, nil)
	if c.Duty(2) != 0 {
		t.Errorf("full off did not win: %g", c.Duty(2))
	}
	// Without auto-increment every byte lands on the same register.
	_ = c.I2CTx([]byte{RegMode1, 0x00}, nil)
	_ = c.I2CTx([]byte{RegLED0, 1, 2, 3}, nil)
	if c.Register(RegLED0) != 3 || c.Register(RegLED0+1) != 0x10 { // still the ALL_LED value
		t.Error("no auto-increment expected")
	}
	if err := c.I2CTx(nil, make([]byte, 1)); err == nil {
		t.Error("read without pointer accepted")
	}
}

// clock counts the wire time the chip advances it by.
type clock struct{ d time.Duration }

func (c *clock) Advance(d time.Duration) { c.d += d }

// TestTimedOutputs: a timed chip takes each transfer's wire time at the
// bus speed (START, 9 bit times per byte with the address, a repeated
// START and second address for a read, STOP) and tells the output
// watcher the channel's level at the transfer's end: full on, a PWM duty,
// off while the oscillator sleeps, full off.
func TestTimedOutputs(t *testing.T) {
	clk := &clock{}
	c := NewTimed(Options{Clock: clk, BusSpeed: 400 * physic.KiloHertz})
	var levels []float64
	var at []time.Duration
	c.OnOutput(4, func(l float64) { levels, at = append(levels, l), append(at, clk.d) })
	_ = c.I2CTx([]byte{RegMode1, 0x20}, nil)                     // wake, auto-increment
	_ = c.I2CTx([]byte{RegLED0 + 16 + 1, 0x10, 0x00, 0x00}, nil) // full on (periph's SetFullOn)
	_ = c.I2CTx([]byte{RegLED0 + 16, 0, 0, 0x00, 0x04}, nil)     // 25 %
	_ = c.I2CTx([]byte{RegMode1, 0x30}, nil)                     // sleep
	_ = c.I2CTx([]byte{RegMode1, 0x20}, nil)                     // wake
	_ = c.I2CTx([]byte{RegLED0 + 16 + 3, 0x10}, nil)             // full off (SetFullOff)
	r := make([]byte, 1)
	_ = c.I2CTx([]byte{RegMode1}, r) // a read changes nothing
	want := []float64{0, 1, 0.25, 0, 0.25, 0}
	if fmt.Sprint(levels) != fmt.Sprint(want) {
		t.Fatalf("levels %v, want %v", levels, want)
	}
	// 400 kHz: 2.5 µs a bit. Writes of 2, 4 and 5 bytes: 29, 47 and 56 bits.
	wantAt := []time.Duration{0, 72500 + 117500, 72500 + 117500 + 140000}
	for i, w := range wantAt {
		if at[i] != w*time.Nanosecond {
			t.Errorf("edge %d at %v, want %v", i, at[i], w*time.Nanosecond)
		}
	}
	if got, want := WireTime(1, 1, 100*physic.KiloHertz), 390*time.Microsecond; got != want {
		t.Errorf("write 1, read 1 at 100 kHz: %v, want %v", got, want)
	}
}
