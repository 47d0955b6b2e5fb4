package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/broker"
	"papscan/telemetry/outbox"
)

func TestUsage(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{nil, {"nope"}, {"run"}, {"run", "--bogus"}} {
		if code := run(t.Context(), args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	errb.Reset()
	if code := run(t.Context(), []string{"run", "--broker", "tcp://127.0.0.1:1", "--ack-key", filepath.Join(t.TempDir(), "absent.pem")}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--ack-key") {
		t.Errorf("unreadable --ack-key: exit %d, %s", code, errb.String())
	}
	if code := run(t.Context(), []string{"list", "--db", filepath.Join(t.TempDir(), "absent.db")}, &out, &errb); code != 1 {
		t.Errorf("list of a missing store: exit %d, want 1", code)
	}
}

// TestRunAndList: `papscan-fleet run` stores a robot's result and acks it
// (the robot's outbox empties); `list` shows it.
func TestRunAndList(t *testing.T) {
	b, err := broker.Start(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "fleet.db")
	ctx, cancel := context.WithCancel(t.Context())
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"run", "--broker", b.URL(), "--db", db, "--log-level", "warn"}, &out, &errb)
	}()

	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	id := telemetry.NewID()
	if _, err := ob.PutResult("M0001-S00", id, []byte(`{"verdict":"NILM"}`)); err != nil {
		t.Fatal(err)
	}
	snd := outbox.NewSender(ob, outbox.SenderOptions{AckTimeout: time.Second}) // resent if the receiver subscribed late
	tctx, tcancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer tcancel()
	tm, err := telemetry.Dial(tctx, telemetry.Options{Brokers: []string{b.URL()}, RobotID: "r9",
		OnAck: snd.HandleAck, OnReplay: snd.HandleReplay, OnConnected: snd.Reconnected, UnsignedFleet: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close(context.Background())
	go func() { _ = snd.Run(tctx, tm) }()
	for ob.Depth() != 0 {
		select {
		case <-tctx.Done():
			t.Fatal("the fleet never acked")
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("run exit %d: %s", code, errb.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"list", "--db", db}, &out, &errb); code != 0 {
		t.Fatalf("list exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), id) || !strings.Contains(out.String(), "M0001-S00") || !strings.Contains(out.String(), "1 records") {
		t.Fatalf("list output:\n%s", out.String())
	}
}
