package remote

import (
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"papscan/delivery"
	config "papscan/firmware-config"
)

// TestOpen: a fleet key file that is named but missing is a configuration
// error naming its key; without keys the commands open (every command is
// refused later) and subscribe to the robot's cmd topic at QoS 1.
func TestOpen(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.Agent.StateDir = t.TempDir()
	cfg.Agent.Commands.FleetKeysFile = filepath.Join(t.TempDir(), "missing.pub")
	_, err := Open(cfg, "test", log)
	if !errors.As(err, new(delivery.ConfigError)) || !strings.Contains(err.Error(), "agent.commands.fleet_keys") {
		t.Fatalf("missing key file: %v, want a ConfigError naming agent.commands.fleet_keys", err)
	}
	cfg.Agent.Commands.FleetKeysFile = ""
	c, err := Open(cfg, "test", log)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if s := c.Subscription(); !strings.HasSuffix(s.Topic, "/"+cfg.Agent.RobotID+"/cmd") || s.QoS != 1 || s.Handler == nil {
		t.Errorf("subscription %q QoS %d", s.Topic, s.QoS)
	}
}
