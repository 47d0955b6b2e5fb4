package delivery

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/render"
	"papscan/scan"
	"papscan/telemetry/broker"
	"papscan/telemetry/outbox"
)

// TestDamagedOutboxAtStart (finding 2, agent side): a 0-byte outbox.db
// used to start as a fresh outbox, "ready, fault: none", with its
// results gone. The link now reports the storage fault (health) and
// commits the stored result.json files again.
func TestDamagedOutboxAtStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	cfg := config.Default()
	cfg.Agent.StateDir = t.TempDir()
	r := &scan.Report{SlideID: "M0001-S00", ResultID: "00112233445566778899aabbccddeeff", Verdict: "NILM"}
	if _, err := render.WriteFiles(r, cfg.Agent.StateDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Agent.StateDir, "outbox.db"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk, err := Open(ctx, cfg, []string{b.URL()}, log, func(o *outbox.Options) { o.MinFreeBytes = -1 })
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close(ctx)
	lk.mu.Lock()
	f := lk.fault
	lk.mu.Unlock()
	if f == nil || f.Code != hal.FaultStorage {
		t.Fatalf("fault %v, want a storage fault", f)
	}
	es, err := lk.ob.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		found = found || e.ID == r.ResultID
	}
	if !found {
		t.Fatalf("the stored result was not committed again: %+v", es)
	}
}
