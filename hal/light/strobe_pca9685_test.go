package light

import (
	"context"
	"strings"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/hal/sim"
	"papscan/hal/sim/pca9685emu"
	"papscan/hal/sim/ticemu"
)

// TestPCA9685StrobePulse: a strobe on a PCA9685 channel, driven through
// periph's driver onto an emulated chip whose transfers take their wire
// time on a virtual clock. The light comes on at the STOP of the full-on
// write and goes off at the STOP of the full-off write; Fire accounts for
// the off write, so the pulse lasts what was asked. A pulse shorter than
// the off write (290 µs at 100 kHz) is refused.
func TestPCA9685StrobePulse(t *testing.T) {
	clk := sim.NewClock()
	bus := ticemu.NewBus()
	chip := pca9685emu.NewTimed(pca9685emu.Options{Clock: clk, BusSpeed: 100 * physic.KiloHertz})
	if err := bus.Attach(0x40, chip); err != nil {
		t.Fatal(err)
	}
	type edge struct {
		at    time.Time
		level float64
	}
	var edges []edge
	chip.OnOutput(2, func(l float64) { edges = append(edges, edge{clk.Now(), l}) })
	l, err := NewPCA9685(bus, PCA9685Options{Channel: 2, Frequency: physic.KiloHertz})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.SwitchTime(), 290*time.Microsecond; got != want {
		t.Errorf("switch time %v, want %v (29 bit times at 100 kHz)", got, want)
	}
	if got, want := l.SwitchOnTime(), 470*time.Microsecond; got != want {
		t.Errorf("switch-on time %v, want %v", got, want)
	}
	s, err := NewStrobe(l, clk)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, width := range []time.Duration{290 * time.Microsecond, 500 * time.Microsecond, 2 * time.Millisecond} {
		edges = edges[:0]
		t0 := clk.Now()
		if err := s.Fire(ctx, width); err != nil {
			t.Fatal(err)
		}
		if len(edges) != 2 || edges[0].level != 1 || edges[1].level != 0 {
			t.Fatalf("%v: edges %+v, want on then off", width, edges)
		}
		if on := edges[0].at.Sub(t0); on != l.SwitchOnTime() {
			t.Errorf("%v: light came on %v after Fire, want the on write's %v", width, on, l.SwitchOnTime())
		}
		if got := edges[1].at.Sub(edges[0].at); got != width {
			t.Errorf("pulse lasted %v, want %v", got, width)
		}
	}
	if err := s.Fire(ctx, 100*time.Microsecond); err == nil || !strings.Contains(err.Error(), "shorter than the 290µs") {
		t.Errorf("100µs pulse: %v", err)
	}
	if chip.Duty(2) != 0 {
		t.Error("lamp left on")
	}
}
