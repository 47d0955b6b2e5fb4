package robot

import (
	"fmt"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/tic"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/dacfocus"
	"papscan/hal/light"
	"papscan/hal/panel"
	"papscan/hal/pins"
	"papscan/hal/stepdir"
	"papscan/hal/ticaxis"
	"papscan/hal/ticaxis/ticspec"
)

// Wire is what the robot (or the simulation) provides at the wire.
type Wire struct {
	Bus    i2c.Bus
	Frames hal.FrameSource
	// Overview is the optional low-magnification camera's frame source
	// (nil: none); its pixel size is scan.overview_pixel_size.
	Overview hal.FrameSource
	Pin      func(config.Pin) (gpio.PinIO, error)
	Loader   hal.SlideLoader
	Clock    hal.Clock
}

// TicOptions maps one axis of the configuration onto the Tic driver: the
// model and the step mode's code come from the Tic's fact table
// (ticspec). A model or step mode no Tic has maps to values the driver
// refuses, never to a default.
func TicOptions(name string, a config.Axis) ticaxis.Options {
	variant, _ := ticspec.Lookup(a.TicVariant)
	code, ok := ticspec.StepModeCode(a.StepMode)
	if !ok {
		code = 0xFF
	}
	return ticaxis.Options{
		Name:            name,
		Address:         a.Address,
		Variant:         tic.Variant(variant.Model),
		MicrostepsPerUM: a.MicrostepsPerUM,
		StepMode:        tic.StepMode(code),
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
		ApproachReverse: a.Approach == "reverse",
	}
}

// StepDirOptions maps one axis of the configuration onto the STEP/DIR
// driver (microsteps_per_um is its steps per µm).
func StepDirOptions(name string, a config.Axis) stepdir.Options {
	return stepdir.Options{
		Name:          name,
		StepsPerUM:    a.MicrostepsPerUM,
		MaxSpeed:      a.MaxSpeed.S(),
		Acceleration:  a.Acceleration.UMPerS2(),
		HomingSpeed:   a.HomingSpeed.S(),
		HomingTimeout: a.HomingTimeout.D(),
		HomeForward:   a.HomeDirection == "forward",
		TravelMin:     a.TravelMin.D(),
		TravelMax:     a.TravelMax.D(),
		Settle:        a.Settle.D(),
		Backlash:      a.Backlash.D(),
		// The approach side only matters with backlash.
		ApproachReverse: a.Approach == "reverse",
	}
}

// DACOptions maps the z axis of the configuration onto the piezo driver.
func DACOptions(name string, a config.Axis) dacfocus.Options {
	return dacfocus.Options{
		Name:      name,
		Address:   a.Address,
		FullScale: a.DAC.FullScale.D(),
		RangeMin:  a.TravelMin.D(),
		RangeMax:  a.TravelMax.D(),
		Settle:    a.Settle.D(),
		Gain2:     a.DAC.Gain == 2,
		// The piezo's hysteresis is compensated like backlash.
		Backlash:        a.Backlash.D(),
		ApproachReverse: a.Approach == "reverse",
	}
}

// stepDirPins opens the pins of a stepdir axis.
func stepDirPins(hw Wire, key string, sd config.StepDir) (stepdir.Pins, error) {
	var out stepdir.Pins
	open := func(k string, p config.Pin) (gpio.PinIO, error) {
		pin, err := hw.Pin(p)
		if err != nil {
			return nil, fmt.Errorf("%s.stepdir.%s: %w", key, k, err)
		}
		return pin, nil
	}
	var err error
	if out.Step, err = open("step", sd.Step); err != nil {
		return out, err
	}
	if out.Dir, err = open("dir", sd.Dir); err != nil {
		return out, err
	}
	if out.Enable, err = open("enable", sd.Enable); err != nil {
		return out, err
	}
	if out.Limit, err = open("limit", sd.Limit); err != nil {
		return out, err
	}
	out.EnableActiveLow = sd.Enable.ActiveLow
	out.LimitActiveLow = sd.Limit.ActiveLow
	out.LimitPull = pins.Pull(Line(sd.Limit))
	out.DirInvert = sd.Dir.ActiveLow
	return out, nil
}

// Build puts the drivers on top of the wire as cfg describes: each axis on
// its configured driver (Tic, STEP/DIR, or for z a piezo behind a DAC), the
// lamp on a GPIO or a PCA9685 channel, the panel LEDs and buttons on GPIOs.
// Every device that latches faults (and the frame source and loader, when
// they do) is registered in Robot.Faults; Robot.Axes holds only the axes
// that were built (z on a DAC as a hal.FocusAxis).
func Build(cfg *config.Config, hw Wire) (*Robot, error) {
	m := &Robot{Machine: hal.Machine{Loader: hw.Loader, Clock: hw.Clock}, Axes: map[string]hal.Axis{}, Faults: &hal.FaultRegistry{}}
	axes := []struct {
		name string
		a    config.Axis
	}{{"x", cfg.Machine.Axes.X}, {"y", cfg.Machine.Axes.Y}, {"z", cfg.Machine.Axes.Z}}
	var built [3]hal.Axis
	stage := ticaxis.NewGroup() // X and Y move together
	for i, ax := range axes {
		key := "machine.axes." + ax.name
		switch ax.a.Driver {
		case "tic", "":
			o := TicOptions(ax.name, ax.a)
			if ax.name != "z" {
				o.Group = stage
			}
			a, err := ticaxis.New(hw.Bus, hw.Clock, o)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			built[i] = a
			m.Faults.Add(a)
		case "stepdir":
			p, err := stepDirPins(hw, key, ax.a.StepDir)
			if err != nil {
				return nil, err
			}
			a, err := stepdir.New(p, hw.Clock, StepDirOptions(ax.name, ax.a))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			built[i] = a
			m.Faults.Add(a)
		case "dac":
			if ax.name != "z" {
				return nil, fmt.Errorf("%s.driver: dac is only for z", key)
			}
			f, err := dacfocus.New(hw.Bus, hw.Clock, DACOptions(ax.name, ax.a))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			m.Focus = f
			m.Axes[ax.name] = &hal.FocusAxis{Focus: f}
			m.Faults.Add(f)
		default:
			return nil, fmt.Errorf("%s.driver: unknown driver %q", key, ax.a.Driver)
		}
	}
	for i, ax := range axes {
		if built[i] != nil {
			m.Axes[ax.name] = built[i]
		}
	}
	m.Stage = hal.Stage{X: built[0], Y: built[1]}
	if built[2] != nil {
		m.Focus = hal.AxisFocus{Axis: built[2]}
	}
	frames := hw.Frames
	if tp := cfg.Machine.Camera.Trigger; !tp.IsZero() {
		pin, err := hw.Pin(tp)
		if err != nil {
			return nil, fmt.Errorf("machine.camera.trigger: %w", err)
		}
		tl, err := camera.NewTriggerLine(pin, camera.TriggerOptions{
			ActiveLow:   tp.ActiveLow,
			Pulse:       cfg.Machine.Camera.TriggerPulse.D(),
			MinInterval: time.Duration(float64(time.Second) / cfg.Machine.Camera.FrameRate),
			Clock:       hw.Clock,
		})
		if err != nil {
			return nil, fmt.Errorf("machine.camera.trigger: %w", err)
		}
		// Below the camera's recovery when there is one, so that a read
		// retried after a reopen triggers again.
		if r, ok := frames.(interface{ SetTrigger(camera.Trigger) }); ok {
			r.SetTrigger(tl)
		} else {
			frames = camera.NewTriggered(frames, tl)
		}
		m.Trigger = tl
	}
	m.Camera = camera.New(frames, cfg.Machine.Camera.PixelSize.D())
	if l, ok := hw.Frames.(hal.Latching); ok {
		m.Faults.Add(l)
	}
	if l, ok := hw.Loader.(hal.Latching); ok {
		m.Faults.Add(l)
	}
	if hw.Overview != nil {
		m.Overview = camera.New(hw.Overview, cfg.Scan.OverviewPixelSize.D(), camera.WithName("overview"))
		if l, ok := hw.Overview.(hal.Latching); ok {
			m.Faults.Add(l)
		}
	}

	lc := cfg.Machine.Light
	switch lc.Driver {
	case "pca9685":
		l, err := light.NewPCA9685(hw.Bus, light.PCA9685Options{
			Name:      "light",
			Address:   lc.PCA9685.Address,
			Channel:   lc.PCA9685.Channel,
			Frequency: lc.PCA9685.Frequency.F(),
		})
		if err != nil {
			return nil, fmt.Errorf("machine.light.pca9685: %w", err)
		}
		m.Light = l
		m.Faults.Add(l)
	default:
		if p := lc.Pin; !p.IsZero() {
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
	}
	if lc.StrobePulse > 0 && m.Light != nil {
		st, err := light.NewStrobe(m.Light, hw.Clock)
		if err != nil {
			return nil, fmt.Errorf("machine.light.strobe_pulse: %w", err)
		}
		m.Light = st
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
	if m.Buttons, err = newButtons(cfg, hw.Pin); err != nil {
		return nil, err
	}
	return m, nil
}
