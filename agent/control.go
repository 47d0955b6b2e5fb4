package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
)

// Buttons and what they do. The README's technician table says the same.
const (
	ButtonStart = "start"
	ButtonAbort = "abort"
	ButtonAck   = "ack"
)

// onPress turns a button press into an action (loop only).
//
//	start short  ready/done/attention: scan the magazine; scanning: pause
//	             after this slide; paused: resume
//	start long   idle: run the self-check
//	abort short  done/attention: dismiss (back to ready); scanning: hint
//	abort long   scanning/paused: abort (slide marked for rerun, stage parked)
//	ack short    fault: clear the fault and re-home; done/attention: dismiss
//	ack long     idle: re-home
//	ack+start long (both held)  idle: park the stage for service
func (a *Agent) onPress(ctx context.Context, p hal.Press) {
	a.log.Info("button", "button", p.Button, "long", p.Long, "state", a.state.String())
	idle := a.job == "" && a.state != StateFault && a.state != StateStarting
	switch {
	case p.Button == ButtonStart && !p.Long:
		switch {
		case a.state == StateScanning:
			a.setPaused(true)
			a.setState(StatePaused, "pause requested: stops after the current slide")
		case a.state == StatePaused:
			a.setPaused(false)
			a.setState(StateScanning, "resumed")
		case idle:
			if err := a.startMagazine(ctx, ""); err != nil {
				a.log.Warn("magazine not started", "err", err)
			}
		}
	case p.Button == ButtonStart && p.Long && idle:
		a.startJob(ctx, "selftest", a.homeAndCheck("request"))
		a.setState(StateStarting, "self-check requested")
	case p.Button == ButtonAbort && p.Long && a.job == "magazine":
		a.log.Warn("abort: stopping the magazine; the slide on the stage will need a rerun")
		a.setPaused(false)
		a.jobCancel()
	case p.Button == ButtonAbort && !p.Long && a.job == "magazine":
		a.update(func(s *Status) { s.Message = "hold ABORT for a long press to abort the magazine" })
	case (p.Button == ButtonAbort || p.Button == ButtonAck) && !p.Long && (a.state == StateDone || a.state == StateAttention):
		a.setState(StateReady, "dismissed")
	case p.Button == ButtonAck && !p.Long && a.state == StateFault && a.job == "":
		a.log.Info("fault acknowledged: clearing and re-homing")
		a.startJob(ctx, "selftest", a.homeAndCheck("acknowledge"))
		a.setState(StateStarting, "fault acknowledged; re-homing")
	case p.Button == ButtonAck && p.Long && idle:
		a.startJob(ctx, "rehome", a.rehome)
		a.setState(StateStarting, "re-homing")
	case p.Button == ButtonAck+"+"+ButtonStart && p.Long && idle:
		a.startJob(ctx, "park", a.park)
		a.setState(StateStopping, "parking for service")
	default:
		a.log.Debug("button press ignored in this state", "button", p.Button, "long", p.Long, "state", a.state.String())
	}
}

func (a *Agent) rehome(ctx context.Context) error {
	sc, err := a.newScanner()
	if err != nil {
		return err
	}
	return sc.Home(ctx)
}

// park retracts the focus and moves the stage to its home corner, the
// configured home side of each axis (only axes that are homed).
func (a *Agent) park(ctx context.Context) error {
	side := func(name string, ax hal.Axis) physic.Distance {
		lo, hi := ax.Travel()
		cfg := a.config()
		dir := map[string]string{"x": cfg.Machine.Axes.X.HomeDirection, "y": cfg.Machine.Axes.Y.HomeDirection, "z": cfg.Machine.Axes.Z.HomeDirection}[name]
		if dir == "forward" {
			return hi
		}
		return lo
	}
	for _, group := range [][]string{{"z"}, {"x", "y"}} {
		var started []hal.Axis
		for _, n := range group {
			ax := a.o.Axes[n]
			if ax == nil || !ax.Homed() {
				continue
			}
			if err := ax.Start(side(n, ax)); err != nil {
				return fmt.Errorf("park %s: %w", n, err)
			}
			started = append(started, ax)
		}
		for _, ax := range started {
			if err := ax.Wait(ctx); err != nil {
				return fmt.Errorf("park %s: %w", ax, err)
			}
		}
	}
	return nil
}

// jog moves one axis by delta; refused unless the robot is idle.
func (a *Agent) jog(axis string, delta physic.Distance) (func(context.Context) error, error) {
	ax := a.o.Axes[axis]
	if ax == nil {
		return nil, fmt.Errorf("jog: no axis %q (want x, y or z)", axis)
	}
	return func(ctx context.Context) error {
		pos, err := ax.Position()
		if err != nil {
			return err
		}
		return hal.MoveTo(ctx, ax, pos+delta)
	}, nil
}

// refusal says why a machine job cannot start now, or "".
func (a *Agent) refusal(what string) string {
	switch {
	case a.job == "magazine" || a.state == StateScanning || a.state == StatePaused:
		return fmt.Sprintf("%s refused: scanning (magazine %s); wait for it to finish or abort it (hold ABORT)", what, a.Status().Magazine)
	case a.job != "":
		return fmt.Sprintf("%s refused: busy with %s", what, a.job)
	case a.state == StateFault && what == "jog":
		return "jog refused: a fault is latched; acknowledge it first (ACK)"
	}
	return ""
}

// onRequest serves a socket or fleet command that needs the loop.
func (a *Agent) onRequest(ctx context.Context, req request) {
	fail := func(msg, code string) { req.reply <- Response{Error: msg, Code: code} }
	ok := func(msg string) {
		if msg != "" {
			a.log.Info(msg, "cmd", req.Cmd)
		}
		st := a.Status()
		req.reply <- Response{OK: true, Status: &st}
	}
	switch req.Cmd {
	case "selftest", "jog", "home", "park":
		if why := a.refusal(req.Cmd); why != "" {
			fail(why, CodeBusy)
			return
		}
		var f func(context.Context) error
		switch req.Cmd {
		case "selftest":
			f = a.homeAndCheck("request")
		case "home":
			f = a.rehome
		case "park":
			f = a.park
		case "jog":
			var err error
			if f, err = a.jog(req.Axis, physic.Distance(req.UM*float64(physic.MicroMetre))); err != nil {
				fail(err.Error(), CodeBadRequest)
				return
			}
		}
		a.startJob(ctx, req.Cmd, f)
		a.waiter = req.reply
	case "start":
		if err := a.startMagazine(ctx, req.Magazine); err != nil {
			var r errRefused
			if errors.As(err, &r) {
				fail(r.msg, r.code)
			} else {
				fail("start: "+err.Error(), CodeInvalidState)
			}
			return
		}
		ok("")
	case "pause":
		if a.state != StateScanning || a.job != "magazine" {
			fail(fmt.Sprintf("pause refused: not scanning (state %s)", a.state), CodeInvalidState)
			return
		}
		a.setPaused(true)
		a.setState(StatePaused, "pause requested: stops after the current slide")
		ok("pause requested")
	case "resume":
		if a.state != StatePaused {
			fail(fmt.Sprintf("resume refused: not paused (state %s)", a.state), CodeInvalidState)
			return
		}
		a.setPaused(false)
		a.setState(StateScanning, "resumed")
		ok("resumed")
	case "abort":
		if a.job != "magazine" {
			fail(fmt.Sprintf("abort refused: no magazine running (state %s)", a.state), CodeInvalidState)
			return
		}
		a.log.Warn("abort requested: stopping the magazine; the slide on the stage will need a rerun", "reason", req.Reason)
		a.setPaused(false)
		a.jobCancel()
		ok("")
	case "reload":
		if err := a.reload(); err != nil {
			fail("reload refused: "+err.Error(), CodeBadRequest)
			return
		}
		ok("")
	case "press":
		if a.o.Press == nil {
			fail("press: only on the simulated robot", CodeInvalidState)
			return
		}
		if err := a.o.Press(req.Button, req.Long); err != nil {
			fail(err.Error(), CodeBadRequest)
			return
		}
		req.reply <- Response{OK: true}
	default:
		fail(fmt.Sprintf("unknown command %q", req.Cmd), CodeBadRequest)
	}
}

// Response codes: why a request was refused (Response.Code).
const (
	CodeBusy         = "busy"          // another machine job runs
	CodeInvalidState = "invalid_state" // not possible in this state
	CodeBadRequest   = "bad_request"   // bad arguments, or a configuration that does not validate
)

// errRefused is a request refused in the current state.
type errRefused struct{ msg, code string }

func (e errRefused) Error() string { return e.msg }

// reload re-reads the configuration (SIGHUP). An invalid one is refused and
// the running configuration kept. Changes under machine.* need the
// hardware rebuilt: they are reported and take effect at the next restart;
// the rest (log level, scan, classify) applies from the next magazine.
func (a *Agent) reload() error {
	if a.o.Reload == nil {
		a.log.Warn("SIGHUP: no configuration file to reload")
		return errors.New("no configuration file to reload")
	}
	if a.o.Notifier != nil {
		_ = a.o.Notifier.Reloading()
	}
	defer func() {
		if a.o.Notifier != nil && a.ready {
			_ = a.o.Notifier.Ready()
		}
	}()
	cfg, err := a.o.Reload()
	if err != nil {
		a.log.Error("configuration reload refused; keeping the running configuration", "err", err)
		a.update(func(s *Status) { s.Message = "reload refused: " + err.Error() })
		return err
	}
	if !reflect.DeepEqual(cfg.Machine, a.cfg.Machine) || cfg.Agent.StateDir != a.cfg.Agent.StateDir || !reflect.DeepEqual(cfg.Agent.MQTT, a.cfg.Agent.MQTT) {
		a.log.Warn("configuration reload: machine.*, agent.state_dir and agent.mqtt changes take effect at the next restart")
		cfg.Machine, cfg.Agent.StateDir, cfg.Agent.MQTT = a.cfg.Machine, a.cfg.Agent.StateDir, a.cfg.Agent.MQTT
	}
	if a.o.Level != nil {
		var l slog.Level
		if err := l.UnmarshalText([]byte(cfg.Agent.LogLevel)); err == nil {
			a.o.Level.Set(l)
		}
	}
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
	a.log.Info("configuration reloaded; scan settings apply from the next magazine")
	a.update(func(s *Status) { s.Message = "configuration reloaded" })
	return nil
}

// LogLevel is the current log level ("" when the agent has no LevelVar).
func (a *Agent) LogLevel() string {
	if a.o.Level == nil {
		return ""
	}
	return strings.ToLower(a.o.Level.Level().String())
}

// SetLogLevel changes the log level until the next reload or restart.
func (a *Agent) SetLogLevel(l slog.Level) error {
	if a.o.Level == nil {
		return errors.New("no adjustable log level")
	}
	a.o.Level.Set(l)
	a.log.Info("log level changed", "level", l.String())
	return nil
}

// stop is the shutdown sequence after SIGTERM: STOPPING, stop the job (the
// slide on the stage gets an INCOMPLETE result and a rerun entry), park,
// flush, and leave a clean state file.
func (a *Agent) stop(ctx context.Context) error {
	t0 := a.now()
	close(a.stopping)
	if a.o.Notifier != nil {
		_ = a.o.Notifier.Stopping()
	}
	a.log.Info("stopping", "job", a.job)
	a.setState(StateStopping, "stopping")
	bg := context.WithoutCancel(ctx)
	wasFault := a.Status().Fault
	if w := a.waiter; w != nil {
		a.waiter = nil
		w <- Response{Error: "agent stopping"}
	}
	if a.job != "" {
		a.setPaused(false)
		a.jobCancel()
		if r, ok := a.waitJob(AbortBudget); ok {
			a.job = ""
			if r.err != nil && !errors.Is(r.err, context.Canceled) {
				a.log.Error("job ended with an error while stopping", "job", r.name, "err", r.err)
			}
		} else {
			a.log.Error("job did not stop in time; halting motion", "job", a.job, "budget", AbortBudget)
			a.halt()
		}
	}
	if wasFault == nil && a.job == "" {
		pctx, cancel := context.WithTimeout(bg, ParkBudget)
		a.health.jobStarted(true)
		err := a.parkBeating(pctx)
		a.health.jobStarted(false)
		cancel()
		if err != nil {
			a.log.Error("stage not parked", "err", err)
			a.halt()
		}
	}
	fctx, cancel := context.WithTimeout(bg, FlushBudget)
	if err := a.o.Delivery.Flush(fctx); err != nil {
		a.log.Warn("results not all delivered; they stay on disk", "pending", a.o.Delivery.Depth(), "err", err)
	}
	cancel()
	a.update(func(s *Status) { s.State, s.Current, s.Job = "stopped", nil, "" })
	a.persist()
	a.log.Info("stopped", "took", a.now().Sub(t0).Round(time.Millisecond), "rerun", len(a.Status().Rerun))
	return nil
}

// waitJob waits for the running job while the loop keeps beating.
func (a *Agent) waitJob(budget time.Duration) (jobResult, bool) {
	deadline := time.NewTimer(budget)
	defer deadline.Stop()
	t := time.NewTicker(a.tick())
	defer t.Stop()
	for {
		a.health.LoopBeat()
		select {
		case r := <-a.jobDone:
			return r, true
		case <-t.C:
		case <-deadline.C:
			return jobResult{}, false
		}
	}
}

func (a *Agent) parkBeating(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- a.park(ctx) }()
	t := time.NewTicker(a.tick())
	defer t.Stop()
	for {
		a.health.LoopBeat()
		select {
		case err := <-done:
			return err
		case <-t.C:
		}
	}
}
