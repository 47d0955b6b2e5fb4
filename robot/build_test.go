package robot_test

import (
	"context"
	"fmt"
	"math"
	"testing"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	config "papscan/firmware-config"
	"papscan/hal/sim/world"
	"papscan/robot"
	"papscan/robot/robottest"
)

// TestEveryDriverCombination builds the simulated machine for every
// selection of axis, focus and lamp drivers, with the same robot.Build as
// the robot, and does a short move, a focus step and a brightness change,
// checking each against the emulators' ground truth.
func TestEveryDriverCombination(t *testing.T) {
	lamps := robottest.LampDrivers()
	for _, xy := range robottest.StageDrivers() {
		for _, z := range robottest.FocusDrivers() {
			for i, lamp := range lamps {
				if testing.Short() && i != (len(xy)+len(z))%2 {
					continue // -short: each axis combination with one lamp
				}
				t.Run(fmt.Sprintf("xy=%s,z=%s,light=%s", xy, z, lamp), func(t *testing.T) {
					runCombo(t, robottest.DriverCombo(xy, z, lamp))
				})
			}
		}
	}
}

func runCombo(t *testing.T, cfg *config.Config) {
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	w, err := world.NewWorld(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := robot.Build(cfg, robot.Wire{Bus: w.Bus, Frames: w.Camera, Pin: w.GPIO, Loader: w.Loader, Clock: w.Clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.Stage.Home(ctx); err != nil {
		t.Fatal(err)
	}
	if err := m.Focus.Home(ctx); err != nil {
		t.Fatal(err)
	}
	tx, ty := 40*physic.MilliMetre, 15*physic.MilliMetre
	if err := m.Stage.MoveTo(ctx, tx, ty); err != nil {
		t.Fatal(err)
	}
	zt := cfg.Scan.ZNominal.D() + 5*physic.MicroMetre
	if err := m.Focus.SetZ(ctx, zt); err != nil {
		t.Fatal(err)
	}
	x, y, z := w.StageTruth()
	ax := cfg.Machine.Axes
	// Within two steps (the home reference sits one step off the trip
	// point on a stepdir axis) or 1 µm.
	tol := func(a config.Axis) float64 { return math.Max(2/a.MicrostepsPerUM, 1) }
	if math.Abs(x-40000) > tol(ax.X) || math.Abs(y-15000) > tol(ax.Y) {
		t.Errorf("stage at %.2f, %.2f µm, want 40000, 15000", x, y)
	}
	if want := zt.String(); math.Abs(z-float64(zt)/1e3) > tol(ax.Z) {
		t.Errorf("focus at %.3f µm, want %s", z, want)
	}
	if m.Light == nil {
		t.Fatal("no light")
	}
	if err := m.Light.SetBrightness(0.5); err != nil {
		t.Fatal(err)
	}
	if lamp := w.Lamp(); lamp != nil {
		if d := lamp.Duty(cfg.Machine.Light.PCA9685.Channel); d != 0.5 {
			t.Errorf("lamp duty %g, want 0.5", d)
		}
	} else {
		p, err := w.Pin(cfg.Machine.Light.Pin.String())
		if err != nil || p.Read() != gpio.High {
			t.Errorf("lamp pin: %v, %v", p, err)
		}
	}
	if n := len(m.Faults.Devices()); n < 3 {
		t.Errorf("%d latching devices", n)
	}
	if f := m.Faults.Faults(); len(f) != 0 {
		t.Errorf("faults: %v", f)
	}
}
