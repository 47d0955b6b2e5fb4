// Package ticspec holds the facts of the Pololu Tic stepper motor
// controllers that papscan relies on, in one place: the models (their
// configuration names and periph's model names), the step modes each
// offers and their wire codes, the highest current limit of each, and the
// ranges and units of the step generator and position counter (Pololu Tic
// user's guide, "Current limit", "Step mode" and the variable reference).
//
// The configuration's validator (firmware-config), the driver
// (hal/ticaxis), the assembly point (robot) and the emulator
// (hal/sim/ticemu) all read these facts from here, so what the validator
// accepts is what the driver programs and the emulator takes. It imports
// no other papscan package (firmware-config stays a leaf but for it).
//
//	v, ok := ticspec.Lookup("T825")      // tic_variant in the configuration
//	if ok && v.Offers(16) { code, _ := ticspec.StepModeCode(16) ... }
//	units, ok := ticspec.SpeedUnits(maxSpeedUMPerS * microstepsPerUM)
package ticspec
