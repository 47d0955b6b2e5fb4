package ticemu

import (
	"testing"
	"time"

	"papscan/hal/sim"
)

// FuzzTx feeds arbitrary transfer sequences to the decoder. The emulator must
// never panic, and its invariants must hold afterwards.
func FuzzTx(f *testing.F) {
	f.Add([]byte{0xA1, 0x49, 1}, uint8(1))
	f.Add([]byte{0xE0, 0x10, 0x27, 0, 0}, uint8(0))
	f.Add([]byte{0x83}, uint8(0))
	f.Add([]byte{0x97, 0x00}, uint8(0))
	f.Add([]byte{0xA2, 0x04}, uint8(4))
	f.Add([]byte{0xA8, 0x09}, uint8(2))
	f.Add([]byte{0xA1, 0xFF}, uint8(1))
	f.Add([]byte{0xE3, 0x00, 0x00, 0x10, 0x00}, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, rlen uint8) {
		clk := sim.NewClock()
		emu := New(clk, Options{StartSteps: 10, TravelSteps: 200, OvertravelSteps: 5})
		bus := NewBus()
		if err := bus.Attach(addr, emu); err != nil {
			t.Fatal(err)
		}
		// Split data into transfers: first byte of each chunk is its length
		// (low 3 bits) plus a read length and a time step.
		for len(data) > 0 {
			hdr := data[0]
			data = data[1:]
			n := int(hdr & 7)
			if n > len(data) {
				n = len(data)
			}
			w := data[:n]
			data = data[n:]
			var r []byte
			if hdr&0x80 != 0 {
				r = make([]byte, int(rlen)%20)
			}
			err := bus.Tx(addr, w, r)
			if len(r) > maxBlockRead && err == nil {
				t.Fatalf("read of %d bytes succeeded", len(r))
			}
			clk.Advance(time.Duration(hdr>>3&0xF) * 7 * time.Millisecond)
		}
		clk.Advance(3 * time.Second)
		p := emu.PhysicalSteps()
		if p < -5 || p > 205 {
			t.Fatalf("carriage at %g, outside the hard stops", p)
		}
	})
}
