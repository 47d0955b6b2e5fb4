package pca9685emu

import (
	"testing"

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
