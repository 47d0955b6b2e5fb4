package command

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

const testRobot = "robot-07"

// t0 is the injected clock's start.
var t0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

// testKey derives a fixed key from a seed byte (reproducible corpora).
func testKey(id string, seed byte) SigningKey {
	return SigningKey{ID: id, Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))}
}

var (
	fleetKey = testKey("fleet-a", 1)
	otherKey = testKey("fleet-b", 2) // trusted too (rotation)
	evilKey  = testKey("fleet-a", 9) // not trusted, claims fleet-a's ID
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func testVerifier(t testing.TB) Verifier {
	t.Helper()
	ring, err := NewKeyRing(fleetKey.Public(), otherKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	return Verifier{RobotID: testRobot, Keys: ring, MaxAge: 2 * time.Minute, ClockSkew: 30 * time.Second}
}

// clock is an injected, manually advanced clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// mustSign signs a command of typ with args, issued at `at`.
func mustSign(t testing.TB, key SigningKey, robot, typ string, args any, at time.Time) ([]byte, Command) {
	t.Helper()
	c, err := NewCommand(robot, typ, args, at)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	var s Signed
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	body, _ := b64.DecodeString(s.Body)
	_ = json.Unmarshal(body, &c) // nonce filled by Sign
	return b, c
}

// fakeAgent records calls; behaviour is set per test.
type fakeAgent struct {
	mu    sync.Mutex
	calls []string
	err   error         // returned by every method
	block chan struct{} // if set, methods wait for it (or ctx)
	fetch func(FetchArgs) (FetchResult, error)
}

var _ Agent = (*fakeAgent)(nil)

func (f *fakeAgent) record(ctx context.Context, s string) error {
	f.mu.Lock()
	f.calls = append(f.calls, s)
	b := f.block
	f.mu.Unlock()
	if b != nil {
		select {
		case <-b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.err
}

func (f *fakeAgent) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeAgent) StartMagazine(ctx context.Context, a StartMagazineArgs) error {
	return f.record(ctx, "start_magazine:"+a.Magazine)
}
func (f *fakeAgent) Pause(ctx context.Context) error  { return f.record(ctx, "pause") }
func (f *fakeAgent) Resume(ctx context.Context) error { return f.record(ctx, "resume") }
func (f *fakeAgent) Abort(ctx context.Context, a AbortArgs) error {
	return f.record(ctx, "abort:"+a.Reason)
}
func (f *fakeAgent) Status(ctx context.Context) (Status, error) {
	return Status{State: "idle", SlidesDone: 3, LogLevel: "info", UptimeS: 12.5}, f.record(ctx, "status")
}
func (f *fakeAgent) SelfTest(ctx context.Context, a SelfTestArgs) (SelfTestResult, error) {
	return SelfTestResult{Passed: true, Checks: []SelfTestOutcome{{Name: "camera", OK: true}}}, f.record(ctx, "self_test:"+a.Level)
}
func (f *fakeAgent) SetLogLevel(ctx context.Context, a SetLogLevelArgs) error {
	return f.record(ctx, "set_log_level:"+a.Level)
}
func (f *fakeAgent) ReloadConfig(ctx context.Context) error { return f.record(ctx, "reload_config") }
func (f *fakeAgent) Fetch(ctx context.Context, a FetchArgs) (FetchResult, error) {
	if err := f.record(ctx, "fetch:"+a.RelPath()); err != nil {
		return FetchResult{}, err
	}
	if f.fetch != nil {
		return f.fetch(a)
	}
	return FetchResult{Item: a.Item, Path: a.RelPath(), ContentType: a.ContentType(), Size: 3, SHA256: "00", Data: []byte("png")}, nil
}

// rig is a dispatcher with a fake agent, injected clock and recorded
// audits and replies.
type rig struct {
	d      *Dispatcher
	agent  *fakeAgent
	clk    *clock
	guard  *ReplayGuard
	mu     sync.Mutex
	audits []AuditRecord
}

func newRig(t testing.TB, mod func(*DispatcherOptions)) *rig {
	t.Helper()
	r := &rig{agent: &fakeAgent{}, clk: &clock{now: t0}}
	g, err := OpenReplayGuard("", 8, t0.Add(-time.Hour), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r.guard = g
	o := DispatcherOptions{
		Verifier: testVerifier(t),
		Replay:   g,
		Agent:    r.agent,
		Publish:  func(context.Context, []byte) error { return nil },
		Audit: func(a AuditRecord) {
			r.mu.Lock()
			r.audits = append(r.audits, a)
			r.mu.Unlock()
		},
		Now:            r.clk.Now,
		HandlerTimeout: time.Second,
		Logger:         testLogger(),
	}
	if mod != nil {
		mod(&o)
	}
	d, err := NewDispatcher(o)
	if err != nil {
		t.Fatal(err)
	}
	r.d = d
	return r
}

func (r *rig) Audits() []AuditRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]AuditRecord(nil), r.audits...)
}

func (r *rig) lastAudit(t testing.TB) AuditRecord {
	t.Helper()
	a := r.Audits()
	if len(a) == 0 {
		t.Fatal("no audit record")
	}
	return a[len(a)-1]
}

func describe(rep Reply) string {
	return fmt.Sprintf("id=%q ok=%v code=%s msg=%q result=%s", rep.ID, rep.OK, rep.Code, rep.Message, rep.Result)
}
