package telemetry_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/command"
)

// TestForgedAckRefusedByDefault (finding 1): a client that wants acks
// (OnAck, as the outbox sender does) and says nothing about signatures
// must not let an unsigned ack through. On the code before the fix the
// forged ack reached OnAck (the outbox dropped the result).
func TestForgedAckRefusedByDefault(t *testing.T) {
	b := startBroker(t)
	acks := make(chan telemetry.Ack, 4)
	subscribed := make(chan struct{})
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	c, err := telemetry.Dial(ctx, telemetry.Options{
		Brokers: []string{b.URL()}, RobotID: "r-forge", ConnectTimeout: 5 * time.Second, PublishTimeout: 5 * time.Second,
		Logger:      testLogger(),
		OnAck:       func(a telemetry.Ack) { acks <- a },
		OnConnected: func() { close(subscribed) },
	})
	if err != nil {
		if !strings.Contains(err.Error(), "FleetAuth") {
			t.Fatalf("refused for the wrong reason: %v", err)
		}
		return // refused: acks are verified by default
	}
	defer c.Close(context.Background())
	<-subscribed
	publishRaw(t, b.URL(), "papscan/r-forge/ack", []byte(`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r-forge","ids":["victim"]}`))
	select {
	case a := <-acks:
		t.Fatalf("an unsigned (forged) ack reached OnAck: %+v", a)
	case <-time.After(time.Second):
	}
}

// TestFleetAuthSignedOnly: with FleetAuth, only acks and replay requests
// signed by a trusted receiver key reach the handlers; unsigned ones,
// ones signed by another key and tampered ones are refused and counted.
func TestFleetAuthSignedOnly(t *testing.T) {
	b := startBroker(t)
	good, err := command.GenerateKey(nil, "fleet-1")
	if err != nil {
		t.Fatal(err)
	}
	evil, err := command.GenerateKey(nil, "fleet-1") // same ID, other key
	if err != nil {
		t.Fatal(err)
	}
	ring, err := command.NewKeyRing(good.Public())
	if err != nil {
		t.Fatal(err)
	}
	acks := make(chan telemetry.Ack, 16)
	replays := make(chan telemetry.Replay, 16)
	subscribed := make(chan struct{})
	c := dial(t, b.URL(), "r-auth", func(o *telemetry.Options) {
		o.FleetAuth = ring
		o.OnAck = func(a telemetry.Ack) { acks <- a }
		o.OnReplay = func(r telemetry.Replay) { replays <- r }
		o.OnConnected = func() { close(subscribed) }
	})
	<-subscribed
	ack := func(ids ...string) telemetry.Ack {
		return telemetry.Ack{Schema: telemetry.Schema, Kind: telemetry.KindAck, RobotID: "r-auth", Receiver: "fleet", IDs: ids}
	}
	replay := func(from, to uint64) telemetry.Replay {
		return telemetry.Replay{Schema: telemetry.Schema, Kind: telemetry.KindReplay, RobotID: "r-auth", Receiver: "fleet", OutboxSession: "s1", FromSeq: from, ToSeq: to}
	}
	send := func(topic string, v any) {
		p, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		publishRaw(t, b.URL(), topic, p)
	}
	unsigned := ack("a1")
	forged := ack("a2")
	command.SignAck(evil, &forged)
	tampered := ack("a3")
	command.SignAck(good, &tampered)
	tampered.IDs = []string{"a3", "victim"}
	valid := ack("ok")
	command.SignAck(good, &valid)
	for _, a := range []telemetry.Ack{unsigned, forged, tampered, valid} {
		send("papscan/r-auth/ack", a)
	}
	rUnsigned := replay(1, 0)
	rTampered := replay(1, 2)
	command.SignReplay(good, &rTampered)
	rTampered.ToSeq = 0
	rValid := replay(3, 4)
	command.SignReplay(good, &rValid)
	for _, r := range []telemetry.Replay{rUnsigned, rTampered, rValid} {
		send("papscan/r-auth/replay", r)
	}
	select {
	case a := <-acks:
		if len(a.IDs) != 1 || a.IDs[0] != "ok" {
			t.Fatalf("ack %+v reached OnAck", a)
		}
	case <-time.After(wait):
		t.Fatal("the signed ack did not arrive")
	}
	select {
	case r := <-replays:
		if r.FromSeq != 3 || r.ToSeq != 4 {
			t.Fatalf("replay %+v reached OnReplay", r)
		}
	case <-time.After(wait):
		t.Fatal("the signed replay did not arrive")
	}
	deadline := time.Now().Add(wait)
	for c.RefusedFleetMessages() < 5 && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if n := c.RefusedFleetMessages(); n != 5 {
		t.Fatalf("refused %d messages, want 5", n)
	}
	select {
	case a := <-acks:
		t.Fatalf("unexpected ack %+v", a)
	case r := <-replays:
		t.Fatalf("unexpected replay %+v", r)
	default:
	}
}
