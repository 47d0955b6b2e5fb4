package main

import (
	"fmt"
	"log/slog"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c"
	"periph.io/x/devices/v3/tic"

	"papscan/classify"
	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/light"
	"papscan/hal/panel"
	"papscan/hal/ticaxis"
	"papscan/scan"
)

// hardware is what the robot (or the simulation) provides at the wire.
type hardware struct {
	bus    i2c.Bus
	frames hal.FrameSource
	pin    func(config.Pin) (gpio.PinIO, error)
	loader hal.SlideLoader
	clock  hal.Clock
}

// stepModes maps microsteps per full step to the Tic's step-mode code.
var stepModes = map[int]tic.StepMode{
	1: tic.StepModeFull, 2: tic.StepModeHalf, 4: tic.StepModeMicrostep4, 8: tic.StepModeMicrostep8,
	16: tic.StepModeMicrostep16, 32: tic.StepModeMicrostep32, 64: tic.StepModeMicrostep64,
	128: tic.StepModeMicrostep128, 256: tic.StepModeMicrostep256,
}

func ticOptions(name string, a config.Axis) ticaxis.Options {
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
	}
}

// buildMachine puts the drivers on top of the hardware as cfg describes.
func buildMachine(cfg *config.Config, hw hardware) (scan.Machine, *panel.Panel, error) {
	m := scan.Machine{Loader: hw.loader, Clock: hw.clock}
	axes := []struct {
		name string
		a    config.Axis
	}{{"x", cfg.Machine.Axes.X}, {"y", cfg.Machine.Axes.Y}, {"z", cfg.Machine.Axes.Z}}
	var built [3]*ticaxis.Axis
	for i, ax := range axes {
		a, err := ticaxis.New(hw.bus, hw.clock, ticOptions(ax.name, ax.a))
		if err != nil {
			return m, nil, fmt.Errorf("machine.axes.%s: %w", ax.name, err)
		}
		built[i] = a
	}
	m.Stage = hal.Stage{X: built[0], Y: built[1]}
	m.Focus = hal.AxisFocus{Axis: built[2]}
	m.Camera = camera.New(hw.frames, cfg.Machine.Camera.PixelSize.D())

	if p := cfg.Machine.Light.Pin; !p.IsZero() {
		pin, err := hw.pin(p)
		if err != nil {
			return m, nil, fmt.Errorf("machine.light.pin: %w", err)
		}
		l, err := light.NewGPIO(p.String(), pin, p.ActiveLow)
		if err != nil {
			return m, nil, err
		}
		m.Light = l
	}
	pc := cfg.Machine.Panel
	led := func(key string, p config.Pin) (*panel.LED, error) {
		pin, err := hw.pin(p)
		if err != nil {
			return nil, fmt.Errorf("machine.panel.%s: %w", key, err)
		}
		return panel.NewLED(key, pin, p.ActiveLow)
	}
	var pnl panel.Panel
	var err error
	if pnl.Ready, err = led("led_ready", pc.LEDReady); err != nil {
		return m, nil, err
	}
	if pnl.Busy, err = led("led_busy", pc.LEDBusy); err != nil {
		return m, nil, err
	}
	if pnl.Fault, err = led("led_fault", pc.LEDFault); err != nil {
		return m, nil, err
	}
	return m, &pnl, nil
}

// scanOptions maps the configuration onto the scanner's options.
func scanOptions(cfg *config.Config, model *classify.Model, log *slog.Logger) scan.Options {
	s, c := cfg.Scan, cfg.Classify
	det := classify.DetectOptions{
		PixelUM:    cfg.Machine.Camera.PixelSize.UM(),
		MinAreaUM2: c.MinNucleusArea,
		MaxAreaUM2: c.MaxNucleusArea,
	}
	return scan.Options{
		RobotID:      cfg.Agent.RobotID,
		SpotCenter:   scan.Point{X: s.SpotCenterX.UM(), Y: s.SpotCenterY.UM()},
		SpotDiameter: s.SpotDiameter.UM(),
		TileOverlap:  s.TileOverlap,
		FocusRange:   s.FocusRange.UM(),
		FocusStep:    s.FocusStep.UM(),
		FocusPoints:  s.FocusPoints,
		ZNominal:     s.ZNominal.UM(),
		Detect:       det,
		Model:        model,
		Thresholds: classify.Thresholds{
			HighGrade:         c.HighGradeThreshold,
			LowGrade:          c.LowGradeThreshold,
			MinHighGradeCells: c.MinHighGradeCells,
			MinLowGradeCells:  c.MinLowGradeCells,
			MinSquamousCells:  c.MinSquamousCells,
			GallerySize:       c.GallerySize,
		},
		Logger: log,
	}
}
