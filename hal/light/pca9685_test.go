package light

import (
	"errors"
	"math"
	"strings"
	"testing"

	"periph.io/x/conn/v3/i2c/i2ctest"
	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/sim/pca9685emu"
	"papscan/hal/sim/ticemu"
)

// TestPCA9685WireBytes: the exact I²C traffic of initialising the chip at
// 0x41, 1 kHz, lamp on channel 3, then brightness 0.5, 1 and 0.
func TestPCA9685WireBytes(t *testing.T) {
	const A = 0x41
	w := func(b ...byte) i2ctest.IO { return i2ctest.IO{Addr: A, W: b} }
	freq := func(pre, mode byte) []i2ctest.IO {
		return []i2ctest.IO{
			{Addr: A, W: []byte{0x00}, R: []byte{mode}}, // read MODE1
			w(0x00, mode|0x10),                          // sleep
			w(0xFE, pre),                                // PRE_SCALE
			w(0x00, mode),                               // wake
			w(0x00, mode|0x80),                          // restart
		}
	}
	ops := []i2ctest.IO{
		w(0xFA, 0, 0, 0, 0), // all channels 0
		w(0x01, 0x04),       // MODE2: totem pole
		w(0x00, 0x01),       // MODE1: ALLCALL, awake
		{Addr: A, W: []byte{0x00}, R: []byte{0x01}},
		w(0x00, 0x21), // auto-increment
	}
	ops = append(ops, freq(122, 0x21)...) // periph's default 50 Hz
	ops = append(ops, freq(5, 0x21)...)   // 1 kHz: round(25 MHz/4096/1 kHz) - 1 = 5
	ops = append(ops,
		w(0x06+12+3, 0x10),                 // channel 3 full off
		w(0x06+12, 0x00, 0x00, 0x00, 0x08), // 0.5: on at 0, off at 2048
		w(0x06+12+1, 0x10, 0x00, 0x00),     // 1: full on
		w(0x06+12+3, 0x10),                 // 0: full off
	)
	bus := &i2ctest.Playback{Ops: ops, DontPanic: true}
	l, err := NewPCA9685(bus, PCA9685Options{Address: A, Channel: 3, Frequency: physic.KiloHertz})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []float64{0.5, 1, 0} {
		if err := l.SetBrightness(b); err != nil {
			t.Fatal(err)
		}
		if l.Brightness() != b {
			t.Errorf("Brightness() = %g", l.Brightness())
		}
	}
	if err := bus.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPCA9685OnEmulator(t *testing.T) {
	bus := ticemu.NewBus()
	chip := pca9685emu.New()
	if err := bus.Attach(0x40, chip); err != nil {
		t.Fatal(err)
	}
	l, err := NewPCA9685(bus, PCA9685Options{Channel: 7, Frequency: 1000 * physic.Hertz})
	if err != nil {
		t.Fatal(err)
	}
	if chip.Sleeping() {
		t.Fatal("oscillator still asleep")
	}
	if f := chip.Frequency(); f != l.Frequency() || f < 990*physic.Hertz || f > 1030*physic.Hertz {
		t.Errorf("PWM at %s, driver says %s", f, l.Frequency())
	}
	for _, b := range []float64{0, 0.25, 0.8, 1} {
		if err := l.SetBrightness(b); err != nil {
			t.Fatal(err)
		}
		if d := chip.Duty(7); math.Abs(d-b) > 1.0/4096 {
			t.Errorf("brightness %g: duty %g", b, d)
		}
		if d := chip.Duty(6); d != 0 {
			t.Errorf("channel 6 lit: %g", d)
		}
	}
	if err := l.SetBrightness(1.5); err == nil || !strings.Contains(err.Error(), "outside [0, 1]") {
		t.Errorf("1.5: %v", err)
	}
	// A NACK latches a bus fault; nothing is retried; ClearFault recovers.
	writes := chip.Writes()
	chip.InjectNACK(1)
	err = l.SetBrightness(0.3)
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultBus || f.Device != "light" || !errors.Is(err, ticemu.ErrNACK) {
		t.Fatalf("err = %v", err)
	}
	if chip.Writes() != writes {
		t.Error("write retried")
	}
	if err := l.SetBrightness(0.3); !errors.Is(err, hal.ErrFault) {
		t.Fatalf("while latched: %v", err)
	}
	if err := l.ClearFault(); err != nil {
		t.Fatal(err)
	}
	if chip.Duty(7) != 0 {
		t.Error("lamp not off after ClearFault")
	}
	if err := l.SetBrightness(0.3); err != nil {
		t.Fatal(err)
	}
}

func TestPCA9685OptionsChecked(t *testing.T) {
	bus := &i2ctest.Playback{DontPanic: true}
	for _, o := range []PCA9685Options{
		{Channel: 16, Frequency: physic.KiloHertz},
		{Channel: 0, Frequency: 10 * physic.Hertz},
		{Channel: 0, Frequency: 2 * physic.KiloHertz},
		{Address: 0x80, Frequency: physic.KiloHertz},
	} {
		if _, err := NewPCA9685(bus, o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
