package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, path string, mod func(*outbox.Options)) *outbox.Outbox {
	t.Helper()
	o := outbox.Options{MinFreeBytes: -1, Logger: quiet()}
	if mod != nil {
		mod(&o)
	}
	ob, err := outbox.Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

func TestPutAckPersist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	ob := open(t, path, nil)
	session := ob.Session()
	var ids []string
	for i := range 5 {
		e, err := ob.PutResult(fmt.Sprintf("S%d", i), telemetry.NewID(), []byte(`{"n":1}`))
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != uint64(i+1) {
			t.Fatalf("seq %d, want %d", e.Seq, i+1)
		}
		ids = append(ids, e.ID)
	}
	// Idempotent retry of the same ID.
	if e, err := ob.PutResult("S0", ids[0], []byte(`{"n":2}`)); err != nil || e.Seq != 1 {
		t.Fatalf("re-put: %+v %v", e, err)
	}
	if n, err := ob.Ack(ids[0], ids[2], "unknown"); err != nil || n != 2 {
		t.Fatalf("ack: %d %v", n, err)
	}
	if ob.Depth() != 3 || ob.Floor() != 2 {
		t.Fatalf("depth %d floor %d", ob.Depth(), ob.Floor())
	}
	ob.Close()

	ob2 := open(t, path, nil)
	if ob2.Session() != session || ob2.Depth() != 3 || ob2.Floor() != 2 {
		t.Fatalf("reopen: session %s depth %d floor %d", ob2.Session(), ob2.Depth(), ob2.Floor())
	}
	p, err := ob2.Pending(0, 10)
	if err != nil || len(p) != 3 || p[0].Seq != 2 || p[1].Seq != 4 || p[2].ID != ids[4] {
		t.Fatalf("pending %+v %v", p, err)
	}
	e, err := ob2.PutEvent("magazine_done", map[string]int{"slides": 5})
	if err != nil || e.Seq != 6 {
		t.Fatalf("seq continues across restarts: %+v %v", e, err)
	}
}

func TestFreshFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "outbox.db")
	// A leftover of a crash during an earlier creation is discarded.
	if err := os.WriteFile(path+".new", []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	ob := open(t, path, nil)
	if ob.Depth() != 0 {
		t.Fatal("not empty")
	}
	if _, err := os.Stat(path + ".new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
}

func TestAdmitFull(t *testing.T) {
	var mu sync.Mutex
	free := uint64(1 << 30)
	ob := open(t, filepath.Join(t.TempDir(), "outbox.db"), func(o *outbox.Options) {
		o.MinFreeBytes = 1 << 20
		o.FreeSpace = func(string) (uint64, error) { mu.Lock(); defer mu.Unlock(); return free, nil }
	})
	if err := ob.Admit(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	free = 1000
	mu.Unlock()
	err := ob.Admit()
	if !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("Admit with 1000 bytes free: %v, want ErrFull", err)
	}
}

func TestPutOnFullTmpfs(t *testing.T) {
	dir := mountTmpfs(t, "256k")
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MinFreeBytes: 64 << 10, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	body := []byte(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 4000)))
	var committed []string
	var putErr error
	for i := 0; i < 1000; i++ {
		e, err := ob.PutResult(fmt.Sprintf("S%d", i), telemetry.NewID(), body)
		if err != nil {
			putErr = err
			break
		}
		committed = append(committed, e.ID)
	}
	if !errors.Is(putErr, outbox.ErrFull) {
		t.Fatalf("Put on a full tmpfs: %v, want ErrFull", putErr)
	}
	if err := ob.Admit(); !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("Admit after ENOSPC: %v", err)
	}
	t.Logf("%d results committed before ENOSPC: %v", len(committed), putErr)
	if ob.Depth() != len(committed) {
		t.Fatalf("depth %d, committed %d", ob.Depth(), len(committed))
	}
	ob.Close()
	ob2, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MinFreeBytes: -1, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer ob2.Close()
	p, err := ob2.Pending(0, 10000)
	if err != nil || len(p) != len(committed) {
		t.Fatalf("after reopen %d entries (%v), committed %d", len(p), err, len(committed))
	}
	for i, e := range p {
		if e.ID != committed[i] {
			t.Fatalf("entry %d: %s, want %s", i, e.ID, committed[i])
		}
	}
}

// fakePub records deliveries and can be switched off.
type fakePub struct {
	mu   sync.Mutex
	up   bool
	got  []telemetry.Delivery
	sent chan telemetry.Delivery
}

func (f *fakePub) PublishDelivery(_ context.Context, d telemetry.Delivery) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.up {
		return telemetry.ErrNotAcked
	}
	f.got = append(f.got, d)
	f.sent <- d
	return nil
}

func (f *fakePub) Connected() bool { f.mu.Lock(); defer f.mu.Unlock(); return f.up }

func TestSenderAckReplayTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ob := open(t, filepath.Join(t.TempDir(), "outbox.db"), nil)
		var ids []string
		for i := range 3 {
			e, err := ob.PutResult(fmt.Sprintf("S%d", i), telemetry.NewID(), []byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, e.ID)
		}
		s := outbox.NewSender(ob, outbox.SenderOptions{Window: 2, AckTimeout: 10 * time.Second, Logger: quiet()})
		pub := &fakePub{up: true, sent: make(chan telemetry.Delivery, 100)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- s.Run(ctx, pub) }()

		// Window 2: seq 1 and 2 go out at start, then it waits.
		d1, d2 := <-pub.sent, <-pub.sent
		synctest.Wait()
		if len(pub.sent) != 0 || d1.OutboxSeq != 1 || d2.OutboxSeq != 2 || d1.Attempt != 1 || d1.OutboxFloor != 1 {
			t.Fatalf("first window: %+v %+v (+%d)", d1, d2, len(pub.sent))
		}
		s.HandleAck(telemetry.Ack{IDs: []string{ids[0]}})
		if d := <-pub.sent; d.OutboxSeq != 3 || d.OutboxFloor != 2 {
			t.Fatalf("after ack: %+v", d)
		}
		synctest.Wait()
		if ob.Depth() != 2 {
			t.Fatalf("depth %d", ob.Depth())
		}
		// No ack for 10 s: 2 and 3 go again.
		time.Sleep(10 * time.Second)
		if a, b := <-pub.sent, <-pub.sent; a.OutboxSeq != 2 || b.OutboxSeq != 3 || a.Attempt != 2 {
			t.Fatalf("after ack timeout: %+v %+v", a, b)
		}
		// A replay request from seq 3.
		s.HandleReplay(telemetry.Replay{OutboxSession: ob.Session(), FromSeq: 3})
		if d := <-pub.sent; d.OutboxSeq != 3 || d.Attempt != 3 {
			t.Fatalf("replay: %+v", d)
		}
		// Link down: a new entry waits; reconnect replays everything.
		pub.mu.Lock()
		pub.up = false
		pub.mu.Unlock()
		e4, _ := ob.PutEvent("magazine_done", nil)
		synctest.Wait()
		pub.mu.Lock()
		pub.up = true
		pub.mu.Unlock()
		s.Reconnected()
		a, b := <-pub.sent, <-pub.sent
		if a.OutboxSeq != 2 || b.OutboxSeq != 3 {
			t.Fatalf("after reconnect: %d %d", a.OutboxSeq, b.OutboxSeq)
		}
		s.HandleAck(telemetry.Ack{IDs: []string{ids[1], ids[2]}})
		if d := <-pub.sent; d.OutboxSeq != 4 || d.ID != e4.ID || d.Kind != telemetry.KindEvent {
			t.Fatalf("event: %+v", d)
		}
		s.HandleAck(telemetry.Ack{IDs: []string{e4.ID}})
		synctest.Wait()
		if ob.Depth() != 0 {
			t.Fatalf("depth %d after all acks", ob.Depth())
		}
		st := s.Stats()
		if st.Acked != 4 || st.AckTimeouts != 1 || st.Replays != 1 {
			t.Fatalf("stats %+v", st)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}
