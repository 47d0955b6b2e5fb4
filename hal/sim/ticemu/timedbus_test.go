package ticemu

import (
	"errors"
	"testing"
	"time"

	"papscan/hal/sim"

	"periph.io/x/conn/v3/physic"
	"periph.io/x/devices/v3/tic"
)

func TestWireTime(t *testing.T) {
	for _, c := range []struct {
		nw, nr int
		speed  physic.Frequency
		want   time.Duration
	}{
		{0, 0, 100 * physic.KiloHertz, 110 * time.Microsecond},   // START, address, STOP
		{5, 0, 100 * physic.KiloHertz, 560 * time.Microsecond},   // a 32-bit command
		{2, 4, 100 * physic.KiloHertz, 750 * time.Microsecond},   // a variable read with a repeated START
		{2, 4, 400 * physic.KiloHertz, 187500 * time.Nanosecond}, // the same in fast mode
		{1, 1, 0, 390 * time.Microsecond},                        // speed 0 is 100 kHz
	} {
		if got := WireTime(c.nw, c.nr, c.speed); got != c.want {
			t.Errorf("WireTime(%d, %d, %s) = %s, want %s", c.nw, c.nr, c.speed, got, c.want)
		}
	}
}

// A timed bus takes every transfer's wire time on its clock, at the speed
// the driver set, before the device sees it: a position read returns where
// the Tic is at the read's STOP.
func TestTimedBusTakesWireTime(t *testing.T) {
	clk := sim.NewClock()
	emu := New(clk, Options{})
	bus := NewTimedBus(clk)
	must(t, bus.Attach(addr, emu))
	dev, err := tic.NewI2C(bus, tic.TicT834, addr)
	must(t, err)

	t0 := clk.Elapsed()
	_, err = dev.GetCurrentPosition()
	must(t, err)
	read := clk.Elapsed() - t0
	// At least one transfer with the 4-byte answer; never free.
	if read < WireTime(1, 4, 100*physic.KiloHertz) {
		t.Fatalf("position read took %s of bus time at 100 kHz, want >= %s", read, WireTime(1, 4, 100*physic.KiloHertz))
	}
	must(t, bus.SetSpeed(400*physic.KiloHertz))
	t0 = clk.Elapsed()
	_, err = dev.GetCurrentPosition()
	must(t, err)
	if fast := clk.Elapsed() - t0; fast*4 != read {
		t.Errorf("the same read at 400 kHz took %s, want a quarter of %s", fast, read)
	}

	// A NACKed address still holds the bus for its address byte.
	t0 = clk.Elapsed()
	if err := bus.Tx(0x55, []byte{1}, nil); !errors.Is(err, ErrNACK) {
		t.Fatalf("Tx to an empty address: %v, want ErrNACK", err)
	}
	if got, want := clk.Elapsed()-t0, WireTime(0, 0, 400*physic.KiloHertz); got != want {
		t.Errorf("NACKed transfer took %s, want %s", got, want)
	}

	// An untimed bus takes none.
	clk2 := sim.NewClock()
	bus2 := NewBus()
	must(t, bus2.Attach(addr, New(clk2, Options{})))
	dev2, err := tic.NewI2C(bus2, tic.TicT834, addr)
	must(t, err)
	_, err = dev2.GetCurrentPosition()
	must(t, err)
	if clk2.Elapsed() != 0 {
		t.Errorf("untimed bus: the read took %s", clk2.Elapsed())
	}
}
