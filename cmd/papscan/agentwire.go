package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"papscan/agent"
	"papscan/hal"
	"papscan/scan"
	"papscan/telemetry"
)

// outboxDelivery is the agent's agent.Delivery: each slide's files go to
// the state directory, its result and every event are committed to the
// durable outbox (telemetry/outbox) before Deliver/Event return, and the
// outbox's sender publishes them, whenever the broker is reachable, until
// the fleet acks them. A full disk is a storage fault (hal.FaultStorage).
type outboxDelivery struct {
	stateDir string
	link     *link
	log      *slog.Logger
}

var _ agent.Delivery = (*outboxDelivery)(nil)

func (d *outboxDelivery) Deliver(ctx context.Context, r *scan.Report) error {
	files, err := r.WriteFiles(d.stateDir)
	if err != nil {
		return d.link.storageFault(ctx, fmt.Errorf("store result: %w", err))
	}
	body, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := d.link.commit(ctx, r.SlideID, r.ResultID, body, r.Verdict == "INCOMPLETE"); err != nil {
		return err
	}
	d.log.Info("slide done", "slide", r.SlideID, "verdict", r.Verdict, "cells", r.Result.Cells,
		"tiles", fmt.Sprintf("%d/%d", r.TilesAnalysed, r.TilesPlanned), "dir", files.Dir, "outbox_depth", d.link.ob.Depth())
	return nil
}

// Admit refuses a new slide when the outbox could not take its result.
func (d *outboxDelivery) Admit(ctx context.Context) error { return d.link.admit(ctx) }

func (d *outboxDelivery) Depth() int      { return d.link.ob.Depth() }
func (d *outboxDelivery) Connected() bool { return d.link.tm.Connected() }

// Event commits the event to the outbox (durable, acked by the fleet).
func (d *outboxDelivery) Event(_ context.Context, kind string, body map[string]any) error {
	if _, err := d.link.ob.PutEvent(kind, body); err != nil {
		return fmt.Errorf("event %s: %w", kind, err)
	}
	return nil
}

// Flush waits until the fleet acked everything or ctx ends. With the
// broker down there is nothing to wait for: the entries stay in the outbox
// and go out after the next start.
func (d *outboxDelivery) Flush(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n := d.link.ob.Depth()
		if n == 0 {
			return nil
		}
		if !d.link.tm.Connected() {
			return fmt.Errorf("broker not connected: %d entries stay in the outbox for the next start", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d entries not yet acked by the fleet stay in the outbox: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// agentHealth fills the health message's agent part from its status.
func agentHealth(ag *agent.Agent) func(h *telemetry.Health) {
	return func(h *telemetry.Health) {
		st := ag.Status()
		h.Stage = st.State
		if f := st.Fault; f != nil && st.State == "fault" {
			h.Faults = []telemetry.FaultInfo{{Code: f.Code, Name: f.Name, Device: f.Device, Cause: f.Error}}
		}
		if f := st.Fault; f != nil && f.Code == int(hal.FaultStorage) {
			h.AcceptSlides = false
		}
	}
}
