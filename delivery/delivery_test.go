package delivery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/scan"
	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

// TestOutboxDeliveryOffline: the agent's delivery works with no broker at
// all: results and events are committed to the outbox (depth counts
// them), Flush gives up at once instead of waiting for a broker that is
// not there, and a full disk refuses the next slide with a storage fault
// (panel code 9) while nothing committed is lost.
func TestOutboxDeliveryOffline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := config.Default()
	cfg.Agent.StateDir = t.TempDir()
	var free atomic.Uint64
	free.Store(1 << 40)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk, err := OpenWith(ctx, cfg, []string{"tcp://" + freeAddr(t)}, log, func(o *telemetry.Options) { o.Background = true },
		func(o *outbox.Options) { o.FreeSpace = func(string) (uint64, error) { return free.Load(), nil } })
	if err != nil {
		t.Fatalf("open with the broker down: %v", err)
	}
	defer lk.Close(ctx)
	d := &Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}
	if d.Connected() {
		t.Fatal("connected to nothing")
	}
	if err := d.Admit(ctx); err != nil {
		t.Fatalf("admit: %v", err)
	}
	if err := d.Deliver(ctx, &scan.Report{SlideID: "M0001-S00", ResultID: "r-1", Verdict: "NILM"}); err != nil {
		t.Fatalf("deliver offline: %v", err)
	}
	if err := d.Event(ctx, "magazine_done", map[string]any{"magazine": "M0001"}); err != nil {
		t.Fatalf("event offline: %v", err)
	}
	if d.Depth() != 2 {
		t.Fatalf("outbox depth %d, want 2 (result + event)", d.Depth())
	}
	start := time.Now()
	if err := d.Flush(ctx); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("flush with the broker down: %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("flush waited %v for a broker that is down", el)
	}
	free.Store(1000)
	err = d.Admit(ctx)
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultStorage || !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("admit on a full disk: %v, want a storage fault wrapping ErrFull", err)
	}
	if d.Depth() != 2 {
		t.Errorf("committed entries lost: depth %d", d.Depth())
	}
	var h telemetry.Health
	lk.fillHealth(&h, cfg.Agent.StateDir)
	if h.AcceptSlides || h.Outbox.Depth != 2 || h.Stage != "fault" || len(h.Faults) != 1 || h.Faults[0].Code != int(hal.FaultStorage) {
		t.Errorf("health on a full disk: %+v", h)
	}
}

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
