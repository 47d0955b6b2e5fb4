package hal

import (
	"context"
	"errors"
	"testing"

	"periph.io/x/conn/v3/physic"
)

type fakeFocus struct {
	z     physic.Distance
	homed bool
}

func (f *fakeFocus) String() string                  { return "piezo" }
func (f *fakeFocus) Home(context.Context) error      { f.homed = true; return nil }
func (f *fakeFocus) Homed() bool                     { return f.homed }
func (f *fakeFocus) Z() (physic.Distance, error)     { return f.z, nil }
func (f *fakeFocus) Range() (lo, hi physic.Distance) { return 0, 100 * physic.MicroMetre }
func (f *fakeFocus) Halt() error                     { return nil }
func (f *fakeFocus) SetZ(_ context.Context, z physic.Distance) error {
	f.z = z
	return nil
}

// TestFocusAxis: a focus (piezo) jogs and parks through the Axis
// interface: not before homing, never outside its range.
func TestFocusAxis(t *testing.T) {
	f := &fakeFocus{}
	a := &FocusAxis{Focus: f}
	if err := a.Start(10 * physic.MicroMetre); !errors.Is(err, ErrNotHomed) {
		t.Errorf("Start before homing: %v", err)
	}
	ctx := context.Background()
	if err := a.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(200 * physic.MicroMetre); !errors.Is(err, ErrOutOfTravel) {
		t.Errorf("Start outside the range: %v", err)
	}
	if err := MoveTo(ctx, a, 30*physic.MicroMetre); err != nil {
		t.Fatal(err)
	}
	if p, _ := a.Position(); p != 30*physic.MicroMetre || f.z != p {
		t.Errorf("at %s (focus %s), want 30µm", p, f.z)
	}
	if err := a.Wait(ctx); err != nil || f.z != 30*physic.MicroMetre {
		t.Errorf("a second Wait moved or failed: %v, %s", err, f.z)
	}
}
