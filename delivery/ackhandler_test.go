package delivery

import (
	"bytes"
	"crypto/rand"
	"log/slog"
	"strings"
	"testing"

	"papscan/telemetry"
	fleetcmd "papscan/telemetry/command"
)

// TestAckHandlerRefusesUnsignedAcks: with receiver keys configured only
// acks signed by them reach the outbox; a forged or unsigned ack is logged
// and its results stay.
func TestAckHandlerRefusesUnsignedAcks(t *testing.T) {
	recv, err := fleetcmd.GenerateKey(rand.Reader, "lab-receiver")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := fleetcmd.GenerateKey(rand.Reader, "lab-receiver")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	var got [][]string
	h, err := ackHandler([]string{recv.Public().String()}, log, func(a telemetry.Ack) { got = append(got, a.IDs) })
	if err != nil {
		t.Fatal(err)
	}
	ack := func(k *fleetcmd.SigningKey, ids ...string) telemetry.Ack {
		a := telemetry.Ack{Schema: telemetry.Schema, Kind: telemetry.KindAck, RobotID: "r-1", Receiver: "fleet", IDs: ids}
		if k != nil {
			fleetcmd.SignAck(*k, &a)
		}
		return a
	}
	h(ack(nil, "res-1"))
	h(ack(&rogue, "res-2"))
	h(ack(&recv, "res-3"))
	if len(got) != 1 || got[0][0] != "res-3" {
		t.Errorf("acks that reached the outbox: %v, want only [res-3]", got)
	}
	if n := strings.Count(logs.String(), "refusing a fleet ack"); n != 2 {
		t.Errorf("%d refusals logged, want 2:\n%s", n, logs.String())
	}

	// Without keys every ack passes, and the log says so once.
	logs.Reset()
	got = nil
	h, err = ackHandler(nil, log, func(a telemetry.Ack) { got = append(got, a.IDs) })
	if err != nil {
		t.Fatal(err)
	}
	h(ack(nil, "res-4"))
	if len(got) != 1 || !strings.Contains(logs.String(), "not signature-checked") {
		t.Errorf("no keys: passed %v, log %s", got, logs.String())
	}
	if _, err := ackHandler([]string{"bad"}, log, nil); err == nil || !strings.Contains(err.Error(), "agent.mqtt.ack_keys") {
		t.Errorf("bad key: %v", err)
	}
}
