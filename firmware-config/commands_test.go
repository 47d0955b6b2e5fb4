package config

import (
	"strings"
	"testing"
)

const testFleetKey = "fleet-a:ihxKXhXDhKbBP7dZyWc7VNCPQkSNmAVdr1QRYeJtYJk="

func TestCommandsRules(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"key format", "agent: {commands: {fleet_keys: ['nocolon']}}", `agent.commands.fleet_keys[0]: want "<key_id>:<base64 Ed25519 public key>"`},
		{"key id", "agent: {commands: {fleet_keys: ['a b:ihxKXhXDhKbBP7dZyWc7VNCPQkSNmAVdr1QRYeJtYJk=']}}", `agent.commands.fleet_keys[0]: want`},
		{"key short", "agent: {commands: {fleet_keys: ['k:AAAA']}}", `agent.commands.fleet_keys[0]: key "k": want the standard base64`},
		{"key unpadded", "agent: {commands: {fleet_keys: ['k:ihxKXhXDhKbBP7dZyWc7VNCPQkSNmAVdr1QRYeJtYJk']}}", `key "k": want the standard base64`},
		{"key twice", "agent: {commands: {fleet_keys: ['" + testFleetKey + "', '" + testFleetKey + "']}}", `agent.commands.fleet_keys[1]: key ID "fleet-a" listed twice`},
		{"key file relative", "agent: {commands: {fleet_keys_file: keys.txt}}", `agent.commands.fleet_keys_file: must be an absolute path`},
		{"max age", "agent: {commands: {max_age: 2s}}", `agent.commands.max_age: must be in [5s, 1h0m0s], got 2s`},
		{"clock skew", "agent: {commands: {clock_skew: 11m}}", `agent.commands.clock_skew: must be in [0, 10m0s], got 11m0s`},
		{"handler timeout", "agent: {commands: {handler_timeout: 100ms}}", `agent.commands.handler_timeout: must be in [1s, 10m0s]`},
		{"max fetch", "agent: {commands: {max_fetch_bytes: 100}}", `agent.commands.max_fetch_bytes: must be in [1024, 67108864], got 100`},
		{"unknown key", "agent: {commands: {public_key: x}}", `public_key`},
		{"ack key format", "agent: {mqtt: {ack_keys: ['nocolon']}}", `agent.mqtt.ack_keys[0]: want "<key_id>:<base64 Ed25519 public key>"`},
		{"ack key short", "agent: {mqtt: {ack_keys: ['k:AAAA']}}", `agent.mqtt.ack_keys[0]: key "k": want the standard base64`},
		{"ack key twice", "agent: {mqtt: {ack_keys: ['" + testFleetKey + "', '" + testFleetKey + "']}}", `agent.mqtt.ack_keys[1]: key ID "fleet-a" listed twice`},
	} {
		_, err := Parse([]byte(tc.yaml), "t.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v\nwant %q", tc.name, err, tc.want)
		}
	}
	c, err := Parse([]byte("agent: {commands: {fleet_keys: ['"+testFleetKey+"'], fleet_keys_file: /etc/papscan/fleet-keys, max_age: 5m}}"), "t.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if k := c.Agent.Commands; len(k.FleetKeys) != 1 || k.MaxAge.D().Minutes() != 5 || k.ClockSkew.D().Seconds() != 30 {
		t.Errorf("parsed %+v", k)
	}
	c.Agent.MQTT.AckKeys = []string{testFleetKey}
	d := c.Clone()
	d.Agent.MQTT.AckKeys[0] = "x"
	if c.Agent.MQTT.AckKeys[0] != testFleetKey {
		t.Error("Clone shares ack_keys")
	}
	d.Agent.Commands.FleetKeys[0] = "x"
	if c.Agent.Commands.FleetKeys[0] != testFleetKey {
		t.Error("Clone shares fleet_keys")
	}
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data, "round trip")
	if err != nil || back.Agent.Commands.FleetKeys[0] != testFleetKey || back.Agent.Commands.MaxFetchBytes != 4<<20 {
		t.Fatalf("round trip: %v", err)
	}
}
