package fleet_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/broker"
	"papscan/telemetry/fleet"
	"papscan/telemetry/outbox"
)

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// TestEndToEnd: robot outbox -> embedded broker -> fleet receiver -> ack ->
// outbox empty; a restarted receiver acks duplicates without storing them
// twice; list shows what it holds.
func TestEndToEnd(t *testing.T) {
	b, err := broker.Start(context.Background(), "127.0.0.1:0", logger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	store, err := fleet.OpenStore(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	stored := make(chan fleet.Record, 100)
	rcv, err := fleet.Start(ctx, store, fleet.Options{Brokers: []string{b.URL()}, Logger: logger(),
		OnStored: func(rs []fleet.Record) {
			for _, r := range rs {
				stored <- r
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer rcv.Close()

	ob, err := outbox.Open(filepath.Join(dir, "robot", "outbox.db"), outbox.Options{Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	// Committed before the client even exists: replayed at start.
	first, err := ob.PutResult("S-1", telemetry.NewID(), []byte(`{"verdict":"NILM"}`))
	if err != nil {
		t.Fatal(err)
	}
	snd := outbox.NewSender(ob, outbox.SenderOptions{AckTimeout: 5 * time.Second, Logger: logger()})
	tm, err := telemetry.Dial(ctx, telemetry.Options{
		Brokers: []string{b.URL()}, RobotID: "r1", Logger: logger(),
		OnAck: snd.HandleAck, OnReplay: snd.HandleReplay, OnConnected: snd.Reconnected, UnsignedFleet: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close(context.Background())
	sctx, stop := context.WithCancel(ctx)
	sdone := make(chan struct{})
	go func() { defer close(sdone); _ = snd.Run(sctx, tm) }()
	defer func() { stop(); <-sdone }()

	ev, err := ob.PutEvent("magazine_done", map[string]int{"slides": 1})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]fleet.Record{}
	for len(got) < 2 {
		select {
		case r := <-stored:
			got[r.ID] = r
		case <-ctx.Done():
			t.Fatalf("fleet stored %d of 2", len(got))
		}
	}
	if r := got[first.ID]; r.RobotID != "r1" || r.SlideID != "S-1" || r.Seq != 1 || r.OutboxSession != ob.Session() {
		t.Fatalf("result record %+v", r)
	}
	if r := got[ev.ID]; r.Kind != "event" || r.Event != "magazine_done" || r.Seq != 2 {
		t.Fatalf("event record %+v", r)
	}
	for ob.Depth() != 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("outbox depth %d: acks not applied", ob.Depth())
		case <-time.After(10 * time.Millisecond):
		}
	}
	n := 0
	if err := store.List("r1", func(r fleet.Record) error { n++; return nil }); err != nil || n != 2 {
		t.Fatalf("list: %d %v", n, err)
	}
	if gaps, err := store.Gaps(); err != nil || len(gaps) != 0 {
		t.Fatalf("gaps %v %v", gaps, err)
	}
	t.Logf("sender %+v receiver %+v", snd.Stats(), rcv.Stats())
}

// TestGapReplay: a result the fleet never saw (seq 2 published to nobody)
// is detected from seq 3 and replayed on request.
func TestGapDetection(t *testing.T) {
	dir := t.TempDir()
	store, err := fleet.OpenStore(filepath.Join(dir, "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, seq := range []uint64{1, 2, 5, 4} {
		if err := fleet.CommitForTest(store, "r1", "sess", fmt.Sprintf("id%d", seq), seq, 1); err != nil {
			t.Fatal(err)
		}
	}
	gaps, _ := store.Gaps()
	if len(gaps) != 1 || gaps[0].From != 3 || gaps[0].To != 3 {
		t.Fatalf("gaps %+v, want 3..3", gaps)
	}
	// The robot's floor says everything below 4 was acked elsewhere.
	if err := fleet.CommitForTest(store, "r1", "sess", "id6", 6, 4); err != nil {
		t.Fatal(err)
	}
	if gaps, _ := store.Gaps(); len(gaps) != 0 {
		t.Fatalf("gaps %+v after floor 4", gaps)
	}
}
