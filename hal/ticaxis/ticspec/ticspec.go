package ticspec

import (
	"math"
	"slices"

	"periph.io/x/conn/v3/physic"
)

// Variant is one Tic model.
type Variant struct {
	// Name is the model as the configuration names it (tic_variant):
	// T825, T834, T500, T249 or 36v4.
	Name string
	// Model is periph's name of the model (devices/v3/tic.Variant),
	// "Tic " + Name.
	Model string
	// MaxCurrent is the highest current limit setting of the model.
	MaxCurrent physic.ElectricCurrent
	// StepModes are the microsteps per full step the model offers.
	StepModes []int
	// Half100 is the T249's extra "half step 100% current" mode (wire
	// code CodeHalf100): the Tic takes it, but it cannot be expressed as
	// a number of microsteps per step, so it is not offered.
	Half100 bool
}

// CodeHalf100 is the wire code of the T249's half step at 100% current.
const CodeHalf100 = 6

// Variants are the Tic models papscan drives, in periph's order. Each
// call returns a fresh table.
func Variants() []Variant {
	upTo := func(n int) []int {
		var s []int
		for m := 1; m <= n; m *= 2 {
			s = append(s, m)
		}
		return s
	}
	return []Variant{
		{Name: "T825", Model: "Tic T825", MaxCurrent: 3968 * physic.MilliAmpere, StepModes: upTo(32)},
		{Name: "T834", Model: "Tic T834", MaxCurrent: 3456 * physic.MilliAmpere, StepModes: upTo(32)},
		{Name: "T500", Model: "Tic T500", MaxCurrent: 3093 * physic.MilliAmpere, StepModes: upTo(8)},
		{Name: "T249", Model: "Tic T249", MaxCurrent: 4480 * physic.MilliAmpere, StepModes: upTo(32), Half100: true},
		{Name: "36v4", Model: "Tic 36v4", MaxCurrent: 9095 * physic.MilliAmpere, StepModes: upTo(256)},
	}
}

// Names are the configuration names of the models, in Variants' order.
func Names() []string {
	var s []string
	for _, v := range Variants() {
		s = append(s, v.Name)
	}
	return s
}

// Lookup finds a model by its configuration name (T825).
func Lookup(name string) (Variant, bool) {
	for _, v := range Variants() {
		if v.Name == name {
			return v, true
		}
	}
	return Variant{}, false
}

// ByModel finds a model by periph's name of it (Tic T825).
func ByModel(model string) (Variant, bool) {
	for _, v := range Variants() {
		if v.Model == model {
			return v, true
		}
	}
	return Variant{}, false
}

// Offers reports whether the model has the step mode of microsteps per
// full step.
func (v Variant) Offers(microsteps int) bool { return slices.Contains(v.StepModes, microsteps) }

// TakesCode reports whether the model takes the "Set step mode" wire code.
func (v Variant) TakesCode(code uint8) bool {
	if code == CodeHalf100 {
		return v.Half100
	}
	return v.Offers(Microsteps(code))
}

// StepModeCode is the "Set step mode" wire code of microsteps per full
// step; false when no Tic has that mode.
func StepModeCode(microsteps int) (uint8, bool) {
	for code := range uint8(10) {
		if code != CodeHalf100 && Microsteps(code) == microsteps {
			return code, true
		}
	}
	return 0, false
}

// Microsteps is the number of microsteps per full step of a step-mode
// wire code (2 for CodeHalf100), 0 for a code no Tic has.
func Microsteps(code uint8) int {
	switch {
	case code <= 5:
		return 1 << code // full, half, 4, 8, 16, 32
	case code == CodeHalf100:
		return 2
	case code <= 9:
		return 1 << (code - 1) // 64, 128, 256
	}
	return 0
}

// Units and ranges of the Tic's step generator and position counter.
const (
	// SpeedScale: speeds are in microsteps per 10,000 s.
	SpeedScale = 10000
	// MaxSpeedUnits is the highest max speed, 50,000 microsteps/s.
	MaxSpeedUnits = 500_000_000
	// MaxStepsPerSecond is MaxSpeedUnits in microsteps per second.
	MaxStepsPerSecond = MaxSpeedUnits / SpeedScale
	// AccelScale: accelerations are in microsteps per 100 s².
	AccelScale = 100
	// MinAccelUnits and MaxAccelUnits bound max acceleration and
	// deceleration (1 microstep/s² and the u32 setting's signed range).
	MinAccelUnits = 100
	MaxAccelUnits = math.MaxInt32
	// MinPosition and MaxPosition bound the signed 32-bit position count.
	MinPosition = math.MinInt32
	MaxPosition = math.MaxInt32
)

// SpeedUnits converts a speed in microsteps per second into the Tic's
// units, rounded; false outside 1..MaxSpeedUnits.
func SpeedUnits(stepsPerSecond float64) (int64, bool) {
	return units(stepsPerSecond, SpeedScale, 1, MaxSpeedUnits)
}

// AccelUnits converts an acceleration in microsteps per second² into the
// Tic's units, rounded; false outside MinAccelUnits..MaxAccelUnits.
func AccelUnits(stepsPerSecond2 float64) (int64, bool) {
	return units(stepsPerSecond2, AccelScale, MinAccelUnits, MaxAccelUnits)
}

// Position rounds a position in microsteps; false outside the Tic's
// 32-bit count.
func Position(microsteps float64) (int64, bool) {
	return units(microsteps, 1, MinPosition, MaxPosition)
}

func units(v, scale float64, lo, hi int64) (int64, bool) {
	f := math.Round(v * scale)
	if math.IsNaN(f) || f < float64(lo) || f > float64(hi) {
		return 0, false
	}
	return int64(f), true
}
