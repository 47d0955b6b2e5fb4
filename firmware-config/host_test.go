package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckHost: the host checks name each key the agent would refuse at
// start, and pass a configuration whose files are in place.
func TestCheckHost(t *testing.T) {
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := func() *Config {
		c := mustProfile(t, "sim")
		c.Agent.StateDir = filepath.Join(dir, "state", "sub") // created by the agent
		return c
	}
	if err := base().CheckHost(); err != nil {
		t.Fatalf("sim with a creatable state dir: %v", err)
	}
	keys := file("keys", "# site keys\n"+testFleetKey+"\n")
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"state dir is a file", func(c *Config) { c.Agent.StateDir = keys }, "agent.state_dir: " + keys + " is not a directory"},
		{"state dir under a file", func(c *Config) { c.Agent.StateDir = filepath.Join(keys, "x") }, "agent.state_dir: " + filepath.Join(keys, "x") + " cannot be created"},
		{"password missing", func(c *Config) { c.Agent.MQTT.PasswordFile = filepath.Join(dir, "none") }, "agent.mqtt.password_file: stat"},
		{"password empty", func(c *Config) { c.Agent.MQTT.PasswordFile = file("pw", "\n") }, "agent.mqtt.password_file: " + filepath.Join(dir, "pw") + " is empty"},
		{"ca not PEM", func(c *Config) { c.Agent.MQTT.TLS.CAFile = file("ca", "hello") }, "agent.mqtt.tls.ca_file: " + filepath.Join(dir, "ca") + " holds no PEM certificate"},
		{"cert pair", func(c *Config) { c.Agent.MQTT.TLS.CertFile, c.Agent.MQTT.TLS.KeyFile = file("c", "x"), file("k", "y") }, "agent.mqtt.tls.cert_file"},
		{"fleet key file bad line", func(c *Config) { c.Agent.Commands.FleetKeysFile = file("fk", "k:AAAA\n") }, "agent.commands.fleet_keys_file: " + filepath.Join(dir, "fk") + " line 1"},
		{"ack key file empty", func(c *Config) { c.Agent.MQTT.AckKeysFile = file("ak", "# none yet\n") }, "agent.mqtt.ack_keys_file: " + filepath.Join(dir, "ak") + " holds no key"},
		{"real robot without broker", func(c *Config) { c.Machine.I2CBus = "/dev/i2c-1" }, "agent.mqtt.brokers: the robot's agent needs"},
	} {
		c := base()
		tc.mod(c)
		err := c.CheckHost()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v\nwant %q", tc.name, err, tc.want)
		}
	}
	ok := base()
	ok.Agent.MQTT.AckKeysFile, ok.Agent.Commands.FleetKeysFile = keys, keys
	ok.Agent.MQTT.PasswordFile, ok.Agent.MQTT.Username = file("pw2", "secret\n"), "robot"
	if err := ok.CheckHost(); err != nil {
		t.Fatalf("files in place: %v", err)
	}
}

// TestWarnings: credentials with a plaintext broker are warned about, not
// with TLS, and not without credentials.
func TestWarnings(t *testing.T) {
	c := mustProfile(t, "sim")
	c.Agent.MQTT.Brokers = []string{"ssl://a:8883", "tcp://b:1883", "ws://c:80/mqtt"}
	if w := c.Warnings(); len(w) != 0 {
		t.Fatalf("no credentials: %v", w)
	}
	c.Agent.MQTT.Username = "robot"
	w := c.Warnings()
	if len(w) != 2 || w[0].Path != "agent.mqtt.brokers[1]" || w[1].Path != "agent.mqtt.brokers[2]" || !strings.Contains(w[0].Msg, "clear text") {
		t.Fatalf("warnings %v", w)
	}
}
