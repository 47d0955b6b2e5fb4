package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"papscan/agent"
	"papscan/delivery"
	config "papscan/firmware-config"
	"papscan/telemetry"
	fleetcmd "papscan/telemetry/command"
)

// ReplayFile is the command nonce store in the state directory.
const ReplayFile = "command-nonces.json"

// Commands runs signed fleet commands (package telemetry/command) on the
// agent: the MQTT handler only queues (Dispatcher.Deliver), the
// dispatcher goroutine verifies, admits through the replay guard, calls
// the agent through agent.Agent.Do (the same path as the status socket
// and the panel's buttons), publishes the reply and stores an audit record
// as a durable "command_audit" event.
type Commands struct {
	disp    *fleetcmd.Dispatcher
	replay  *fleetcmd.ReplayGuard
	root    *os.Root
	topic   string
	log     *slog.Logger
	version string
	max     int

	// Bound once the agent and the link exist (Start); nil before.
	mu sync.Mutex
	ag *agent.Agent
	lk *delivery.Link

	cancel context.CancelFunc
	done   chan struct{}
}

// commandAgent adapts the daemon's agent to fleetcmd.Agent.
type commandAgent struct{ fc *Commands }

var _ fleetcmd.Agent = commandAgent{}

// Open loads the fleet keys (agent.commands.fleet_keys and
// fleet_keys_file) and opens the replay guard in the state directory;
// version is the program's, for the status reply. Configuration problems
// are a delivery.ConfigError naming the key (the agent exits with code 3).
func Open(cfg *config.Config, version string, log *slog.Logger) (*Commands, error) {
	cc := cfg.Agent.Commands
	keys, err := fleetcmd.LoadKeyRing(cc.FleetKeys, cc.FleetKeysFile)
	if err != nil {
		return nil, delivery.ConfigError{Err: fmt.Errorf("agent.commands.fleet_keys / fleet_keys_file: %w", err)}
	}
	now := time.Now()
	guard, err := fleetcmd.OpenReplayGuard(filepath.Join(cfg.Agent.StateDir, ReplayFile), 0, now, cc.ClockSkew.D())
	if err != nil {
		return nil, err
	}
	if why := guard.Recovered(); why != "" {
		log.Info("command replay guard starts with a floor", "why", why, "not_before", guard.NotBefore())
	}
	root, err := os.OpenRoot(cfg.Agent.StateDir)
	if err != nil {
		return nil, fmt.Errorf("agent.state_dir: %w", err)
	}
	fc := &Commands{replay: guard, root: root, log: log, version: version, max: cc.MaxFetchBytes}
	topics, err := telemetry.NewTopics(cfg.EffectiveTopicPrefix(), cfg.Agent.RobotID)
	if err != nil {
		root.Close()
		return nil, delivery.ConfigError{Err: fmt.Errorf("agent.robot_id / agent.mqtt.topic_prefix: %w", err)}
	}
	fc.topic = topics.Cmd()
	fc.disp, err = fleetcmd.NewDispatcher(fleetcmd.DispatcherOptions{
		Verifier:       fleetcmd.Verifier{RobotID: cfg.Agent.RobotID, Keys: keys, MaxAge: cc.MaxAge.D(), ClockSkew: cc.ClockSkew.D()},
		Replay:         guard,
		Agent:          commandAgent{fc},
		Publish:        fc.publish,
		Audit:          fc.audit,
		HandlerTimeout: cc.HandlerTimeout.D(),
		MaxFetchBytes:  cc.MaxFetchBytes,
		Logger:         log,
	})
	if err != nil {
		root.Close()
		return nil, delivery.ConfigError{Err: fmt.Errorf("agent.commands: %w", err)}
	}
	if keys.Len() == 0 {
		log.Warn("no fleet keys configured (agent.commands.fleet_keys): every command will be refused")
	} else {
		log.Info("fleet commands enabled", "topic", fc.topic, "keys", keys.Len())
	}
	return fc, nil
}

// Subscription is the cmd topic for telemetry.Options.Subscriptions: the
// handler copies the message into the dispatcher's queue and returns.
func (fc *Commands) Subscription() telemetry.Subscription {
	return telemetry.Subscription{Topic: fc.topic, QoS: 1, Handler: func(topic string, p []byte) {
		if !fc.disp.Deliver(p) {
			fc.log.Warn("command dropped: queue full", "topic", topic)
		}
	}}
}

// Start binds the agent and the link and runs the dispatcher until Stop.
func (fc *Commands) Start(ag *agent.Agent, lk *delivery.Link) {
	fc.mu.Lock()
	fc.ag, fc.lk = ag, lk
	fc.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	fc.cancel, fc.done = cancel, make(chan struct{})
	go func() {
		defer close(fc.done)
		_ = fc.disp.Run(ctx)
	}()
}

// Stop ends the dispatcher (running handlers are cancelled) and closes
// the state directory root. Call it before the link closes, so the last
// replies and audit records go out.
func (fc *Commands) Stop() {
	if fc.cancel != nil {
		fc.cancel()
		<-fc.done
	}
	fc.root.Close()
}

func (fc *Commands) bound() (*agent.Agent, *delivery.Link) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.ag, fc.lk
}

func (fc *Commands) publish(ctx context.Context, reply []byte) error {
	_, lk := fc.bound()
	if lk == nil {
		return errors.New("not connected yet")
	}
	return lk.Telemetry().PublishReply(ctx, reply)
}

// audit stores the record durably (event command_audit, acked by the
// fleet like every event).
func (fc *Commands) audit(r fleetcmd.AuditRecord) {
	_, lk := fc.bound()
	if lk == nil {
		return
	}
	lk.Event("command_audit", r)
}

// do runs a request on the agent and maps a refusal to the reply code.
func (ca commandAgent) do(ctx context.Context, req agent.Request) (agent.Response, error) {
	ag, _ := ca.fc.bound()
	if ag == nil {
		return agent.Response{}, fmt.Errorf("agent starting: %w", fleetcmd.ErrBusy)
	}
	resp := ag.Do(ctx, req)
	if resp.OK {
		return resp, nil
	}
	var sentinel error
	switch resp.Code {
	case agent.CodeBusy:
		sentinel = fleetcmd.ErrBusy
	case agent.CodeInvalidState:
		sentinel = fleetcmd.ErrInvalidState
	case agent.CodeBadRequest:
		sentinel = fleetcmd.ErrBadArgs
	default:
		if ctx.Err() != nil {
			return resp, fmt.Errorf("%s: %w", resp.Error, ctx.Err())
		}
		if resp.Error == "agent stopping" {
			sentinel = fleetcmd.ErrBusy
		}
	}
	if sentinel == nil {
		return resp, errors.New(resp.Error)
	}
	return resp, &fleetcmd.Error{Code: fleetcmd.CodeOf(sentinel), Message: resp.Error}
}

func (ca commandAgent) StartMagazine(ctx context.Context, a fleetcmd.StartMagazineArgs) error {
	_, err := ca.do(ctx, agent.Request{Cmd: "start", Magazine: a.Magazine})
	return err
}

func (ca commandAgent) Pause(ctx context.Context) error {
	_, err := ca.do(ctx, agent.Request{Cmd: "pause"})
	return err
}

func (ca commandAgent) Resume(ctx context.Context) error {
	_, err := ca.do(ctx, agent.Request{Cmd: "resume"})
	return err
}

func (ca commandAgent) Abort(ctx context.Context, a fleetcmd.AbortArgs) error {
	_, err := ca.do(ctx, agent.Request{Cmd: "abort", Reason: a.Reason})
	return err
}

func (ca commandAgent) Status(ctx context.Context) (fleetcmd.Status, error) {
	resp, err := ca.do(ctx, agent.Request{Cmd: "status"})
	if err != nil || resp.Status == nil {
		return fleetcmd.Status{}, err
	}
	st := resp.Status
	out := fleetcmd.Status{State: st.State, Magazine: st.Magazine, SlidesDone: st.SlidesDone,
		UptimeS: time.Since(st.Started).Seconds(), Version: ca.fc.version}
	out.OutboxDepth, out.Paused, out.Unfinished = st.OutboxDepth, st.Paused, st.Unfinished
	if c := st.Current; c != nil {
		out.SlideID = c.SlideID
		out.Slide = &fleetcmd.SlideProgress{Slot: c.Slot, Phase: c.Phase, Done: c.Done, Total: c.Total}
	}
	if p := st.Progress; p != nil {
		out.Slots = &fleetcmd.SlotProgress{Occupied: p.Occupied, Done: p.Done, Rerun: p.Rerun, Pending: p.Pending}
	}
	for _, r := range st.Rerun {
		out.Rerun = append(out.Rerun, fleetcmd.RerunSlide{Magazine: r.Magazine, Slot: r.Slot, SlideID: r.SlideID, ResultID: r.ResultID, Reason: r.Reason})
	}
	if f := st.Fault; f != nil {
		out.Faults = []string{fmt.Sprintf("code %d %s on %s: %s", f.Code, f.Name, f.Device, f.Error)}
	}
	if ag, _ := ca.fc.bound(); ag != nil {
		out.LogLevel = ag.LogLevel()
	}
	return out, nil
}

// SelfTest re-homes and runs the hardware self-test, scan.SelfTest (the
// same job as `papscan selftest` and a long START press), and waits for
// its outcome within the handler timeout; past it the reply is "timeout"
// and the self-test goes on (its outcome is a self_test event, and a fault
// event when it failed). The reply lists every check.
func (ca commandAgent) SelfTest(ctx context.Context, a fleetcmd.SelfTestArgs) (fleetcmd.SelfTestResult, error) {
	resp, err := ca.do(ctx, agent.Request{Cmd: "selftest"})
	if err != nil {
		var ce *fleetcmd.Error
		if errors.As(err, &ce) || ctx.Err() != nil {
			return fleetcmd.SelfTestResult{}, err
		}
	}
	// The self-test ran; failed, it is a result, not an error.
	out := fleetcmd.SelfTestResult{Passed: err == nil, Checks: []fleetcmd.SelfTestOutcome{}}
	if resp.Status != nil && resp.Status.SelfTest != nil {
		for _, c := range resp.Status.SelfTest.Checks {
			out.Checks = append(out.Checks, fleetcmd.SelfTestOutcome{Name: c.Name, OK: c.OK, Detail: c.Detail})
		}
	}
	if err != nil && len(out.Checks) == 0 { // it failed before any check (homing, a device missing)
		out.Checks = append(out.Checks, fleetcmd.SelfTestOutcome{Name: "home", OK: false, Detail: resp.Error})
	}
	return out, nil
}

func (ca commandAgent) SetLogLevel(_ context.Context, a fleetcmd.SetLogLevelArgs) error {
	ag, _ := ca.fc.bound()
	if ag == nil {
		return fleetcmd.ErrBusy
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(a.Level)); err != nil {
		return fmt.Errorf("%w: level %q", fleetcmd.ErrBadArgs, a.Level)
	}
	return ag.SetLogLevel(l)
}

// ReloadConfig is SIGHUP's path: the file is re-read and validated, and
// applied only if valid (bad_request naming the key otherwise).
func (ca commandAgent) ReloadConfig(ctx context.Context) error {
	_, err := ca.do(ctx, agent.Request{Cmd: "reload"})
	return err
}

// Fetch sends back a stored slide file, opened through os.Root on the
// state directory (no way out of it).
func (ca commandAgent) Fetch(_ context.Context, a fleetcmd.FetchArgs) (fleetcmd.FetchResult, error) {
	return fleetcmd.ReadStored(ca.fc.root, a, ca.fc.max)
}
