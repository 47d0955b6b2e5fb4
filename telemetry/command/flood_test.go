package command

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestOversizeRefusedBeforeCopy (finding 3): the cmd topic handler copied
// the whole payload before refusing it as too large (one 260 MB message
// took the agent to 2.2 GB). Deliver now refuses by size first; the
// refusal is still answered and audited. Measured with runtime.MemStats
// (bytes allocated by Deliver for a 32 MiB message).
func TestOversizeRefusedBeforeCopy(t *testing.T) {
	r := newRig(t, nil)
	big := bytes.Repeat([]byte("x"), 32<<20)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r.d.Deliver(big)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("Deliver of a %d MiB message allocated %d bytes", len(big)>>20, alloc)
	if alloc > 1<<20 {
		t.Fatalf("Deliver of a %d MiB message allocated %d bytes: it was copied", len(big)>>20, alloc)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	replies := make(chan []byte, 1)
	r.d.o.Publish = func(_ context.Context, b []byte) error { replies <- b; return nil }
	go func() { _ = r.d.Run(ctx) }()
	select {
	case b := <-replies:
		rep, err := DecodeReply(b)
		if err != nil || rep.Code != CodeBadRequest || !strings.Contains(rep.Message, "at most") {
			t.Fatalf("reply %s (%v)", b, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an oversize message got no reply")
	}
	if a := r.lastAudit(t); a.Accepted || a.Code != CodeBadRequest || a.PayloadSHA256 == "" {
		t.Fatalf("audit %+v", a)
	}
}

// TestFloodDoesNotCrowdOutCommands (finding 7): 5,000 garbage messages
// filled the shared queue and a genuine signed command that came after
// them was dropped without reply or audit. Refusals no longer take the
// queue of verified commands.
func TestFloodDoesNotCrowdOutCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		var ok []Reply
		r := newRig(t, func(o *DispatcherOptions) {
			o.Publish = func(_ context.Context, b []byte) error {
				rep, err := DecodeReply(b)
				if err == nil && rep.OK {
					mu.Lock()
					ok = append(ok, rep)
					mu.Unlock()
				}
				return nil
			}
		})
		for i := range 5000 {
			forged, _ := mustSign(t, evilKey, testRobot, TypeStatus, nil, t0)
			if i%2 == 0 {
				forged = []byte(`{"schema":"papscan.command/v1","body":"e30=","sig":"x"}`)
			}
			r.d.Deliver(forged)
		}
		msg, c := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
		if !r.d.Deliver(msg) {
			t.Fatal("the genuine command was dropped behind the flood")
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.d.Run(ctx) }()
		synctest.Wait()
		cancel()
		<-done
		if len(ok) != 1 || ok[0].ID != c.ID {
			t.Fatalf("replies ok: %+v, want the genuine command's", ok)
		}
		accepted := 0
		for _, a := range r.Audits() {
			if a.Accepted {
				accepted++
			}
		}
		if accepted != 1 {
			t.Fatalf("%d accepted audit records, want 1", accepted)
		}
	})
}

// limitHandler passes at most 5 records per (level, message), as the
// agent's shared log rate limit does.
type limitHandler struct {
	mu    sync.Mutex
	seen  map[string]int
	lines []slog.Record
}

func (h *limitHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *limitHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := r.Level.String() + "\x00" + r.Message
	if h.seen[k] >= 5 {
		return nil
	}
	h.seen[k]++
	h.lines = append(h.lines, r)
	return nil
}
func (h *limitHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *limitHandler) WithGroup(string) slog.Handler      { return h }

// TestEveryAcceptedCommandLogged (finding 7): accepted commands were
// logged under one constant message, so the agent's log rate limit (5 per
// message per 10 s) hid all but the first few. Each accepted command now
// has its own line.
func TestEveryAcceptedCommandLogged(t *testing.T) {
	h := &limitHandler{seen: map[string]int{}}
	g, err := OpenReplayGuard("", 64, t0.Add(-time.Hour), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(o *DispatcherOptions) { o.Logger = slog.New(h); o.Replay = g })
	ids := map[string]bool{}
	for range 20 {
		msg, c := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
		ids[c.ID] = true
		if rep := r.d.Handle(t.Context(), msg); !rep.OK {
			t.Fatal(describe(rep))
		}
	}
	logged := 0
	for _, rec := range h.lines {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "id" && ids[a.Value.String()] {
				logged++
			}
			return true
		})
	}
	if logged != 20 {
		t.Fatalf("%d of 20 accepted commands logged", logged)
	}
}
