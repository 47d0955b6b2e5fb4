package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"papscan/agent"
	"papscan/cmd/papscan/internal/logx"
	"papscan/cmd/papscan/internal/sdnotify"
	"papscan/delivery"
	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/panel"
	"papscan/remote"
	"papscan/robot"
	"papscan/scan"
	"papscan/telemetry"
	"papscan/telemetry/broker"
)

var _ agent.Notifier = (*sdnotify.Notifier)(nil)

// defaultSocket is the agent's status socket under systemd's
// RuntimeDirectory=papscan.
const defaultSocket = "/run/papscan/agent.sock"

func socketPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if s := os.Getenv("PAPSCAN_SOCKET"); s != "" {
		return s
	}
	return defaultSocket
}

func runAgent(ctx context.Context, e env, args []string) int {
	return agentMain(ctx, e, "agent", args)
}

// agentMain is `papscan agent`, and `papscan run` (name "run"), its alias
// for the real robot: one wiring for the hardware, the outbox, the fleet
// commands and the service manager.
func agentMain(ctx context.Context, e env, name string, args []string) int {
	synopsis := "agent --config FILE [--sim] [flags]"
	if name == "run" {
		synopsis = "run --config FILE [flags]   (alias of `papscan agent`, the systemd service)"
	}
	fs := newFlags(e, name, synopsis,
		"Run papscan as the robot's long-running service (systemd Type=notify, see deploy/): self-check,\n"+
			"then READY; the panel's buttons start, pause and abort magazines; faults latch and show their\n"+
			"code on the red LED; `papscan status` reads the agent's state from --socket. SIGTERM stops\n"+
			"cleanly (the slide on the stage is marked for rerun, the stage parked, results flushed);\n"+
			"SIGHUP reloads a valid configuration. With --sim the same agent drives the simulated robot.")
	cfgPath := fs.String("config", "", "configuration file (required on the robot; --sim defaults to the sim profile)")
	sim := fs.Bool("sim", false, "drive the simulated robot instead of the hardware")
	sock := fs.String("socket", "", "status socket (default $PAPSCAN_SOCKET, else "+defaultSocket+")")
	stateDir := fs.String("state-dir", "", "state directory (default agent.state_dir; systemd's $STATE_DIRECTORY wins over the config)")
	autostart := fs.Bool("autostart", false, "start scanning the magazine as soon as the self-check passed")
	embedded := fs.String("embedded-broker", "127.0.0.1:0", "--sim without agent.mqtt.brokers: the embedded MQTT broker's listen address")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if *cfgPath == "" && !*sim {
		fmt.Fprintln(e.stderr, "papscan "+name+": --config FILE is required (or --sim)")
		return exitUsage
	}
	load := func() (*config.Config, error) {
		if *cfgPath == "" {
			return config.Profile("sim")
		}
		return config.Load(*cfgPath)
	}
	override := func(cfg *config.Config) {
		if d := os.Getenv("STATE_DIRECTORY"); d != "" {
			cfg.Agent.StateDir = strings.Split(d, ":")[0]
		}
		if *stateDir != "" {
			cfg.Agent.StateDir = *stateDir
		}
	}
	cfg, err := load()
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan "+name+": configuration invalid: %v\n", err)
		return exitConfig
	}
	override(cfg)
	if !*sim && (cfg.Machine.I2CBus == "sim" || cfg.Machine.Camera.Device == "sim") {
		fmt.Fprintln(e.stderr, "papscan "+name+": machine.i2c_bus / machine.camera.device is \"sim\": add --sim for the simulated robot")
		return exitConfig
	}
	if !*sim && len(cfg.Agent.MQTT.Brokers) == 0 {
		fmt.Fprintln(e.stderr, "papscan "+name+": agent.mqtt.brokers: the robot needs at least one broker URL")
		return exitConfig
	}
	if err := os.MkdirAll(cfg.Agent.StateDir, 0o750); err != nil {
		fmt.Fprintf(e.stderr, "papscan "+name+": agent.state_dir: %v\n", err)
		return exitFailure
	}
	notifier, err := sdnotify.FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan "+name+": %v\n", err)
		return exitFailure
	}
	defer notifier.Close()
	wd, _, err := sdnotify.WatchdogInterval(os.Getenv, os.Getpid())
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan "+name+": %v\n", err)
		return exitFailure
	}

	level := new(slog.LevelVar)
	_ = level.UnmarshalText([]byte(cfg.Agent.LogLevel))
	log := logx.New(e.stderr, level, 5, 10*time.Second, nil)
	health := agent.NewHealth(nil)
	_ = notifier.Status("starting: opening hardware")

	model, err := loadModel()
	if err != nil {
		log.Error("classifier model", "err", err)
		return exitFailure
	}
	var rb *robot.Robot
	ro := robot.Options{Clock: health.Clock, Log: log}
	if *sim {
		rb, err = robot.OpenSim(ctx, cfg, robot.SimOptions{Options: ro})
	} else {
		rb, err = robot.Open(ctx, cfg, ro)
	}
	if err != nil {
		log.Error("hardware", "err", err)
		fmt.Fprintf(e.stderr, "papscan "+name+": %v\n", err)
		return exitFault
	}
	defer rb.Close()
	mach := rb

	pctx, stopPanel := context.WithCancel(context.WithoutCancel(ctx))
	var bg sync.WaitGroup
	defer func() { stopPanel(); bg.Wait() }()
	bg.Add(1)
	go func() { defer bg.Done(); _ = mach.Panel.Run(pctx) }()
	_ = mach.Panel.Show(panel.StateStarting)
	var presses <-chan hal.Press
	if rb.Buttons != nil {
		bg.Add(1)
		go func() { defer bg.Done(); _ = rb.Buttons.Run(pctx) }()
		presses = rb.Buttons.Presses()
	}

	brokers, linkCfg := cfg.Agent.MQTT.Brokers, cfg
	if len(brokers) == 0 { // --sim only, checked above
		// Outlives ctx: the stop sequence still flushes results to it.
		b, err := broker.Start(context.WithoutCancel(ctx), *embedded, log)
		if err != nil {
			log.Error("embedded MQTT broker", "err", err)
			return exitFailure
		}
		defer b.Close()
		brokers = []string{b.URL()}
		log.Info("embedded MQTT broker", "url", b.URL())
		// The reference fleet receiver acks what the simulated robot
		// sends, as `papscan sim` does, so its outbox drains.
		stopFleet, withAckKey, err := startSimFleet(context.WithoutCancel(ctx), cfg, b.URL(), e.stderr, log)
		if err != nil {
			log.Error("simulated fleet receiver", "err", err)
			return exitFailure
		}
		defer stopFleet()
		linkCfg = withAckKey(cfg)
	}
	// The outbox comes first: READY means results can be stored. The
	// broker may be down (the robot works offline; the sender delivers
	// when it comes back); the panel shows the network-down overlay.
	_ = notifier.Status("starting: opening the outbox")
	cmds, err := remote.Open(cfg, version, log)
	if err != nil {
		log.Error("fleet commands", "err", err)
		fmt.Fprintf(e.stderr, "papscan "+name+": %v\n", err)
		if errors.As(err, new(delivery.ConfigError)) {
			return exitConfig
		}
		return exitFailure
	}
	lk, err := delivery.OpenWith(ctx, linkCfg, brokers, log, func(o *telemetry.Options) {
		o.Background = true
		o.Subscriptions = append(o.Subscriptions, cmds.Subscription())
	})
	if err != nil {
		cmds.Stop()
		_ = mach.Panel.ShowView(panel.View{State: panel.StateFault, Fault: hal.FaultStorage})
		log.Error("outbox / telemetry", "err", err)
		fmt.Fprintf(e.stderr, "papscan "+name+": %v\n", err)
		return exitFailure
	}
	defer lk.Close(ctx)
	tm := lk.Telemetry()
	dl := &delivery.Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var press func(string, bool) error
	if rb.World != nil {
		press = func(b string, long bool) error { return rb.Press(cfg, b, long) }
	}
	opts := agent.Options{
		Config:     cfg,
		ConfigPath: *cfgPath,
		Reload: func() (*config.Config, error) {
			c, err := load()
			if err == nil {
				override(c)
			}
			return c, err
		},
		Hup: hup,
		NewScanner: func(c *config.Config, h agent.ScanHooks) (agent.Scanner, error) {
			o := scanOptions(c, model, log) // StateDir: the magazine journals
			o.Progress = func(p scan.Progress) {
				h.Progress(p)
				if p.Phase == "scan" {
					_ = tm.PublishProgress(p.SlideID, p.Done, p.Total)
				}
			}
			o.BeforeSlide = h.BeforeSlide
			return scan.New(mach.Machine, o)
		},
		Machine:  mach.Machine,
		Axes:     rb.Axes,
		Faults:   rb.Faults,
		Delivery: dl,
		Panel:    mach.Panel,
		Buttons:  presses,
		Notifier: notifier,
		Watchdog: wd,
		Socket:   socketPath(*sock),
		Log:      log,
		Level:    level,
		Health:   health,
		// Health goes to the fleet on every state change, not only on
		// the health interval.
		StateChanged: func(s agent.State) { lk.SetStage(s.String()) },
		Autostart:    *autostart,
		Press:        press,
		Hooks:        testHooks(log),
		Magazine: func(n int) string {
			if *sim {
				return fmt.Sprintf("M%04d", n)
			}
			return fmt.Sprintf("%s-%s-%02d", cfg.Agent.RobotID, time.Now().UTC().Format("20060102T1504"), n)
		},
	}
	ag, err := agent.New(opts)
	if err != nil {
		cmds.Stop()
		log.Error("agent", "err", err)
		return exitFailure
	}
	lk.SetHealth(remote.Health(ag))
	cmds.Start(ag, lk)
	err = ag.Run(ctx)
	cmds.Stop() // before the link closes: the last replies and audits go out
	if err != nil {
		log.Error("agent", "err", err)
		return exitFailure
	}
	return exitOK
}

// testHooks arms the daemon's test-only fault injections from
// PAPSCAN_TESTHOOK_* variables (the subprocess tests set them; the unit
// file never does). Each one armed is logged loudly.
func testHooks(log *slog.Logger) *agent.TestHooks {
	var h agent.TestHooks
	armed := false
	if os.Getenv("PAPSCAN_TESTHOOK_STALL") == "1" {
		// SIGUSR1 stalls the control loop.
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGUSR1)
		stall := make(chan struct{})
		go func() { <-c; close(stall) }()
		h.Stall, armed = stall, true
	}
	if msg := os.Getenv("PAPSCAN_TESTHOOK_SELFTEST_FAIL"); msg != "" {
		h.SelfTestError, armed = errors.New(msg), true
	}
	if !armed {
		return nil
	}
	log.Warn("TEST HOOKS ARMED: this agent injects faults on purpose", "stall", h.Stall != nil, "selftest_fail", h.SelfTestError != nil)
	return &h
}
