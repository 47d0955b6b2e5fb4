package world

import (
	"fmt"
	"math"
	"math/rand/v2"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/physic"

	config "papscan/firmware-config"
	"papscan/hal/sim/dacemu"
	"papscan/hal/sim/pca9685emu"
	"papscan/hal/sim/stepemu"
	"papscan/hal/sim/ticemu"
)

// devices are the emulators behind the drivers other than the Tic: a
// STEP/DIR driver per "stepdir" axis, the piezo's DAC for a "dac" focus,
// the PCA9685 of a "pca9685" lamp.
type devices struct {
	stepdir map[string]*stepemu.Driver // by axis name
	piezo   *dacemu.DAC
	lamp    *pca9685emu.Chip
	pins    map[string]gpio.PinIO // the stepdir emulators' pins by name
}

// newDevice builds the emulator of axis name when its driver is not a Tic;
// it reports whether it did.
func (w *World) newDevice(name string, a config.Axis, rng *rand.Rand) (bool, error) {
	switch a.Driver {
	case "stepdir":
		if a.HomeDirection != "reverse" {
			return false, fmt.Errorf("sim: machine.axes.%s: the simulated stepdir axis has its switch at the reverse end", name)
		}
		travel := int64(math.Round(a.TravelMax.UM() * a.MicrostepsPerUM))
		sd := a.StepDir
		d := stepemu.New(w.Clock, stepemu.Options{
			Name:            "SIM_" + name,
			TravelSteps:     travel + 50,
			StartSteps:      int64(float64(travel) * (0.2 + 0.6*rng.Float64())),
			EnableActiveLow: sd.Enable.ActiveLow,
			LimitActiveLow:  sd.Limit.ActiveLow,
		})
		if w.dev.stepdir == nil {
			w.dev.stepdir = map[string]*stepemu.Driver{}
			w.dev.pins = map[string]gpio.PinIO{}
		}
		w.dev.stepdir[name] = d
		for _, p := range []struct {
			cfg config.Pin
			pin gpio.PinIO
		}{{sd.Step, d.Step()}, {sd.Dir, d.Dir()}, {sd.Enable, d.Enable()}, {sd.Limit, d.Limit()}} {
			w.dev.pins[p.cfg.String()] = p.pin
		}
		return true, nil
	case "dac":
		d := dacemu.New(w.Clock, dacemu.Options{
			Stroke: a.DAC.FullScale.D(),
			// The amplifier reaches full stroke at the DAC's full output
			// for the configured gain.
			VoltsFullStroke: dacemu.VRef * physic.ElectricPotential(a.DAC.Gain),
		})
		if err := w.Bus.Attach(a.Address, d); err != nil {
			return false, fmt.Errorf("sim: machine.axes.%s: DAC at 0x%02x: %w", name, a.Address, err)
		}
		w.dev.piezo = d
		return true, nil
	}
	return false, nil
}

// newLamp attaches the PCA9685 of a "pca9685" lamp. Its transfers take
// their time on the wire on the world's timed bus, and when the
// camera sees the lamp (a strobe) the channel's output drives it.
func (w *World) newLamp() error {
	l := w.cfg.Machine.Light
	if l.Driver != "pca9685" {
		return nil
	}
	w.dev.lamp = pca9685emu.New() // the bus times its transfers
	if err := w.Bus.Attach(l.PCA9685.Address, w.dev.lamp); err != nil {
		return fmt.Errorf("sim: machine.light.pca9685: 0x%02x: %w", l.PCA9685.Address, err)
	}
	if w.strobe != nil {
		w.dev.lamp.OnOutput(l.PCA9685.Channel, w.strobe.SetLevel)
	}
	return nil
}

// truthUM is the true position of axis name in µm from its home switch
// (for z on a piezo: the stage's displacement).
func (w *World) truthUM(name string) float64 {
	ax := w.cfg.Machine.Axes
	a := map[string]config.Axis{"x": ax.X, "y": ax.Y, "z": ax.Z}[name]
	switch {
	case w.dev.stepdir[name] != nil:
		return float64(w.dev.stepdir[name].Position()) / a.MicrostepsPerUM
	case name == "z" && w.dev.piezo != nil:
		return w.dev.piezo.UM()
	}
	return umOf(map[string]*ticemu.Tic{"x": w.X, "y": w.Y, "z": w.Z}[name], a)
}

// StepDir returns the emulated STEP/DIR driver of axis name ("x", "y",
// "z"), or nil when that axis is not a stepdir axis.
func (w *World) StepDir(name string) *stepemu.Driver { return w.dev.stepdir[name] }

// Piezo returns the emulated DAC and piezo stage of a "dac" focus, or nil.
func (w *World) Piezo() *dacemu.DAC { return w.dev.piezo }

// Lamp returns the emulated PCA9685 of a "pca9685" lamp, or nil.
func (w *World) Lamp() *pca9685emu.Chip { return w.dev.lamp }

// GPIO opens the simulated line p names: a stepdir emulator's pin, or one
// of Pins. It has the signature of robot.Wire.Pin.
func (w *World) GPIO(p config.Pin) (gpio.PinIO, error) {
	if pin, ok := w.dev.pins[p.String()]; ok {
		return pin, nil
	}
	if w.lamp != nil && p.String() == w.lamp.Pin.N {
		return w.lamp, nil
	}
	if w.trig != nil && p.String() == w.trig.Pin.N {
		return w.trig, nil
	}
	return w.Pin(p.String())
}
