// Package machine assembles the robot's drivers from its configuration on
// top of what the hardware (or the simulation) provides at the wire: an I²C
// bus, a frame source, GPIO pins, a slide loader and a clock. The robot's
// service, the simulator and the tests all build their machine here, so they
// drive the same code.
package machine

import (
	"fmt"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/tic"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/light"
	"papscan/hal/panel"
	"papscan/hal/ticaxis"
)

// Wire is what the robot (or the simulation) provides at the wire.
type Wire struct {
	Bus    i2c.Bus
	Frames hal.FrameSource
	Pin    func(config.Pin) (gpio.PinIO, error)
	Loader hal.SlideLoader
	Clock  hal.Clock
}

// Machine is the robot's devices, as hal interfaces, plus the panel and
// the concrete axes (for fault handling).
type Machine struct {
	hal.Machine
	Panel *panel.Panel
	Axes  [3]*ticaxis.Axis // x, y, z
}

// stepModes maps microsteps per full step to the Tic's step-mode code.
var stepModes = map[int]tic.StepMode{
	1: tic.StepModeFull, 2: tic.StepModeHalf, 4: tic.StepModeMicrostep4, 8: tic.StepModeMicrostep8,
	16: tic.StepModeMicrostep16, 32: tic.StepModeMicrostep32, 64: tic.StepModeMicrostep64,
	128: tic.StepModeMicrostep128, 256: tic.StepModeMicrostep256,
}

// TicOptions maps one axis of the configuration onto the Tic driver.
func TicOptions(name string, a config.Axis) ticaxis.Options {
	return ticaxis.Options{
		Name:            name,
		Address:         a.Address,
		Variant:         tic.Variant("Tic " + a.TicVariant),
		MicrostepsPerUM: a.MicrostepsPerUM,
		StepMode:        stepModes[a.StepMode],
		CurrentLimit:    a.CurrentLimit.I(),
		MaxSpeed:        a.MaxSpeed.S(),
		Acceleration:    a.Acceleration.UMPerS2(),
		HomingTimeout:   a.HomingTimeout.D(),
		HomeForward:     a.HomeDirection == "forward",
		Settle:          a.Settle.D(),
		TravelMin:       a.TravelMin.D(),
		TravelMax:       a.TravelMax.D(),
		CommandTimeout:  a.CommandTimeout.D(),
		Backlash:        a.Backlash.D(),
	}
}

// Build puts the drivers on top of the wire as cfg describes.
func Build(cfg *config.Config, hw Wire) (*Machine, error) {
	m := &Machine{Machine: hal.Machine{Loader: hw.Loader, Clock: hw.Clock}}
	axes := []struct {
		name string
		a    config.Axis
	}{{"x", cfg.Machine.Axes.X}, {"y", cfg.Machine.Axes.Y}, {"z", cfg.Machine.Axes.Z}}
	var built [3]*ticaxis.Axis
	stage := ticaxis.NewGroup() // X and Y move together
	for i, ax := range axes {
		o := TicOptions(ax.name, ax.a)
		if ax.name != "z" {
			o.Group = stage
		}
		a, err := ticaxis.New(hw.Bus, hw.Clock, o)
		if err != nil {
			return nil, fmt.Errorf("machine.axes.%s: %w", ax.name, err)
		}
		built[i] = a
	}
	m.Axes = built
	m.Stage = hal.Stage{X: built[0], Y: built[1]}
	m.Focus = hal.AxisFocus{Axis: built[2]}
	m.Camera = camera.New(hw.Frames, cfg.Machine.Camera.PixelSize.D())

	if p := cfg.Machine.Light.Pin; !p.IsZero() {
		pin, err := hw.Pin(p)
		if err != nil {
			return nil, fmt.Errorf("machine.light.pin: %w", err)
		}
		l, err := light.NewGPIO(p.String(), pin, p.ActiveLow)
		if err != nil {
			return nil, err
		}
		m.Light = l
	}
	pc := cfg.Machine.Panel
	led := func(key string, p config.Pin) (*panel.LED, error) {
		pin, err := hw.Pin(p)
		if err != nil {
			return nil, fmt.Errorf("machine.panel.%s: %w", key, err)
		}
		return panel.NewLED(key, pin, p.ActiveLow)
	}
	var pnl panel.Panel
	var err error
	if pnl.Ready, err = led("led_ready", pc.LEDReady); err != nil {
		return nil, err
	}
	if pnl.Busy, err = led("led_busy", pc.LEDBusy); err != nil {
		return nil, err
	}
	if pnl.Fault, err = led("led_fault", pc.LEDFault); err != nil {
		return nil, err
	}
	m.Panel = &pnl
	return m, nil
}
