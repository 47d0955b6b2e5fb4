package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	config "papscan/firmware-config"
)

// TestConfigCheckRefusesWhatAgentRefuses (finding 8): `config check`
// passed a state_dir that is a file (/etc/passwd) and a missing
// password_file, which the agent then refused at start (exit 1, storage
// fault 9 on the panel), and said nothing about credentials sent in clear
// text to a tcp:// broker.
func TestConfigCheckRefusesWhatAgentRefuses(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mod func(c *config.Config)) string {
		c, err := config.Profile("sim")
		if err != nil {
			t.Fatal(err)
		}
		c.Agent.StateDir = filepath.Join(dir, "state")
		mod(c)
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name+".yaml")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := filepath.Join(dir, "mqtt-password")
	if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(c *config.Config)
		want string
	}{
		{"state dir is a file", func(c *config.Config) { c.Agent.StateDir = "/etc/passwd" }, "agent.state_dir"},
		{"missing password file", func(c *config.Config) {
			c.Agent.MQTT.Brokers = []string{"ssl://127.0.0.1:8883"}
			c.Agent.MQTT.TLS.CAFile = filepath.Join(dir, "ca.pem")
			c.Agent.MQTT.Username, c.Agent.MQTT.PasswordFile = "robot", filepath.Join(dir, "nope")
		}, "agent.mqtt.password_file"},
		{"missing ack key file", func(c *config.Config) { c.Agent.MQTT.AckKeysFile = filepath.Join(dir, "ack-keys") }, "agent.mqtt.ack_keys_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, "config", "check", write(strings.ReplaceAll(tc.name, " ", "-"), tc.mod))
			if code != exitConfig || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %s named)", code, exitConfig, stderr, tc.want)
			}
		})
	}
	plain := write("plain", func(c *config.Config) {
		c.Agent.MQTT.Brokers = []string{"tcp://mqtt.lab:1883"}
		c.Agent.MQTT.Username, c.Agent.MQTT.PasswordFile = "robot", pw
	})
	code, out, stderr := runCmd(t, "config", "check", plain)
	if code != exitOK || !strings.Contains(out, "ok") || !strings.Contains(stderr, "warning") || !strings.Contains(stderr, "agent.mqtt.brokers[0]") {
		t.Fatalf("plaintext broker with credentials: exit %d, stdout %q, stderr %q (want ok and a warning)", code, out, stderr)
	}
}

// TestConfigCheckReportsEveryProblem: `config check` on a file with three
// problems prints three lines, each naming the file, line and key, and a
// misspelt key gets a "did you mean".
func TestConfigCheckReportsEveryProblem(t *testing.T) {
	p := filepath.Join(t.TempDir(), "robot.yaml")
	in := "machine:\n  axes:\n    x:\n      max_sped: 20mm/s\n      max_speed: 500mm/s\n  camera:\n    width: wide\n"
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "config", "check", p)
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if code != exitConfig || len(lines) != 3 {
		t.Fatalf("exit %d (want %d), %d lines (want 3):\n%s", code, exitConfig, len(lines), stderr)
	}
	for i, w := range []string{p + ":4: machine.axes.x.max_sped: unknown key; did you mean \"max_speed\"?", p + ":5: machine.axes.x.max_speed:", p + ":7: machine.camera.width:"} {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i], w)
		}
	}
}
