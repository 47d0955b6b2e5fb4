package main

import (
	"context"
	"errors"
	"fmt"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/loader"
	"papscan/hal/machine"
	"papscan/hal/panel"
	"papscan/hal/pins"
	"papscan/scan"
)

func runRun(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "run", "run --config FILE",
		"Run the agent on the robot's real hardware: Tic motion controllers on I²C, the V4L2 camera,\n"+
			"the technician panel on GPIO. Each press of the start button scans the slide on the stage;\n"+
			"results are stored in agent.state_dir and published to agent.mqtt.brokers.\n"+
			"Stops cleanly on SIGTERM or SIGINT.")
	cfgPath := fs.String("config", "", "configuration file (required)")
	once := fs.Bool("once", false, "scan one slide at once, without waiting for the start button, then exit")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(e.stderr, "papscan run: --config FILE is required")
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(e.stderr, "%v\n", err)
		return exitConfig
	}
	log := newLogger(e.stderr, cfg.Agent.LogLevel)
	if cfg.Machine.I2CBus == "sim" || cfg.Machine.Camera.Device == "sim" {
		fmt.Fprintln(e.stderr, "papscan run: machine.i2c_bus / machine.camera.device is \"sim\": use `papscan sim` for the simulated robot")
		return exitConfig
	}
	if len(cfg.Agent.MQTT.Brokers) == 0 {
		fmt.Fprintln(e.stderr, "agent.mqtt.brokers: the robot needs at least one broker URL")
		return exitConfig
	}
	model, err := loadModel()
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan run: classifier model: %v\n", err)
		return exitFailure
	}

	state, err := host.Init()
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan run: periph host: %v\n", err)
		return exitFault
	}
	for _, f := range state.Failed { // a failed driver does not fail Init
		log.Warn("periph driver failed to load", "driver", f.D.String(), "err", f.Err)
	}
	bus, err := i2creg.Open(cfg.Machine.I2CBus)
	if err != nil {
		fmt.Fprintf(e.stderr, "machine.i2c_bus: %s: %v\n", cfg.Machine.I2CBus, err)
		return exitFault
	}
	defer bus.Close()
	frames, err := openCamera(ctx, cfg.Machine.Camera, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "machine.camera.device: %v\n", err)
		return exitFault
	}
	defer frames.Close()
	hw := machine.Wire{Bus: bus, Frames: frames, Pin: pins.Open, Loader: &loader.Manual{}, Clock: hal.SystemClock{}}
	mach, err := machine.Build(cfg, hw)
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan run: %v\n", err)
		return exitFault
	}
	pnl := mach.Panel
	defer startPanel(ctx, pnl)()

	lk, err := openLink(ctx, cfg, cfg.Agent.MQTT.Brokers, log)
	if err != nil {
		pnl.Show(panel.StateFault)
		fmt.Fprintf(e.stderr, "papscan run: telemetry: %v\n", err)
		return exitCodeFor(err)
	}
	defer lk.close(ctx)
	sc, err := scan.New(mach.Machine, scanOptions(cfg, model, log))
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan run: %v\n", err)
		return exitConfig
	}
	start, err := pins.Open(cfg.Machine.Panel.ButtonStart)
	if err != nil {
		fmt.Fprintf(e.stderr, "machine.panel.button_start: %v\n", err)
		return exitFault
	}
	if err := start.In(pins.Pull(cfg.Machine.Panel.ButtonStart), gpio.BothEdges); err != nil {
		fmt.Fprintf(e.stderr, "machine.panel.button_start: %v\n", err)
		return exitFault
	}
	d := &deliverer{stateDir: cfg.Agent.StateDir, link: lk, log: log}
	for n := 1; ; n++ {
		pnl.Show(panel.StateReady)
		if !*once {
			log.Info("ready: place a slide and press start")
			if _, err := panel.WaitPress(ctx, start, cfg.Machine.Panel.ButtonStart.ActiveLow,
				cfg.Machine.Panel.Debounce.D(), cfg.Machine.Panel.LongPress.D()); err != nil {
				return exitOK // stopped
			}
		}
		if err := lk.admit(ctx); err != nil { // storage full: take no slide
			pnl.Show(panel.StateFault)
			return exitCodeFor(err)
		}
		pnl.Show(panel.StateScanning)
		lk.setStage("scanning")
		err := sc.RunMagazine(ctx, fmt.Sprintf("MANUAL%04d", n), func(r *scan.Report) error { return d.deliver(ctx, r) })
		if err != nil {
			_ = sc.Halt()
			if errors.Is(err, context.Canceled) {
				return exitOK
			}
			pnl.Show(panel.StateFault)
			log.Error("fault: motion halted", "err", err)
			return exitCodeFor(err)
		}
		pnl.Show(panel.StateDone)
		if *once {
			return exitOK
		}
	}
}

func fourcc(s string) uint32 {
	if s == "RGB3" {
		return hal.PixFmtRGB3
	}
	return hal.PixFmtYUYV
}
