package hal

import (
	"errors"
	"testing"
)

type fakeLatch struct {
	name string
	err  error
}

func (f *fakeLatch) String() string    { return f.name }
func (f *fakeLatch) Fault() error      { return f.err }
func (f *fakeLatch) ClearFault() error { f.err = nil; return nil }

func TestFaults(t *testing.T) {
	devs := []Latching{
		&fakeLatch{name: "x"},
		&fakeLatch{name: "y", err: NewFault("y", FaultLimit, errors.New("forward limit"))},
		&fakeLatch{name: "cam", err: errors.New("not a Fault")},
	}
	got := Faults(devs)
	if len(got) != 2 || got[0].Device != "y" || got[0].Code != FaultLimit || got[1].Device != "cam" || got[1].Code != FaultInternal {
		t.Fatalf("Faults = %v", got)
	}
	for _, d := range devs {
		_ = d.ClearFault()
	}
	if len(Faults(devs)) != 0 {
		t.Error("faults after ClearFault")
	}
}
