package config

import (
	"encoding/base64"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Commands configures signed commands from the fleet (agent.commands).
// The robot accepts a command only if it is signed by one of the fleet
// keys, names this robot, is at most MaxAge old (ClockSkew ahead at most)
// and its nonce was never seen (see package telemetry/command).
type Commands struct {
	// FleetKeys are the trusted fleet Ed25519 public keys, each
	// "<key_id>:<standard base64 of the 32-byte key>" (what
	// `papscan-fleet keygen` prints). None here and no FleetKeysFile:
	// every command is refused.
	FleetKeys []string `yaml:"fleet_keys"`
	// FleetKeysFile is an absolute path to a file with more keys, one
	// "<key_id>:<base64>" per line ('#' comments); "" = none.
	FleetKeysFile string `yaml:"fleet_keys_file"`
	// MaxAge is how old (issued_at) a command may be when it arrives.
	MaxAge Duration `yaml:"max_age"`
	// ClockSkew is how far in the future issued_at may be.
	ClockSkew Duration `yaml:"clock_skew"`
	// HandlerTimeout bounds the agent's work on one command.
	HandlerTimeout Duration `yaml:"handler_timeout"`
	// MaxFetchBytes bounds a file sent back by a fetch command.
	MaxFetchBytes int `yaml:"max_fetch_bytes"`
}

var fleetKeyIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// maxFleetKeys is the most keys a robot trusts in one role (fleet_keys plus
// file; ack_keys).
const maxFleetKeys = 16

// validateCommands checks agent.commands. The key file's contents are
// checked when the agent loads it (it may be provisioned separately).
func (c *Config) validateCommands(v *validator) {
	m := &c.Agent.Commands
	validateKeyList(v, "agent.commands.fleet_keys", m.FleetKeys)
	if m.FleetKeysFile != "" && !filepath.IsAbs(m.FleetKeysFile) {
		v.add("agent.commands.fleet_keys_file", "must be an absolute path, got %q", m.FleetKeysFile)
	}
	inRange(v, "agent.commands.max_age", m.MaxAge, Duration(5*time.Second), Duration(time.Hour), false, false, fmtDur)
	inRange(v, "agent.commands.clock_skew", m.ClockSkew, 0, Duration(10*time.Minute), false, false, fmtDur)
	inRange(v, "agent.commands.handler_timeout", m.HandlerTimeout, Duration(time.Second), Duration(10*time.Minute), false, false, fmtDur)
	inRange(v, "agent.commands.max_fetch_bytes", m.MaxFetchBytes, 1<<10, 64<<20, false, false, func(n int) string { return fmt.Sprint(n) })
}

// validateKeyList checks a list of at most maxFleetKeys
// "<key_id>:<base64 Ed25519 public key>" entries at path
// (agent.commands.fleet_keys, agent.mqtt.ack_keys).
func validateKeyList(v *validator, path string, keys []string) {
	if len(keys) > maxFleetKeys {
		v.add(path, "at most %d keys, got %d", maxFleetKeys, len(keys))
	}
	ids := map[string]bool{}
	for i, k := range keys {
		at := fmt.Sprintf("%s[%d]", path, i)
		id, enc, ok := strings.Cut(strings.TrimSpace(k), ":")
		if !ok || !fleetKeyIDRe.MatchString(id) {
			v.add(at, "want \"<key_id>:<base64 Ed25519 public key>\" with key_id 1..64 of [A-Za-z0-9._-], got %q", k)
			continue
		}
		if raw, err := base64.StdEncoding.Strict().DecodeString(enc); err != nil || len(raw) != 32 {
			v.add(at, "key %q: want the standard base64 (padded) of a 32-byte Ed25519 public key", id)
		}
		if ids[id] {
			v.add(at, "key ID %q listed twice", id)
		}
		ids[id] = true
	}
}
