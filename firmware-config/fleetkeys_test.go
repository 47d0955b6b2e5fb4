package config

import (
	"strings"
	"testing"
)

// TestRealRobotNeedsAckKeys (finding 1): a real robot (not the simulated
// machine) with brokers and no trusted receiver keys would take any
// well-formed ack on its ack topic as the fleet's word and delete the
// result: validation refuses it, naming agent.mqtt.ack_keys. Before the
// fix papscan-r2 with its empty ack_keys validated.
func TestRealRobotNeedsAckKeys(t *testing.T) {
	base := mustProfile(t, "papscan-r2")
	base.Agent.MQTT.AckKeys = nil
	base.Agent.MQTT.AckKeysFile = ""
	err := base.Validate()
	if err == nil || !strings.Contains(err.Error(), "agent.mqtt.ack_keys: required") {
		t.Fatalf("r2 with brokers and no ack keys: %v, want agent.mqtt.ack_keys: required", err)
	}
	// With a key (or a key file) it validates.
	withKey := base.Clone()
	withKey.Agent.MQTT.AckKeys = []string{testFleetKey}
	if err := withKey.Validate(); err != nil {
		t.Fatalf("r2 with an ack key: %v", err)
	}
	// No brokers: nothing to ack, nothing to check.
	noBroker := base.Clone()
	noBroker.Agent.MQTT.Brokers = nil
	if err := noBroker.Validate(); err != nil {
		t.Fatalf("r2 without brokers: %v", err)
	}
	// The simulated machine may run unsigned (the agent says so loudly).
	sim := mustProfile(t, "sim")
	sim.Agent.MQTT.Brokers = []string{"tcp://127.0.0.1:1883"}
	if err := sim.Validate(); err != nil {
		t.Fatalf("sim with a broker and no ack keys: %v", err)
	}
}
