package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	config "papscan/firmware-config"
	"papscan/telemetry"
	fleetcmd "papscan/telemetry/command"
	"papscan/telemetry/fleet"
)

// simAckWait bounds how long `papscan sim` waits at the end for the fleet's
// acks before it leaves the rest in the outbox for the next start;
// simOwnFleetAckWait when the simulator started the fleet side itself
// (the images of every slide go through it too).
const (
	simAckWait         = 5 * time.Second
	simOwnFleetAckWait = 60 * time.Second
)

// startSimFleet runs the reference fleet receiver (package fleet, also
// cmd/papscan-fleet) against the simulator's embedded broker, storing into
// <state_dir>/fleet.db. The receiver signs its acks with a key made for
// this run; withAckKey returns the configuration the robot's link must use
// to trust it (cfg itself is not changed: it is what a reload compares).
func startSimFleet(ctx context.Context, cfg *config.Config, url string, out io.Writer, log *slog.Logger) (stop func(), withAckKey func(*config.Config) *config.Config, err error) {
	if err := os.MkdirAll(cfg.Agent.StateDir, 0o750); err != nil {
		return nil, nil, err
	}
	key, err := fleetcmd.GenerateKey(rand.Reader, "sim-receiver")
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(cfg.Agent.StateDir, "fleet.db")
	store, err := fleet.OpenStore(path)
	if err != nil {
		return nil, nil, err
	}
	fctx, cancel := context.WithCancel(ctx)
	r, err := fleet.Start(fctx, store, fleet.Options{
		Brokers: []string{url}, ClientID: "papscan-fleet-sim", TopicPrefix: cfg.EffectiveTopicPrefix(),
		Logger:     log.With("side", "fleet"),
		SignAck:    func(a *telemetry.Ack) { fleetcmd.SignAck(key, a) },
		SignReplay: func(rp *telemetry.Replay) { fleetcmd.SignReplay(key, rp) },
	})
	if err != nil {
		cancel()
		store.Close()
		return nil, nil, err
	}
	withAckKey = func(c *config.Config) *config.Config {
		c = c.Clone()
		c.Agent.MQTT.AckKeys = append(c.Agent.MQTT.AckKeys, key.Public().String())
		return c
	}
	fmt.Fprintf(out, "fleet: reference receiver stores results in %s; list them with:\n  papscan-fleet list --db %s\n", path, path)
	return func() {
		cancel()
		<-r.Done()
		r.Close()
		st := r.Stats()
		log.Info("fleet receiver stopped", "stored", st.Stored, "duplicates", st.Duplicates, "acks", st.AcksSent)
		store.Close()
	}, withAckKey, nil
}
