// Real health, durable-delivery result/event, ack and replay messages from
// the outbox validated against the schemas.

package schematest

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/broker"
	"papscan/telemetry/command"
	"papscan/telemetry/result"
)

func TestMergedPayloads(t *testing.T) {
	s := loadSpec(t)
	var ajv ajvSamples
	b, err := broker.Start(context.Background(), "127.0.0.1:0", testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := newRecorder(t, b.URL())
	ctx := t.Context()
	tm, err := telemetry.Dial(ctx, telemetry.Options{Brokers: []string{b.URL()}, RobotID: robot, TopicPrefix: prefix, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close(context.Background())
	rec.waitFor(t, "birth", has(`"online"`))
	if err := tm.PublishHealth(telemetry.Health{UptimeS: 3, Stage: "ready", Temperatures: []telemetry.Temperature{{Zone: "z", Type: "cpu", C: 40}},
		Faults: []telemetry.FaultInfo{{Code: 9, Name: "storage", Device: "disk", Cause: "full"}}, Outbox: telemetry.OutboxInfo{Depth: 2, Session: "s", Floor: 3}}); err != nil {
		t.Fatal(err)
	}
	if err := tm.PublishDelivery(ctx, telemetry.Delivery{Kind: telemetry.KindResult, ID: telemetry.NewID(), SlideID: "S1", Body: mustJSON(sampleResult("S1", true)),
		OutboxSession: telemetry.NewID(), OutboxSeq: 4, OutboxFloor: 2, CommittedAt: time.Now(), Attempt: 2}); err != nil {
		t.Fatal(err)
	}
	if err := tm.PublishDelivery(ctx, telemetry.Delivery{Kind: telemetry.KindEvent, ID: telemetry.NewID(), Event: "storage_full", Body: json.RawMessage(`{"free_mb":1}`),
		OutboxSession: telemetry.NewID(), OutboxSeq: 5, OutboxFloor: 2, CommittedAt: time.Now(), Attempt: 1}); err != nil {
		t.Fatal(err)
	}
	ack, _ := json.Marshal(telemetry.Ack{Schema: telemetry.Schema, Kind: telemetry.KindAck, RobotID: robot, Receiver: "fleet-1", IDs: []string{"a"}})
	rep, _ := json.Marshal(telemetry.Replay{Schema: telemetry.Schema, Kind: telemetry.KindReplay, RobotID: robot, OutboxSession: "s", FromSeq: 2, ToSeq: 5})
	signed := telemetry.Ack{Schema: telemetry.Schema, Kind: telemetry.KindAck, RobotID: robot, Receiver: "fleet-1", IDs: []string{"a", "b"}}
	command.SignAck(command.SigningKey{ID: "lab-receiver", Key: ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))}, &signed)
	signedAck, _ := json.Marshal(signed)
	rec.publish(t, tm.Topics().Ack(), ack)
	rec.publish(t, tm.Topics().Ack(), signedAck)
	rec.publish(t, tm.Topics().Replay(), rep)
	rec.waitFor(t, "all", func(cs []captured) bool { return len(cs) >= 7 })
	for _, c := range rec.all() {
		ch, err := s.channelOf(c.topic)
		if err != nil {
			t.Error(err)
			continue
		}
		if file, err := ch.acceptedBy(c.payload); err != nil {
			t.Errorf("%s: %s\n%v", c.topic, c.payload, err)
		} else {
			t.Logf("ok %s", ch.name)
			ajv.add(file, c.payload)
		}
	}
	if !t.Failed() {
		ajv.check(t)
	}
}

func mustJSON(v any) []byte { b, _ := json.Marshal(v); return b }

// sampleResult is sampleReport on the wire.
func sampleResult(slide string, complete bool) *result.Message {
	r := sampleReport(slide, complete)
	return result.FromReport(&r)
}
