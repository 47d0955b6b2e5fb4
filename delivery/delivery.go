package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"papscan/render"
	"papscan/scan"
	"papscan/telemetry/outbox"
	"papscan/telemetry/result"
)

// Delivery is the one path of results and events to the fleet, for the
// agent and for `papscan sim`: each slide's files go to the state
// directory, its result, then its images (gallery crops at full
// resolution and the overview, telemetry.ImageMessage), and every event
// are committed to the durable outbox (telemetry/outbox) before
// Deliver/Event return, and the outbox's
// sender publishes them, whenever the broker is reachable, until the fleet
// acks them. A full disk is a storage fault (hal.FaultStorage). It
// implements agent.Delivery.
type Delivery struct {
	StateDir string
	Link     *Link
	Log      *slog.Logger
	// Stored, if set, sees each report once its files are written (the
	// simulator's table and JSON lines), with the path of its result.json.
	Stored func(r *scan.Report, files scan.Files)
	// writeFiles stores a report's files (render.WriteFiles when nil;
	// tests inject failures).
	writeFiles func(r *scan.Report, stateDir string) (scan.Files, error)
}

// Deliver stores r's files, then commits its result to the outbox.
func (d *Delivery) Deliver(ctx context.Context, r *scan.Report) error {
	write := d.writeFiles
	if write == nil {
		write = render.WriteFiles
	}
	// The images first (kept beside the result so that they can be
	// committed again if the outbox is lost: outbox.Rederive), then the
	// result's own files, result.json last.
	images, ierr := reportImages(d.Link.tm.Topics().RobotID(), r)
	if ierr != nil {
		d.Log.Warn("slide images not sent", "slide", r.SlideID, "result", r.ResultID, "err", ierr)
	}
	if err := outbox.StoreImages(d.StateDir, images); err != nil {
		// Only the copy for re-deriving is missing: the images still go
		// to the outbox below, and a failing disk fails the result's own
		// files next (images never cost a slide).
		d.Log.Warn("slide images not stored for re-deriving", "slide", r.SlideID, "result", r.ResultID, "err", err)
	}
	files, err := write(r, d.StateDir)
	switch {
	case err != nil && scan.FDExhausted(err):
		// Out of file descriptors (a flood of connections, a leak):
		// nothing is wrong with the disk, so no storage fault. The
		// result still goes to the outbox below (durable, and what the
		// fleet receives); only the local copy is missing.
		d.Log.Warn("result files not stored: out of file descriptors; the result is still committed to the outbox",
			"slide", r.SlideID, "result", r.ResultID, "err", err)
	case err != nil:
		return d.Link.storageFault(ctx, fmt.Errorf("store result: %w", err))
	case d.Stored != nil:
		d.Stored(r, files)
	}
	body, err := json.Marshal(result.FromReport(r))
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	// Durable first; the outbox sender publishes it and keeps it until
	// the fleet's ack.
	if err := d.Link.commit(ctx, r.SlideID, r.ResultID, body, r.Verdict == "INCOMPLETE"); err != nil {
		return err
	}
	// Then its images (gallery crops at full resolution, the overview):
	// durable entries too, removed on the fleet's ack of each image_id.
	n := d.commitImages(images)
	d.Log.Info("slide done", "slide", r.SlideID, "verdict", r.Verdict, "cells", r.Result.Cells, "images", n,
		"tiles", fmt.Sprintf("%d/%d", r.TilesAnalysed, r.TilesPlanned), "machine_s", round1(r.Timing.Machine.Seconds()),
		"dir", files.Dir, "outbox_depth", d.Link.ob.Depth())
	return nil
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }

// Admit refuses a new slide when the outbox could not take its result.
func (d *Delivery) Admit(ctx context.Context) error { return d.Link.Admit(ctx) }

func (d *Delivery) Depth() int      { return d.Link.ob.Depth() }
func (d *Delivery) Connected() bool { return d.Link.tm.Connected() }

// Event commits the event to the outbox (durable, acked by the fleet).
func (d *Delivery) Event(_ context.Context, kind string, body map[string]any) error {
	if _, err := d.Link.ob.PutEvent(kind, body); err != nil {
		return fmt.Errorf("event %s: %w", kind, err)
	}
	return nil
}

// Flush waits until the fleet acked everything or ctx ends. With the
// broker down there is nothing to wait for: the entries stay in the outbox
// and go out after the next start.
func (d *Delivery) Flush(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n := d.Link.ob.Depth()
		if n == 0 {
			return nil
		}
		if !d.Link.tm.Connected() {
			return fmt.Errorf("broker not connected: %d entries stay in the outbox for the next start", n)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d entries not yet acked by the fleet stay in the outbox: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}
