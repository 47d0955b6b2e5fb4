package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"papscan/classify"
	"papscan/delivery"
	config "papscan/firmware-config"
	"papscan/hal/panel"
	"papscan/hal/sim/slide"
	"papscan/robot"
	"papscan/scan"
	"papscan/telemetry/broker"
)

func runSim(ctx context.Context, e env, args []string) int {
	fs := newFlags(e, "sim", "sim [flags]",
		"Run the whole robot on simulated hardware: a magazine of virtual slides (built from the real\n"+
			"CRIC Pap smear fields when ../shared/data is present, synthetic cells otherwise), the Tic\n"+
			"motion controllers emulated on a simulated I²C bus, a camera rendering the slide at the\n"+
			"true stage position, and the real drivers, scanner and classifier on top. Each slide's\n"+
			"result is stored in the state directory and published over MQTT; with no broker\n"+
			"configured an embedded one is started on loopback.")
	cfgPath := fs.String("config", "", "configuration file (default: the built-in sim profile)")
	slides := fs.Int("slides", 0, "number of slides in the magazine (default: sim.slides)")
	stateDir := fs.String("state-dir", "", "where results are stored (default: agent.state_dir)")
	brokerURL := fs.String("broker", "", "MQTT broker URL (default: agent.mqtt.brokers, else an embedded broker)")
	dataDir := fs.String("data", "", "shared data directory with cric/ (default: sim.data_dir, else ../shared/data if present)")
	seed := fs.Int64("seed", 0, "simulation seed (default: sim.seed)")
	synthetic := fs.Bool("synthetic", false, "use synthetic cells even when the real data is present")
	jsonOut := fs.Bool("json", false, "print one JSON object per slide on stdout instead of the table")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default: agent.log_level)")
	serve := fs.Bool("serve", false, "keep the review station (papscan-fleet local) running after the magazine, until Ctrl-C")
	resume := fs.Bool("resume", false, "keep the magazine's progress journal from an interrupted run (same seed): report the\ninterrupted slide for rerun, skip the slides done and scan the rest")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "papscan sim: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}

	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			fmt.Fprintf(e.stderr, "%v\n", err)
			return exitConfig
		}
	}
	slidesSet := false
	fs.Visit(func(f *flag.Flag) { slidesSet = slidesSet || f.Name == "slides" })
	if slidesSet && *slides < 1 {
		fmt.Fprintf(e.stderr, "papscan sim: --slides %d: the magazine needs at least one slide\n", *slides)
		return exitUsage
	}
	if *slides > 0 {
		cfg.Sim.Slides = *slides
	}
	if *stateDir != "" {
		cfg.Agent.StateDir = *stateDir
	}
	if *brokerURL != "" {
		cfg.Agent.MQTT.Brokers = []string{*brokerURL}
	}
	if *dataDir != "" {
		cfg.Sim.DataDir = *dataDir
	}
	if *seed != 0 {
		cfg.Sim.Seed = *seed
	}
	if *logLevel != "" {
		cfg.Agent.LogLevel = *logLevel
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(e.stderr, "%v\n", err)
		return exitConfig
	}
	// Logs and the progress bar share the terminal through one writer.
	term := newTermWriter(e.stderr, isTerminal(e.stderr))
	defer term.Flush()
	log := newLogger(term, cfg.Agent.LogLevel)
	return simulate(ctx, e, cfg, simOptions{synthetic: *synthetic, json: *jsonOut, resume: *resume, serve: *serve, term: term}, log)
}

type simOptions struct {
	synthetic bool
	json      bool
	resume    bool
	serve     bool // keep the child review station up until ctx ends
	// term is stderr shared by the logger and the progress bar; nil: a
	// new one on e.stderr.
	term *termWriter
}

func simulate(ctx context.Context, e env, cfg *config.Config, so simOptions, log *slog.Logger) int {
	if so.term == nil {
		so.term = newTermWriter(e.stderr, isTerminal(e.stderr))
	}
	model, err := loadModel()
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan sim: classifier model: %v\n", err)
		return exitFailure
	}
	const magazine = "M0001"
	if !so.resume {
		// A new simulated world holds a new magazine: forget the last run's.
		if err := os.Remove(filepath.Join(cfg.Agent.StateDir, "progress", magazine+".json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(e.stderr, "papscan sim: %v\n", err)
			return exitFailure
		}
	}
	kind := slide.SurePath
	if cfg.Sim.SpotKind == "thinprep" {
		kind = slide.ThinPrep
	}
	// The same simulated robot as `papscan agent --sim`: the camera runs
	// behind the real robot's recovering wrapper (a camera lost mid-scan
	// is reopened with backoff on the virtual clock, then becomes a
	// camera fault).
	mach, err := robot.OpenSim(ctx, cfg, robot.SimOptions{Options: robot.Options{Log: log}, Magazine: magazine, Synthetic: so.synthetic})
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan sim: %v\n", err)
		return exitFault
	}
	defer mach.Close()
	w, slides, source := mach.World, mach.Slides, mach.Source
	pnl := mach.Panel
	defer startPanel(ctx, pnl)()

	out := e.stdout
	if so.json {
		out = e.stderr // keep stdout for the JSON lines
	}
	fmt.Fprintf(out, "papscan %s — simulated robot %q: %d slides (%s, %s spot), model %s\n",
		version, cfg.Agent.RobotID, len(slides), source, kind, model.Version)

	brokers, linkCfg := cfg.Agent.MQTT.Brokers, cfg
	var review *reviewSide
	ackWait := simAckWait
	if len(brokers) == 0 {
		ackWait = simOwnFleetAckWait
		// The whole fleet side as a child process (the robot binary links
		// no database or web code): `papscan-fleet local` with its
		// embedded broker, receiver, SQLite and review station. It
		// outlives ctx: after Ctrl-C the results stored so far are still
		// delivered before it stops.
		if bin, ferr := findFleetBinary(); ferr == nil {
			rs, withAckKey, err := startReviewSide(context.WithoutCancel(ctx), bin, cfg, childStderr(e.stderr, so.term), log)
			if err != nil {
				fmt.Fprintf(e.stderr, "papscan sim: review station: %v; using the in-process receiver instead\n", err)
			} else {
				defer rs.Stop()
				review, brokers, linkCfg = rs, []string{rs.BrokerURL}, withAckKey(cfg)
				fmt.Fprintf(out, "fleet: %s local: MQTT broker %s, receiver (acks signed with this run's key), database %s, review station %s\n",
					bin, rs.BrokerURL, rs.DB, rs.URL)
			}
		}
	}
	if len(brokers) == 0 {
		// The broker and the fleet receiver outlive ctx (see above).
		b, err := broker.Start(context.WithoutCancel(ctx), "127.0.0.1:0", log)
		if err != nil {
			fmt.Fprintf(e.stderr, "papscan sim: embedded MQTT broker: %v\n", err)
			return exitFailure
		}
		defer b.Close()
		brokers = []string{b.URL()}
		fmt.Fprintf(out, "MQTT: embedded broker at %s; watch it with:\n  mosquitto_sub -h 127.0.0.1 -p %s -t '%s/#' -v\n",
			b.URL(), b.Addr()[len("127.0.0.1:"):], cfg.EffectiveTopicPrefix())
		// The reference fleet receiver, in process: it stores each
		// result, then acks it, which empties the robot's outbox.
		stopFleet, withAckKey, err := startSimFleet(context.WithoutCancel(ctx), cfg, b.URL(), out, log)
		if err != nil {
			fmt.Fprintf(e.stderr, "papscan sim: fleet receiver: %v\n", err)
			return exitFailure
		}
		defer stopFleet()
		linkCfg = withAckKey(cfg)
		fmt.Fprintf(out, "fleet: no review station (papscan-fleet not found beside papscan or in PATH); for one: make build (bin/papscan-fleet) or go install ./cmd/papscan-fleet\n")
	}
	lk, err := delivery.Open(ctx, linkCfg, brokers, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan sim: telemetry: %v\n", err)
		return exitFailure
	}
	defer lk.Close(ctx)
	tm := lk.Telemetry()

	opts := scanOptions(cfg, model, log)
	opts.FocusTruth = w.FocusTruth // measures the focus error; the scanner never steers by it
	bar := newProgressBar(so.term)
	lossArmed := false
	opts.Progress = func(p scan.Progress) {
		// sim.camera_loss_slot: unplug the camera half way through that
		// slide's tiles (the slide is still named by its slot at load).
		if cfg.Sim.CameraLossSlot >= 0 && p.Phase == "load" {
			lossArmed = p.SlideID == scan.SlideID(magazine, cfg.Sim.CameraLossSlot)
		}
		if lossArmed && p.Phase == "scan" && p.Total > 0 && p.Done == p.Total/2 {
			lossArmed = false
			w.UnplugCamera(0) // for good: reopens fail, a camera fault follows
		}
		bar.update(p)
		if p.Phase == "load" {
			// Homing and the self-check are done: health says
			// starting until the first slide is loaded.
			lk.SetStage(delivery.StageScanning)
		}
		if p.Phase == "scan" {
			_ = tm.PublishProgress(p.SlideID, p.Done, p.Total)
		}
	}
	d := &delivery.Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}
	var reports []*scan.Report
	paths := map[string]string{} // result ID -> result.json
	d.Stored = func(r *scan.Report, files scan.Files) {
		reports, paths[r.ResultID] = append(reports, r), files.Result
		if so.json {
			fmt.Fprintf(e.stdout, "%s\n", simJSONLine(r))
		}
	}
	// No slide is taken when its result could not be stored.
	opts.BeforeSlide = func(ctx context.Context, _ int) error { return d.Admit(ctx) }
	// A self-test's line shows when it happens, not after the magazine.
	opts.SelfTestDone = func(when string, st *scan.SelfTestResult) {
		so.term.endBar()
		printSelfTest(out, magazine, when, st)
	}
	sc, err := scan.New(mach.Machine, opts)
	if err != nil {
		fmt.Fprintf(e.stderr, "papscan sim: %v\n", err)
		return exitConfig
	}
	pnl.Show(panel.StateScanning)
	mres, runErr := sc.Magazine(ctx, magazine, func(r *scan.Report) error { return d.Deliver(ctx, r) })
	so.term.endBar() // an interrupted slide's bar stays as a line
	printMagazine(out, mres)
	interrupted := ctx.Err() != nil
	if runErr == nil {
		lk.Event("magazine_done", map[string]any{"magazine": magazine, "slides": len(reports)})
	}
	switch {
	case interrupted:
		pnl.Show(panel.StateAttention)
		lk.SetStage(delivery.StageAttention)
		_ = sc.Halt()
	case runErr != nil:
		pnl.Show(panel.StateFault)
		lk.SetStage(delivery.StageFault)
		_ = sc.Halt()
		log.Error("magazine stopped", "err", runErr)
	default:
		pnl.Show(panel.StateDone)
		lk.SetStage(simDoneStage(reports))
	}
	if !so.json {
		fmt.Fprintln(out)
		printTable(out, reports, paths)
		fmt.Fprintf(out, "\n%d slides, %.0f s machine time, results in %s\n", len(reports), w.Clock.Elapsed().Seconds(), cfg.Agent.StateDir)
	}
	if left := lk.Drain(context.WithoutCancel(ctx), ackWait); left > 0 {
		fmt.Fprintf(e.stderr, "%d results/events await the fleet's ack (kept in %s; sent again at the next start)\n",
			left, lk.Outbox().Path())
	} else {
		fmt.Fprintf(e.stderr, "outbox empty: the fleet acknowledged every result and image\n")
	}
	if review != nil {
		review.printReview(out, len(reports), so.serve && !interrupted)
		if so.serve && !interrupted {
			<-ctx.Done()
			return exitOK
		}
	}
	if interrupted {
		fmt.Fprintf(e.stderr, "papscan sim: interrupted: %d results stored in %s (an interrupted slide is INCOMPLETE, for rerun)\n", len(reports), cfg.Agent.StateDir)
		return exitInterrupted
	}
	if runErr != nil {
		fmt.Fprintf(e.stderr, "papscan sim: %v\n", runErr)
		return exitCodeFor(runErr)
	}
	return exitOK
}

// simDoneStage is the health stage after a magazine that ran to its end:
// attention when a slide needs a rerun (INCOMPLETE), done otherwise (the
// agent's rule for its done/attention states).
func simDoneStage(reports []*scan.Report) string {
	for _, r := range reports {
		if r.Verdict == classify.VerdictIncomplete {
			return delivery.StageAttention
		}
	}
	return delivery.StageDone
}

// childStderr is where the fleet child's log goes: through the shared
// terminal writer on a terminal (its lines stay off the progress bar),
// straight to stderr otherwise (a file needs no copying goroutine).
func childStderr(stderr io.Writer, term *termWriter) io.Writer {
	if term.tty {
		return term
	}
	return stderr
}
