package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	config "papscan/firmware-config"
	"papscan/telemetry/fleet"
)

// simAckWait bounds how long `papscan sim` waits at the end for the fleet's
// acks before it leaves the rest in the outbox for the next start.
const simAckWait = 5 * time.Second

// startSimFleet runs the reference fleet receiver (package fleet, also
// cmd/papscan-fleet) against the simulator's embedded broker, storing into
// <state_dir>/fleet.db.
func startSimFleet(ctx context.Context, cfg *config.Config, url string, out io.Writer, log *slog.Logger) (stop func(), err error) {
	if err := os.MkdirAll(cfg.Agent.StateDir, 0o750); err != nil {
		return nil, err
	}
	path := filepath.Join(cfg.Agent.StateDir, "fleet.db")
	store, err := fleet.OpenStore(path)
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(ctx)
	r, err := fleet.Start(fctx, store, fleet.Options{
		Brokers: []string{url}, ClientID: "papscan-fleet-sim", TopicPrefix: cfg.EffectiveTopicPrefix(),
		Logger: log.With("side", "fleet"),
	})
	if err != nil {
		cancel()
		store.Close()
		return nil, err
	}
	fmt.Fprintf(out, "fleet: reference receiver stores results in %s; list them with:\n  papscan-fleet list --db %s\n", path, path)
	return func() {
		cancel()
		<-r.Done()
		r.Close()
		st := r.Stats()
		log.Info("fleet receiver stopped", "stored", st.Stored, "duplicates", st.Duplicates, "acks", st.AcksSent)
		store.Close()
	}, nil
}
