package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/telemetry"
	fleetcmd "papscan/telemetry/command"
	"papscan/telemetry/outbox"
)

// Link is the robot's durable path to the fleet: the outbox in the state
// directory, its sender, the MQTT client and the health loop.
type Link struct {
	ob    *outbox.Outbox
	snd   *outbox.Sender
	tm    *telemetry.Client
	log   *slog.Logger
	start time.Time

	mu    sync.Mutex
	stats telemetry.ScanStats
	stage string
	// stages are the stage changes the health loop has not published yet,
	// oldest first (at most maxPendingStages): it publishes one message
	// for each, so the fleet sees every transition of a quick run
	// (starting, ready, scanning), not only the last.
	stages []string
	// now asks the health loop for a message of the current figures (a
	// slide done, a storage fault).
	now bool
	// kick asks the health loop for a message now (buffered 1): on a
	// stage change and on every slide done, so the fleet does not wait a
	// health interval to see them.
	kick chan struct{}
	// fill fills a health message (fillHealth with the state directory).
	fill  func(h *telemetry.Health)
	fault *hal.Fault
	// health, if set, fills what the link does not know (the agent's
	// stage and latched faults) after the link's own figures.
	health func(h *telemetry.Health)

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open opens <state_dir>/outbox.db, connects to brokers with the
// outbox's ack/replay hooks, and starts the sender (which first replays
// whatever an earlier run left unacked) and the health loop.
func Open(ctx context.Context, cfg *config.Config, brokers []string, log *slog.Logger, mods ...func(*outbox.Options)) (*Link, error) {
	return OpenWith(ctx, cfg, brokers, log, nil, mods...)
}

// OpenWith is Open with changes to the telemetry options (the agent's:
// connect in the background, the command subscription).
func OpenWith(ctx context.Context, cfg *config.Config, brokers []string, log *slog.Logger, tmod func(*telemetry.Options), mods ...func(*outbox.Options)) (*Link, error) {
	m := cfg.Agent.MQTT
	minFree := int64(m.MinFreeMB) << 20
	if minFree == 0 {
		minFree = -1 // no reserve
	}
	oo := outbox.Options{MinFreeBytes: minFree, Logger: log}
	for _, mod := range mods {
		mod(&oo)
	}
	ob, err := outbox.Open(filepath.Join(cfg.Agent.StateDir, "outbox.db"), oo)
	if err != nil {
		return nil, hal.NewFault("storage", hal.FaultStorage, err)
	}
	snd := outbox.NewSender(ob, outbox.SenderOptions{Window: m.OutboxWindow, AckTimeout: m.AckTimeout.D(), Logger: log})
	ring, err := ackKeyRing(cfg, log)
	if err != nil {
		ob.Close()
		return nil, err
	}
	tm, err := dialTelemetry(ctx, cfg, brokers, log, func(o *telemetry.Options) {
		o.OnAck = snd.HandleAck
		o.OnReplay = snd.HandleReplay
		if ring.Len() > 0 {
			o.FleetAuth = ring
		} else {
			o.UnsignedFleet = true // config validation allows it on the simulated machine only
		}
		o.OnConnected = snd.Reconnected
		o.MaxReconnectInterval = m.MaxReconnectInterval.D()
		if tmod != nil {
			tmod(o)
		}
	})
	if err != nil {
		ob.Close()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &Link{ob: ob, snd: snd, tm: tm, log: log, start: time.Now(), stage: StageStarting, cancel: cancel, kick: make(chan struct{}, 1)}
	stateDir := cfg.Agent.StateDir
	l.fill = func(h *telemetry.Health) { l.fillHealth(h, stateDir) }
	if dmg := ob.Damage(); dmg != nil {
		// The outbox was damaged and recovered what it could (its
		// outbox_damaged event tells the fleet the lost range): report
		// the storage fault in health and commit the stored per-slide
		// results again, so none the robot still has on disk is lost.
		l.fault = hal.NewFault("storage", hal.FaultStorage, dmg)
		n, rerr := ob.Rederive(cfg.Agent.StateDir, time.Time{})
		log.Error("outbox was damaged; stored results committed again", "damage", dmg.Error(), "rederived", n, "err", rerr)
	}
	if d := ob.Depth(); d > 0 {
		log.Info("outbox holds results/events not yet acked by the fleet; sending them again", "depth", d)
	}
	l.wg.Add(2)
	go func() { defer l.wg.Done(); _ = snd.Run(lctx, tm) }()
	go func() {
		defer l.wg.Done()
		l.runHealth(lctx, m.HealthInterval.D())
	}()
	return l, nil
}

func (l *Link) fillHealth(h *telemetry.Health, stateDir string) {
	h.UptimeS = time.Since(l.start).Seconds()
	h.Temperatures = telemetry.ReadThermal("/sys/class/thermal")
	if u, err := outbox.DiskUsage(stateDir); err == nil {
		h.Disk = telemetry.DiskInfo{FreeBytes: u.FreeBytes, TotalBytes: u.TotalBytes}
	}
	h.Outbox = telemetry.OutboxInfo{Depth: l.ob.Depth(), Session: l.ob.Session(), Floor: l.ob.Floor()}
	h.AcceptSlides = l.ob.Admit() == nil
	l.mu.Lock()
	defer l.mu.Unlock()
	h.Stage = l.stage
	h.Scan = l.stats
	if f := l.fault; f != nil {
		h.Faults = []telemetry.FaultInfo{{Code: int(f.Code), Name: f.Code.String(), Device: f.Device, Cause: fmt.Sprint(f.Err)}}
	}
	if l.health != nil {
		l.health(h)
	}
}

// SetHealth installs the agent's part of the health message.
func (l *Link) SetHealth(f func(h *telemetry.Health)) {
	l.mu.Lock()
	l.health = f
	l.mu.Unlock()
}

// Stage names for SetStage: the agent's state names (agent.State), so the
// fleet reads one vocabulary from the daemon and from `papscan sim`.
const (
	StageStarting  = "starting"  // homing and self-check, nothing scanned yet
	StageScanning  = "scanning"  // a magazine is being scanned
	StageDone      = "done"      // the magazine is done, every slide analysed
	StageAttention = "attention" // stopped or done with slides to rerun
	StageFault     = "fault"     // a latched fault stopped the robot
)

// maxPendingStages bounds the stage changes waiting for the health loop
// (the oldest are dropped beyond it; the last is always published).
const maxPendingStages = 32

// SetStage records what the robot does, for health. Each change (and
// each fault, even in stage fault already) is published at once, one
// health message per change, in order; it never blocks.
func (l *Link) SetStage(s string) {
	l.mu.Lock()
	changed := l.stage != s || s == StageFault
	l.stage = s
	if changed {
		if len(l.stages) == maxPendingStages {
			l.stages = l.stages[1:]
		}
		l.stages = append(l.stages, s)
	}
	l.mu.Unlock()
	if changed {
		l.wake()
	}
}

// kickHealth asks the health loop for a message of the current figures
// now; a pending request is enough.
func (l *Link) kickHealth() {
	l.mu.Lock()
	l.now = true
	l.mu.Unlock()
	l.wake()
}

// wake wakes the health loop up (a pending wake-up is enough).
func (l *Link) wake() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// runHealth publishes a health message at once, every interval, and when
// kicked (one for each stage change since the last), until ctx ends.
func (l *Link) runHealth(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	now := true // at once
	for {
		l.mu.Lock()
		stages := l.stages
		now = (now || l.now) && len(stages) == 0
		l.stages, l.now = nil, false
		l.mu.Unlock()
		for _, s := range stages {
			l.publishHealth(s)
		}
		if now {
			l.publishHealth("")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now = true
		case <-l.kick:
			now = false
		}
	}
}

// publishHealth publishes the health message of now; a stage, if not
// "", is the one of the change it reports.
func (l *Link) publishHealth(stage string) {
	var h telemetry.Health
	l.fill(&h)
	if stage != "" {
		h.Stage = stage
	}
	if err := l.tm.PublishHealth(h); err != nil {
		l.log.Debug("health not published", "error", err)
	}
}

// Health returns the health message the link would publish now (without
// Connected, which the client fills in).
func (l *Link) Health() telemetry.Health {
	var h telemetry.Health
	l.fill(&h)
	return h
}

// Admit refuses a new slide when the outbox cannot take its result: it
// returns a storage *hal.Fault, says so in telemetry (state "fault" and
// a non-durable "storage_full" event: the disk has no room for a durable
// one) and records it for health.
func (l *Link) Admit(ctx context.Context) error {
	err := l.ob.Admit()
	if err == nil {
		return nil
	}
	return l.storageFault(ctx, err)
}

func (l *Link) storageFault(ctx context.Context, err error) error {
	f := hal.NewFault("storage", hal.FaultStorage, err)
	l.mu.Lock()
	l.fault = f
	l.stage = StageFault
	l.mu.Unlock()
	l.kickHealth()
	l.log.Error("storage full or failing: taking no new slides; committed results are kept", "err", err, "outbox_depth", l.ob.Depth())
	if !l.tm.Connected() {
		return f // nothing to tell now; health says accept_slides false later
	}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	fields := map[string]any{"code": int(hal.FaultStorage), "fault": hal.FaultStorage.String(), "cause": err.Error(), "outbox_depth": l.ob.Depth()}
	_ = l.tm.PublishEvent(pctx, "storage_full", fields)
	_ = l.tm.PublishState(pctx, "fault", fields)
	return f
}

// commit stores a result durably in the outbox; the sender publishes it.
func (l *Link) commit(ctx context.Context, slideID, resultID string, body []byte, incomplete bool) error {
	l.mu.Lock()
	l.stats.Slides++
	if incomplete {
		l.stats.Incomplete++
	}
	l.mu.Unlock()
	if _, err := l.ob.PutResult(slideID, resultID, body); err != nil {
		if errors.Is(err, outbox.ErrFull) || errors.Is(err, outbox.ErrStorage) {
			return l.storageFault(ctx, err)
		}
		return err
	}
	l.mu.Lock()
	l.stats.Results++
	l.mu.Unlock()
	l.kickHealth() // a slide done: the fleet sees scan.slides move
	return nil
}

// Event commits an event durably (logged if it cannot be).
func (l *Link) Event(kind string, payload any) {
	if _, err := l.ob.PutEvent(kind, payload); err != nil {
		l.log.Warn("event not stored", "event", kind, "err", err)
	}
}

// Drain waits until the fleet acked everything or wait elapsed, and
// returns the entries still waiting.
func (l *Link) Drain(ctx context.Context, wait time.Duration) int {
	deadline := time.Now().Add(wait)
	for l.ob.Depth() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	return l.ob.Depth()
}

// Close stops the sender and health loop, says goodbye to the broker and
// closes the outbox (whatever it holds goes out at the next start).
func (l *Link) Close(ctx context.Context) {
	l.cancel()
	l.wg.Wait()
	l.publishHealth("") // the retained message keeps the last stage and counts
	closeTelemetry(ctx, l.tm)
	if err := l.ob.Close(); err != nil {
		l.log.Warn("outbox close", "err", err)
	}
}

// ackKeyRing loads the fleet receivers' keys (agent.mqtt.ack_keys and
// ack_keys_file) that every ack and replay request must be signed with. A
// key file that is named but missing or empty is a configuration error;
// no keys at all is allowed only where validation allowed it (the
// simulated machine), and telemetry then warns that acks are unchecked.
func ackKeyRing(cfg *config.Config, log *slog.Logger) (*fleetcmd.KeyRing, error) {
	m := cfg.Agent.MQTT
	ring, err := fleetcmd.LoadKeyRing(m.AckKeys, m.AckKeysFile)
	if err != nil {
		return nil, ConfigError{Err: fmt.Errorf("agent.mqtt.ack_keys / ack_keys_file: %w", err)}
	}
	if ring.Len() == 0 && m.AckKeysFile != "" {
		return nil, ConfigError{Err: fmt.Errorf("agent.mqtt.ack_keys_file: %s holds no key", m.AckKeysFile)}
	}
	if ring.Len() == 0 && !cfg.Simulated() && len(m.Brokers) > 0 {
		return nil, ConfigError{Err: errors.New("agent.mqtt.ack_keys: required on a real robot with brokers")}
	}
	if ring.Len() > 0 {
		log.Info("fleet acks and replay requests are signature-checked", "keys", ring.Len())
	}
	return ring, nil
}

// Telemetry is the link's MQTT client.
func (l *Link) Telemetry() *telemetry.Client { return l.tm }

// Outbox is the link's durable outbox.
func (l *Link) Outbox() *outbox.Outbox { return l.ob }

// ConfigError marks a configuration problem (the binary's exit code 3).
type ConfigError struct{ Err error }

func (e ConfigError) Error() string { return e.Err.Error() }
func (e ConfigError) Unwrap() error { return e.Err }

// dialTelemetry connects to the configured brokers.
func dialTelemetry(ctx context.Context, cfg *config.Config, brokers []string, log *slog.Logger, mods ...func(*telemetry.Options)) (*telemetry.Client, error) {
	m := cfg.Agent.MQTT
	opts := telemetry.Options{
		Brokers:     brokers,
		ClientID:    cfg.EffectiveClientID(),
		RobotID:     cfg.Agent.RobotID,
		TopicPrefix: cfg.EffectiveTopicPrefix(),
		Username:    m.Username,
		KeepAlive:   m.KeepAlive.D(),
		Logger:      log,
	}
	if m.PasswordFile != "" {
		b, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("agent.mqtt.password_file: %w", err)
		}
		opts.Password = strings.TrimSpace(string(b))
	}
	if m.TLS.CAFile != "" || m.TLS.CertFile != "" {
		tc, err := tlsConfig(m.TLS)
		if err != nil {
			return nil, err
		}
		opts.TLS = tc
	}
	for _, mod := range mods {
		mod(&opts)
	}
	return telemetry.Dial(ctx, opts)
}

func tlsConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("agent.mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("agent.mqtt.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("agent.mqtt.tls.cert_file/key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// closeTelemetry says goodbye to the broker, bounded even when ctx has
// ended (the offline state is what the fleet should see).
func closeTelemetry(ctx context.Context, tm *telemetry.Client) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tm.Close(cctx)
}
