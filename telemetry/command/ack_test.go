package command

import (
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"

	"papscan/telemetry"
)

func TestSignedAcks(t *testing.T) {
	recv, err := GenerateKey(rand.Reader, "receiver-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateKey(rand.Reader, "receiver-1") // same ID, another key
	if err != nil {
		t.Fatal(err)
	}
	ring, err := NewKeyRing(recv.Public())
	if err != nil {
		t.Fatal(err)
	}
	signed := func(k SigningKey, robot string, ids ...string) telemetry.Ack {
		a := telemetry.Ack{Schema: telemetry.Schema, Kind: telemetry.KindAck, RobotID: robot, Receiver: "fleet-1", IDs: ids}
		SignAck(k, &a)
		return a
	}
	good := signed(recv, "r-1", "res-1", "ev-2")
	// The signed ack survives the wire.
	b := mustJSON(t, good)
	dec, err := telemetry.DecodeAck("r-1", b)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := ring.VerifyAck(dec); err != nil || id != "receiver-1" {
		t.Fatalf("good ack: %q %v", id, err)
	}

	moreIDs := good
	moreIDs.IDs = append([]string{"res-0"}, good.IDs...)
	joined := good
	joined.IDs = []string{"res-1\x00ev-2"} // cannot pass DecodeAck; must not verify either
	otherRobot := good
	otherRobot.RobotID = "r-2"
	otherRecv := good
	otherRecv.Receiver = "fleet-2"
	unsigned := good
	unsigned.KeyID, unsigned.Sig = "", ""
	unknown := good
	unknown.KeyID = "nobody"
	for name, tc := range map[string]struct {
		a    telemetry.Ack
		want string
	}{
		"more ids":            {moreIDs, "does not verify"},
		"ids joined":          {joined, "does not verify"},
		"other robot":         {otherRobot, "does not verify"},
		"other receiver":      {otherRecv, "does not verify"},
		"unsigned":            {unsigned, "not signed"},
		"unknown key":         {unknown, "unknown key_id"},
		"forged, same key id": {signed(other, "r-1", "res-1", "ev-2"), "does not verify"},
	} {
		if _, err := ring.VerifyAck(tc.a); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
	if _, err := (&KeyRing{}).VerifyAck(good); err == nil {
		t.Error("an empty ring verified an ack")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
