package scan

import (
	"math"
	"testing"
)

// TestRefocusPolicy: the pure refocus decisions, without hardware.
func TestRefocusPolicy(t *testing.T) {
	p := newRefocusPolicy(0.5, 2, 2, 1000)
	for range 4 {
		p.observe(100*0.4, 0.4) // sharpness 100 per unit of tissue
	}
	if p.needed(0, 10*0.4, 0.4) {
		t.Error("refocus before five tiles were seen")
	}
	p.observe(100*0.4, 0.4)
	switch {
	case !p.needed(0, 10*0.4, 0.4):
		t.Error("a tile at a tenth of the usual sharpness, as much tissue: no refocus")
	case p.needed(0, 60*0.4, 0.4):
		t.Error("a tile at 60 % of the usual sharpness refocused (drop 0.5)")
	case p.needed(0, 10*0.1, 0.1):
		t.Error("a tile with little tissue refocused")
	case p.needed(2, 10*0.4, 0.4):
		t.Error("refocused past RefocusMax")
	}
	p.observe(1, 0.01) // too little tissue: not in the window
	if len(p.sharp) != 5 {
		t.Errorf("window %v", p.sharp)
	}

	// A focus found within half a step of where the tile was imaged
	// confirms the map.
	if got := p.found(Point{0, 0}, 50, 50.5, 50); got != refocusConfirmed {
		t.Errorf("confirmed: %v", got)
	}
	// A shift: a local map error first.
	if got := p.found(Point{0, 0}, 50, 56, 50); got != refocusLocal || p.offset != 0 {
		t.Errorf("first shift: %v offset %g", got, p.offset)
	}
	// The same shift close by: still local.
	if got := p.found(Point{500, 0}, 50, 56, 50); got != refocusLocal {
		t.Errorf("same shift nearby: %v", got)
	}
	// The same shift far away: the whole focus moved.
	if got := p.found(Point{2000, 0}, 50, 56, 50); got != refocusGlobal || p.offset != 6 || !math.IsNaN(p.lastDev) {
		t.Errorf("same shift far apart: %v offset %g lastDev %g", got, p.offset, p.lastDev)
	}
	// After it, shifts count from the new offset.
	if got := p.found(Point{4000, 0}, 56, 56.4, 50); got != refocusConfirmed {
		t.Errorf("after the offset: %v", got)
	}
	if newRefocusPolicy(0, 5, 2, 1).enabled() {
		t.Error("drop 0 enabled")
	}
}
