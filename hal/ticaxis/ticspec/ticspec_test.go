package ticspec

import (
	"testing"

	"periph.io/x/devices/v3/tic"
)

// TestStepModeCodesArePeriphs: the wire codes are periph's tic.StepMode
// values, and a mode's code maps back to its microsteps.
func TestStepModeCodesArePeriphs(t *testing.T) {
	for m, want := range map[int]tic.StepMode{1: tic.StepModeFull, 2: tic.StepModeHalf, 4: tic.StepModeMicrostep4,
		8: tic.StepModeMicrostep8, 16: tic.StepModeMicrostep16, 32: tic.StepModeMicrostep32,
		64: tic.StepModeMicrostep64, 128: tic.StepModeMicrostep128, 256: tic.StepModeMicrostep256} {
		code, ok := StepModeCode(m)
		if !ok || tic.StepMode(code) != want || Microsteps(code) != m {
			t.Errorf("%d microsteps: code %d %v (back %d), want %d", m, code, ok, Microsteps(code), want)
		}
	}
	if CodeHalf100 != uint8(tic.StepModeMicrostep2_100p) || Microsteps(CodeHalf100) != 2 {
		t.Error("half step 100% code")
	}
	for _, m := range []int{0, 3, 512, -1} {
		if _, ok := StepModeCode(m); ok {
			t.Errorf("%d microsteps has a code", m)
		}
	}
	if Microsteps(10) != 0 {
		t.Error("code 10 has microsteps")
	}
}

// TestVariantsArePeriphs: every model's periph name is one periph knows,
// and lookups by either name agree.
func TestVariantsArePeriphs(t *testing.T) {
	known := map[tic.Variant]bool{tic.TicT825: true, tic.TicT834: true, tic.TicT500: true, tic.TicT249: true, tic.Tic36v4: true}
	if len(Variants()) != len(known) {
		t.Fatalf("%d variants, periph has %d", len(Variants()), len(known))
	}
	for _, v := range Variants() {
		if !known[tic.Variant(v.Model)] || v.Model != "Tic "+v.Name {
			t.Errorf("%s: model %q", v.Name, v.Model)
		}
		if w, ok := Lookup(v.Name); !ok || w.Model != v.Model {
			t.Errorf("Lookup(%q)", v.Name)
		}
		if w, ok := ByModel(v.Model); !ok || w.Name != v.Name {
			t.Errorf("ByModel(%q)", v.Model)
		}
		if v.MaxCurrent <= 0 || !v.Offers(1) || v.Offers(3) {
			t.Errorf("%s: %+v", v.Name, v)
		}
	}
	if _, ok := Lookup("T999"); ok {
		t.Error("unknown model found")
	}
	// The table is not shared: editing one copy leaves the next alone.
	Variants()[0].StepModes[0] = 99
	if Variants()[0].StepModes[0] != 1 {
		t.Error("Variants shares its table")
	}
}

func TestUnits(t *testing.T) {
	if u, ok := SpeedUnits(MaxStepsPerSecond); !ok || u != MaxSpeedUnits {
		t.Errorf("top speed: %d %v", u, ok)
	}
	if _, ok := SpeedUnits(MaxStepsPerSecond + 0.001); ok {
		t.Error("speed above the Tic's accepted")
	}
	if _, ok := SpeedUnits(0); ok {
		t.Error("zero speed accepted")
	}
	if _, ok := AccelUnits(0.99); ok {
		t.Error("acceleration below 1 microstep/s² accepted")
	}
	if u, ok := AccelUnits(1); !ok || u != MinAccelUnits {
		t.Errorf("1 microstep/s²: %d %v", u, ok)
	}
	if _, ok := Position(MaxPosition + 1); ok {
		t.Error("position past int32 accepted")
	}
	if p, ok := Position(-2.6); !ok || p != -3 {
		t.Errorf("Position(-2.6) = %d %v", p, ok)
	}
}
