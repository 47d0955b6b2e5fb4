package robot_test

import (
	"fmt"
	"strings"
	"testing"

	config "papscan/firmware-config"
	"papscan/hal/sim"
	"papscan/hal/sim/ticemu"
	"papscan/hal/ticaxis"
	"papscan/hal/ticaxis/ticspec"
	"papscan/robot"

	"periph.io/x/devices/v3/tic"
)

// TestTicValidatorAndDriverAgree: for every Tic model, step mode and
// current limit (and the edges of the speed, acceleration and position
// ranges), the configuration's validator accepts an X axis exactly when
// the driver accepts the options the assembly point maps it to; and
// every accepted axis really comes up on the emulated Tic of that model
// (periph's per-model checks and the emulator's included).
func TestTicValidatorAndDriverAgree(t *testing.T) {
	type tweak struct {
		name string
		f    func(*config.Axis)
	}
	var cases []tweak
	for _, name := range append(ticspec.Names(), "T900", "") {
		v, _ := ticspec.Lookup(name)
		maxI := config.Current(v.MaxCurrent)
		if maxI == 0 {
			maxI = config.Ampere
		}
		for _, mode := range []int{0, 1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512} {
			for _, cur := range []config.Current{config.Milliampere, maxI, maxI + config.Milliampere, 0} {
				cases = append(cases, tweak{fmt.Sprintf("%s/step%d/%s", name, mode, cur), func(a *config.Axis) {
					a.TicVariant, a.StepMode, a.CurrentLimit = name, mode, cur
				}})
			}
		}
	}
	// Speed, acceleration and travel at the edges of the Tic's ranges:
	// microsteps_per_um 1000 makes 50 mm/s the Tic's top speed.
	for _, sp := range []config.Speed{50 * config.MillimetrePerSecond, 50*config.MillimetrePerSecond + 1, config.MicrometrePerSecond} {
		cases = append(cases, tweak{fmt.Sprintf("speed %s", sp), func(a *config.Axis) {
			a.TicVariant, a.StepMode, a.MicrostepsPerUM, a.MaxSpeed, a.HomingSpeed = "36v4", 256, 1000, sp, min(sp, a.HomingSpeed)
			a.TravelMax = 2 * config.Millimetre
		}})
	}
	for _, acc := range []config.Acceleration{1, 1000, 999} { // nm/s²: 1 µm/s² × 1 microstep/µm is the Tic's least
		cases = append(cases, tweak{fmt.Sprintf("acceleration %d nm/s² at 1 microstep/µm", acc), func(a *config.Axis) {
			a.MicrostepsPerUM, a.Acceleration = 1, acc
			a.MaxSpeed, a.HomingSpeed = config.MillimetrePerSecond, config.MillimetrePerSecond/2
		}})
	}
	for _, tr := range []config.Distance{2147 * config.Millimetre, 2148 * config.Millimetre} {
		cases = append(cases, tweak{fmt.Sprintf("travel %s at 1 microstep/µm", tr), func(a *config.Axis) {
			a.MicrostepsPerUM, a.TravelMax = 1, tr
			a.MaxSpeed, a.HomingSpeed = config.MillimetrePerSecond, config.MillimetrePerSecond/2
		}})
	}

	base := config.Default()
	if err := base.Validate(); err != nil {
		t.Fatalf("default configuration: %v", err)
	}
	if base.Machine.Axes.X.Driver != "tic" {
		t.Fatalf("default X axis driver %q, want tic", base.Machine.Axes.X.Driver)
	}
	accepted := 0
	for _, c := range cases {
		cfg := config.Default()
		c.f(&cfg.Machine.Axes.X)
		verr := cfg.Validate()
		opts := robot.TicOptions("x", cfg.Machine.Axes.X)
		derr := opts.Check()
		if (verr == nil) != (derr == nil) {
			t.Errorf("%s: validator says %v, driver says %v", c.name, firstLine(verr), derr)
			continue
		}
		if verr != nil {
			continue
		}
		accepted++
		// The driver's options come up on the emulated model.
		clk := sim.NewClock()
		bus := ticemu.NewBus()
		if err := bus.Attach(opts.Address, ticemu.New(clk, ticemu.Options{Variant: opts.Variant, CommandTimeout: opts.CommandTimeout,
			TravelSteps: 1e6, StartSteps: 10})); err != nil {
			t.Fatal(err)
		}
		if _, err := ticaxis.New(bus, clk, opts); err != nil {
			t.Errorf("%s: accepted by both, but the emulated %s refuses: %v", c.name, opts.Variant, err)
		}
	}
	if accepted < 50 {
		t.Errorf("only %d of %d cases accepted: the sweep is not exercising the models", accepted, len(cases))
	}
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// TestTicOptionsNeverDefault: a step mode or model no Tic has maps to
// options the driver refuses, never to a full step or a default model.
func TestTicOptionsNeverDefault(t *testing.T) {
	a := config.Default().Machine.Axes.X
	a.StepMode = 3
	if o := robot.TicOptions("x", a); o.StepMode == tic.StepModeFull || o.Check() == nil {
		t.Errorf("step mode 3 mapped to %d (check %v)", o.StepMode, o.Check())
	}
	a = config.Default().Machine.Axes.X
	a.TicVariant = "T900"
	if o := robot.TicOptions("x", a); o.Check() == nil {
		t.Errorf("model T900 mapped to %q, accepted", o.Variant)
	}
}
