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

// TestFaultRegistry: typed nils (an axis on another driver) are never
// registered, so Clear never calls a method on one; Clear clears every
// device and reports each failure.
func TestFaultRegistry(t *testing.T) {
	var r FaultRegistry
	var none *fakeLatch // a typed nil, as [3]*ticaxis.Axis held for a stepdir z
	x := &fakeLatch{name: "x", err: NewFault("x", FaultDriver, errors.New("driver"))}
	lamp := &fakeLatch{name: "lamp", err: NewFault("lamp", FaultBus, errors.New("nack"))}
	r.Add(x, none, nil, lamp)
	if n := len(r.Devices()); n != 2 {
		t.Fatalf("%d devices registered, want 2 (nils skipped)", n)
	}
	if fs := r.Faults(); len(fs) != 2 || fs[0].Device != "x" || fs[1].Device != "lamp" {
		t.Fatalf("Faults = %v", fs)
	}
	if err := r.Clear(); err != nil {
		t.Fatal(err)
	}
	if fs := r.Faults(); len(fs) != 0 {
		t.Errorf("faults after Clear: %v", fs)
	}
	r.Add(failingClear{})
	if err := r.Clear(); err == nil || err.Error() != "stuck: cannot clear" {
		t.Errorf("Clear = %v, want the failing device's error", err)
	}
}

type failingClear struct{}

func (failingClear) String() string    { return "stuck" }
func (failingClear) Fault() error      { return nil }
func (failingClear) ClearFault() error { return errors.New("cannot clear") }
