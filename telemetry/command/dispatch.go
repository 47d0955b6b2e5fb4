package command

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
)

// Agent is what the robot's agent implements to be commanded. Every
// method is called only for an authenticated, fresh, never-seen,
// well-formed command, with a context bounded by the handler timeout. A
// method must return promptly: long work (a magazine run, a full
// self-test) starts in the agent's own goroutine and the method returns.
// Methods may be called concurrently with each other (a handler that
// overran its timeout may still be running when the next one starts).
// Return errors wrapping ErrBusy, ErrInvalidState, ErrNotFound, ErrBadArgs
// or ErrTooLarge to choose the reply code; anything else is "internal".
type Agent interface {
	StartMagazine(ctx context.Context, a StartMagazineArgs) error
	Pause(ctx context.Context) error
	Resume(ctx context.Context) error
	Abort(ctx context.Context, a AbortArgs) error
	Status(ctx context.Context) (Status, error)
	SelfTest(ctx context.Context, a SelfTestArgs) (SelfTestResult, error)
	SetLogLevel(ctx context.Context, a SetLogLevelArgs) error
	// ReloadConfig re-reads the configuration file, validates it and
	// applies it only if valid (ErrBadArgs with the validation errors
	// otherwise; the running configuration is unchanged).
	ReloadConfig(ctx context.Context) error
	// Fetch returns a stored file; ReadStored implements it safely.
	Fetch(ctx context.Context, a FetchArgs) (FetchResult, error)
}

// Status is the result of a status command.
type Status struct {
	// State is the agent state: idle, scanning, paused, fault, ...
	State      string   `json:"state"`
	Magazine   string   `json:"magazine,omitempty"`
	SlideID    string   `json:"slide_id,omitempty"`
	SlidesDone int      `json:"slides_done"`
	Faults     []string `json:"faults,omitempty"`
	LogLevel   string   `json:"log_level,omitempty"`
	UptimeS    float64  `json:"uptime_s"`
	Version    string   `json:"version,omitempty"`
	// Slide is the slide on the stage: its slot, scan phase and tiles
	// done of total.
	Slide *SlideProgress `json:"slide,omitempty"`
	// Slots is the current or last magazine's slots by outcome.
	Slots *SlotProgress `json:"slots,omitempty"`
	// Rerun lists the slides whose results must not be trusted and that
	// wait to be scanned again.
	Rerun []RerunSlide `json:"rerun,omitempty"`
	// Unfinished names a magazine stopped before its end (START resumes it).
	Unfinished string `json:"unfinished_magazine,omitempty"`
	// OutboxDepth counts results stored on the robot and not yet
	// acknowledged by the fleet.
	OutboxDepth int  `json:"outbox_depth"`
	Paused      bool `json:"paused,omitempty"`
}

// SlideProgress is where the scan of the slide on the stage stands.
type SlideProgress struct {
	Slot  int    `json:"slot"`
	Phase string `json:"phase"`
	Done  int    `json:"done"`
	Total int    `json:"total"`
}

// SlotProgress is a magazine's slots by outcome.
type SlotProgress struct {
	Occupied int   `json:"occupied"`
	Done     []int `json:"done"`
	Rerun    []int `json:"rerun"`
	Pending  []int `json:"pending"`
}

// RerunSlide is one slide waiting for a rerun.
type RerunSlide struct {
	Magazine string `json:"magazine"`
	Slot     int    `json:"slot"`
	SlideID  string `json:"slide_id"`
	ResultID string `json:"result_id,omitempty"`
	Reason   string `json:"reason"`
}

// SelfTestResult is the result of a self-test command.
type SelfTestResult struct {
	Passed bool              `json:"passed"`
	Checks []SelfTestOutcome `json:"checks"`
}

// SelfTestOutcome is one check of a self-test.
type SelfTestOutcome struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// FetchResult is the result of a fetch command. Data is base64 in JSON.
type FetchResult struct {
	Item        string `json:"item"`
	Path        string `json:"path"` // RelPath, for the record
	ContentType string `json:"content_type"`
	Size        int    `json:"size"`
	SHA256      string `json:"sha256"` // hex
	Data        []byte `json:"data"`
}

// AuditRecord describes one command message and what became of it. One
// record is emitted for every message handed to the dispatcher: refused
// ones (Accepted false) and run ones (Accepted true, Code = the outcome).
// Fields other than Time, Code and PayloadSHA256 are empty when the
// message was too malformed to carry them; ID and Type of a refused
// message come from unauthenticated input (validated shape only).
type AuditRecord struct {
	Time          time.Time     `json:"time"`
	ID            string        `json:"id,omitempty"`
	Type          string        `json:"type,omitempty"`
	KeyID         string        `json:"key_id,omitempty"`
	Nonce         string        `json:"nonce,omitempty"`
	IssuedAt      time.Time     `json:"issued_at,omitzero"`
	Accepted      bool          `json:"accepted"`
	Code          Code          `json:"code"`
	Message       string        `json:"message,omitempty"`
	PayloadSHA256 string        `json:"payload_sha256"`
	Duration      time.Duration `json:"duration_ns,omitempty"`
	// Suppressed counts refused messages dropped by the refusal rate
	// limit (no reply, no audit record) since the previous record.
	Suppressed int `json:"suppressed,omitempty"`
}

// Defaults for DispatcherOptions.
const (
	DefaultHandlerTimeout = 30 * time.Second
	DefaultQueueSize      = 32
	DefaultMaxFetchBytes  = 8 << 20
	DefaultRefusalBurst   = 30
	DefaultRefusalEvery   = 2 * time.Second
)

// DispatcherOptions configures a Dispatcher.
type DispatcherOptions struct {
	Verifier Verifier
	// Replay is required.
	Replay *ReplayGuard
	Agent  Agent
	// Publish sends an encoded reply to <prefix>/<robot>/cmd/reply (QoS 1,
	// not retained). It runs on the dispatcher's goroutine, never paho's.
	Publish func(ctx context.Context, reply []byte) error
	// Audit receives one record per message; it must not block for long.
	// nil: records are only logged.
	Audit func(AuditRecord)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// HandlerTimeout bounds each Agent call (default 30 s).
	HandlerTimeout time.Duration
	// QueueSize bounds messages waiting for the dispatcher (default 32).
	QueueSize int
	// MaxFetchBytes bounds a fetched file (default 8 MiB).
	MaxFetchBytes int
	// RefusalBurst and RefusalEvery rate-limit refusals: at most
	// RefusalBurst refused messages in a row get a reply and an audit
	// record, then one more per RefusalEvery; the others are dropped and
	// counted (AuditRecord.Suppressed). Someone who can publish on the cmd
	// topic without the fleet key can then not flood the replies, the log
	// or the durable audit trail (and fill the disk). Accepted commands
	// are never limited. Defaults 30 and 2 s.
	RefusalBurst int
	RefusalEvery time.Duration
	Logger       *slog.Logger
}

// Dispatcher verifies command messages, admits them through the replay
// guard, runs the Agent's handler and publishes the reply. Deliver is the
// MQTT message handler (it only queues); Run does the work, one message at
// a time, in order of arrival.
type Dispatcher struct {
	o   DispatcherOptions
	log *slog.Logger
	// queue holds verified commands; refusals holds the refusals still
	// to answer. Separate, so that refused messages can never take the
	// place of a genuine command (Deliver verifies before queueing).
	queue    chan verifiedMsg
	refusals chan refusal

	handlers sync.WaitGroup // handler goroutines, including overrunning ones

	limMu      sync.Mutex
	tokens     int       // refusals that may still be answered
	refilled   time.Time // when tokens were last topped up
	suppressed int       // refusals dropped since the last audit record
}

// NewDispatcher checks the options and applies defaults.
func NewDispatcher(o DispatcherOptions) (*Dispatcher, error) {
	switch {
	case o.Agent == nil:
		return nil, errors.New("command: DispatcherOptions.Agent is nil")
	case o.Replay == nil:
		return nil, errors.New("command: DispatcherOptions.Replay is nil")
	case o.Publish == nil:
		return nil, errors.New("command: DispatcherOptions.Publish is nil")
	case !robotRe.MatchString(o.Verifier.RobotID):
		return nil, fmt.Errorf("command: robot ID %q: want 1..64 of [A-Za-z0-9_-]", o.Verifier.RobotID)
	case o.Verifier.MaxAge <= 0:
		return nil, errors.New("command: Verifier.MaxAge must be > 0")
	case o.Verifier.ClockSkew < 0:
		return nil, errors.New("command: Verifier.ClockSkew must be >= 0")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HandlerTimeout <= 0 {
		o.HandlerTimeout = DefaultHandlerTimeout
	}
	if o.QueueSize <= 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.MaxFetchBytes <= 0 {
		o.MaxFetchBytes = DefaultMaxFetchBytes
	}
	if o.RefusalBurst <= 0 {
		o.RefusalBurst = DefaultRefusalBurst
	}
	if o.RefusalEvery <= 0 {
		o.RefusalEvery = DefaultRefusalEvery
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Dispatcher{o: o, log: o.Logger.With("component", "commands"), queue: make(chan verifiedMsg, o.QueueSize),
		refusals: make(chan refusal, refusalQueue), tokens: o.RefusalBurst, refilled: o.Now()}, nil
}

// refusalQueue bounds refusals waiting for their reply (beyond it they
// are counted as suppressed, like refusals over the rate limit).
const refusalQueue = 8

// verifiedMsg is a command that passed Verify, waiting for Run.
type verifiedMsg struct {
	v   *Verified
	at  time.Time
	sha string
}

// refusal is a message refused before it was queued, waiting for its
// reply and audit record.
type refusal struct {
	rec AuditRecord
}

// Deliver takes a received message and returns at once; it is safe to
// call from paho's message handler (it never blocks). A message larger
// than MaxMessageBytes is refused by its size before anything is copied
// or parsed. Otherwise it is copied and verified here (Verifier.Verify:
// envelope, signature, body, robot, age, args), so that only
// authenticated commands enter the command queue: a flood of refused
// messages cannot crowd out a genuine one. A refusal is answered and
// audited by Run within the refusal rate limit (beyond it: counted in the
// next record's Suppressed). Deliver returns false only when a verified
// command was dropped because the command queue is full (audited, code
// busy, no reply: the fleet times out and re-issues with a new nonce).
func (d *Dispatcher) Deliver(payload []byte) bool {
	now := d.o.Now()
	if len(payload) > MaxMessageBytes {
		d.refuseLater(now, payload, refuse(CodeBadRequest, "message of %d bytes, at most %d", len(payload), MaxMessageBytes), false)
		return true
	}
	msg := append([]byte(nil), payload...)
	v, verr := d.o.Verifier.Verify(msg, now)
	if verr != nil {
		d.refuseLater(now, msg, verr, true)
		return true
	}
	select {
	case d.queue <- verifiedMsg{v: v, at: now, sha: digest(msg)}:
		return true
	default:
		rec := AuditRecord{Time: now, ID: v.ID, Type: v.Type, KeyID: v.KeyID, Nonce: v.Nonce, IssuedAt: v.IssuedAt,
			Code: CodeBusy, Message: "command queue full; dropped without reply", PayloadSHA256: digest(msg)}
		d.limMu.Lock()
		rec.Suppressed, d.suppressed = d.suppressed, 0
		d.limMu.Unlock()
		d.audit(rec)
		return false
	}
}

// refuseLater queues the reply and audit of a refused message for Run,
// within the refusal rate limit. peek: the message is small enough to
// look for its correlation ID.
func (d *Dispatcher) refuseLater(now time.Time, msg []byte, e *Error, peek bool) {
	if !d.allowRefusal(now) {
		return
	}
	rec := AuditRecord{Time: now, Code: e.Code, Message: truncate(e.Message, maxMessageBytes), PayloadSHA256: digest(msg)}
	if peek {
		rec.ID, rec.Type, rec.KeyID = Peek(msg)
	}
	select {
	case d.refusals <- refusal{rec: rec}:
	default:
		d.limMu.Lock()
		d.suppressed++
		d.limMu.Unlock()
	}
}

// Run handles queued commands and refusals until ctx is done, verified
// commands first, then waits for handlers still running (bounded by their
// timeouts' contexts being cancelled).
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.handlers.Wait()
	for {
		var reply Reply
		var send bool
		select {
		case m := <-d.queue:
			reply, send = d.runVerified(ctx, m.v, m.sha, m.at)
		default:
			select {
			case <-ctx.Done():
				return ctx.Err()
			case m := <-d.queue:
				reply, send = d.runVerified(ctx, m.v, m.sha, m.at)
			case r := <-d.refusals:
				reply, send = d.finish(r.rec, Reply{Robot: d.o.Verifier.RobotID}, r.rec.Code, r.rec.Message, nil), true
			}
		}
		if !send {
			continue
		}
		b, err := EncodeReply(reply)
		if err == nil {
			err = d.o.Publish(ctx, b)
		}
		if err != nil {
			d.log.Warn("command reply not sent", "id", reply.ID, "code", reply.Code, "error", err)
		}
	}
}

// Handle verifies, admits and runs one message synchronously and returns
// its reply (Run publishes it). Every call emits exactly one audit record,
// except refusals beyond the refusal rate limit: those are only counted,
// and their reply (returned here with code busy) is not sent by Run.
func (d *Dispatcher) Handle(ctx context.Context, msg []byte) Reply {
	r, _ := d.handle(ctx, msg)
	return r
}

// allowRefusal takes a refusal token (refilling one per RefusalEvery up
// to RefusalBurst); false means: drop silently and count.
func (d *Dispatcher) allowRefusal(now time.Time) bool {
	d.limMu.Lock()
	defer d.limMu.Unlock()
	if n := int(now.Sub(d.refilled) / d.o.RefusalEvery); n > 0 {
		d.tokens = min(d.o.RefusalBurst, d.tokens+n)
		d.refilled = d.refilled.Add(time.Duration(n) * d.o.RefusalEvery)
	} else if now.Before(d.refilled) {
		d.refilled = now // the clock stepped back
	}
	if d.tokens > 0 {
		d.tokens--
		return true
	}
	d.suppressed++
	return false
}

func (d *Dispatcher) handle(ctx context.Context, msg []byte) (Reply, bool) {
	start := d.o.Now()
	v, verr := d.o.Verifier.Verify(msg, start)
	if verr != nil {
		if !d.allowRefusal(start) {
			return d.suppressedReply(start, verr.Code), false
		}
		rec := AuditRecord{Time: start, PayloadSHA256: digest(msg)}
		rec.ID, rec.Type, rec.KeyID = Peek(msg)
		return d.finish(rec, Reply{Robot: d.o.Verifier.RobotID}, verr.Code, verr.Message, nil), true
	}
	return d.runVerified(ctx, v, digest(msg), start)
}

// suppressedReply is what Handle returns for a refusal over the rate
// limit (Run does not send it).
func (d *Dispatcher) suppressedReply(at time.Time, code Code) Reply {
	d.log.Debug("command refusal suppressed (rate limit)", "code", code)
	return Reply{Robot: d.o.Verifier.RobotID, Code: CodeBusy, Message: "refusal rate limit", SentAt: at.UTC()}
}

// runVerified admits a verified command through the replay guard and runs
// it; start is when it arrived.
func (d *Dispatcher) runVerified(ctx context.Context, v *Verified, sha string, start time.Time) (Reply, bool) {
	rec := AuditRecord{Time: start, PayloadSHA256: sha, ID: v.ID, Type: v.Type, KeyID: v.KeyID, Nonce: v.Nonce, IssuedAt: v.IssuedAt}
	reply := Reply{Robot: d.o.Verifier.RobotID}
	if aerr := d.o.Replay.Admit(v.Nonce, v.IssuedAt, d.o.Verifier.expires(v.Command), d.o.Now()); aerr != nil {
		if !d.allowRefusal(start) {
			return d.suppressedReply(start, aerr.Code), false
		}
		return d.finish(rec, reply, aerr.Code, aerr.Message, nil), true
	}
	rec.Accepted = true
	result, err := d.run(ctx, v)
	if err != nil {
		code := CodeOf(err)
		if errors.Is(err, context.DeadlineExceeded) && code == CodeInternal {
			code = CodeTimeout
		}
		message := err.Error()
		if ce := (*Error)(nil); errors.As(err, &ce) {
			message = ce.Message
		}
		return d.finish(rec, reply, code, message, nil), true
	}
	var raw json.RawMessage
	if result != nil {
		b, err := json.Marshal(result)
		if err != nil {
			return d.finish(rec, reply, CodeInternal, "encode result: "+err.Error(), nil), true
		}
		raw = b
	}
	return d.finish(rec, reply, CodeOK, "", raw), true
}

// finish completes the audit record and the reply of one message and
// emits the record (with the refusals suppressed since the last one).
func (d *Dispatcher) finish(rec AuditRecord, reply Reply, code Code, message string, result json.RawMessage) Reply {
	message = truncate(message, maxMessageBytes)
	rec.Code, rec.Message = code, message
	reply.ID, reply.Type = rec.ID, rec.Type
	reply.OK, reply.Code, reply.Message, reply.Result = code == CodeOK, code, message, result
	reply.SentAt = d.o.Now().UTC()
	if rec.Accepted {
		rec.Duration = reply.SentAt.Sub(rec.Time)
	}
	d.limMu.Lock()
	rec.Suppressed, d.suppressed = d.suppressed, 0
	d.limMu.Unlock()
	d.audit(rec)
	return reply
}

// run calls the handler in its own goroutine, bounded by HandlerTimeout:
// a handler that ignores its context cannot stall the dispatcher.
func (d *Dispatcher) run(ctx context.Context, v *Verified) (any, error) {
	hctx, cancel := context.WithTimeout(ctx, d.o.HandlerTimeout)
	defer cancel()
	type out struct {
		res any
		err error
	}
	ch := make(chan out, 1)
	d.handlers.Add(1)
	go func() {
		defer d.handlers.Done()
		defer func() {
			if p := recover(); p != nil {
				ch <- out{err: fmt.Errorf("handler panic: %v", p)}
			}
		}()
		res, err := d.call(hctx, v)
		ch <- out{res, err}
	}()
	select {
	case o := <-ch:
		return o.res, o.err
	case <-hctx.Done():
		if ctx.Err() != nil {
			return nil, fmt.Errorf("agent shutting down: %w", ctx.Err())
		}
		return nil, &Error{Code: CodeTimeout, Message: fmt.Sprintf("%s did not finish within %v", v.Type, d.o.HandlerTimeout)}
	}
}

// call dispatches on the type; v.Parsed has the matching args type.
func (d *Dispatcher) call(ctx context.Context, v *Verified) (any, error) {
	a := d.o.Agent
	switch args := v.Parsed.(type) {
	case StartMagazineArgs:
		return nil, a.StartMagazine(ctx, args)
	case AbortArgs:
		return nil, a.Abort(ctx, args)
	case SelfTestArgs:
		r, err := a.SelfTest(ctx, args)
		return nilIfErr(r, err)
	case SetLogLevelArgs:
		return nil, a.SetLogLevel(ctx, args)
	case FetchArgs:
		r, err := a.Fetch(ctx, args)
		if err != nil {
			return nil, err
		}
		if len(r.Data) > d.o.MaxFetchBytes {
			return nil, fmt.Errorf("%s is %d bytes, more than the limit %d: %w", args.RelPath(), len(r.Data), d.o.MaxFetchBytes, ErrTooLarge)
		}
		return r, nil
	case NoArgs:
		switch v.Type {
		case TypePause:
			return nil, a.Pause(ctx)
		case TypeResume:
			return nil, a.Resume(ctx)
		case TypeStatus:
			r, err := a.Status(ctx)
			return nilIfErr(r, err)
		case TypeReloadConfig:
			return nil, a.ReloadConfig(ctx)
		}
	}
	return nil, fmt.Errorf("no handler for %q", v.Type) // unreachable: Verify knows the types
}

func nilIfErr[T any](r T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return r, nil
}

// audit logs the record and hands it to Options.Audit. An accepted
// command's line carries its type and ID in the message itself, so a log
// rate limit keyed by message (the agent's: 5 per message per 10 s) never
// hides one; refusals share one message and are limited like any flood.
func (d *Dispatcher) audit(r AuditRecord) {
	lvl, msg := slog.LevelWarn, "command refused"
	if r.Accepted {
		lvl, msg = slog.LevelInfo, "command accepted: "+r.Type+" "+r.ID
	}
	d.log.Log(context.Background(), lvl, msg, "id", r.ID, "type", r.Type, "key_id", r.KeyID,
		"accepted", r.Accepted, "code", r.Code, "message", r.Message, "payload_sha256", r.PayloadSHA256, "suppressed", r.Suppressed)
	if d.o.Audit != nil {
		d.o.Audit(r)
	}
}

// maxMessageBytes bounds a reply's (and audit record's) message: error
// texts quote values taken from the command.
const maxMessageBytes = 1024

// truncate shortens s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
