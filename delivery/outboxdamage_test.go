package delivery

import (
	"bytes"
	"context"
	"image"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"papscan/classify"
	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/render"
	"papscan/scan"
	"papscan/telemetry"
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

// TestDamagedOutboxImagesRederived: after outbox damage the results came
// back from their result.json files but their gallery crops and overview
// did not: the fleet never saw the images of a slide delivered before the
// damage. Deliver now keeps each image message beside the result
// (outbox.StoreImages) and Rederive commits them again under the same
// image IDs.
func TestDamagedOutboxImagesRederived(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := config.Default()
	cfg.Agent.StateDir = t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *Link {
		t.Helper()
		lk, err := OpenWith(ctx, cfg, []string{"tcp://" + freeAddr(t)}, log, func(o *telemetry.Options) { o.Background = true },
			func(o *outbox.Options) { o.MinFreeBytes = -1 })
		if err != nil {
			t.Fatal(err)
		}
		return lk
	}
	lk := open()
	d := &Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}
	r := &scan.Report{SlideID: "M0001-S03", ResultID: "00112233445566778899aabbccddeef0", Verdict: "HSIL"}
	for i := range 3 {
		crop := image.NewRGBA(image.Rect(0, 0, 40+i, 32))
		for p := range crop.Pix {
			crop.Pix[p] = uint8(p*7 + i)
		}
		r.Result.Top = append(r.Result.Top, classify.Cell{Crop: crop, Score: 0.9 - float32(i)/10, Class: classify.HSIL, StageX: float64(1000 * i), StageY: 500})
	}
	if err := d.Deliver(ctx, r); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	es, err := lk.ob.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Kind == telemetry.KindImage {
			want[e.ID] = e.Body
		}
	}
	if len(want) != 3 {
		t.Fatalf("%d images committed, want 3: %+v", len(want), es)
	}
	lk.Close(ctx)
	if err := os.WriteFile(filepath.Join(cfg.Agent.StateDir, "outbox.db"), nil, 0o640); err != nil {
		t.Fatal(err)
	}
	lk = open()
	defer lk.Close(ctx)
	es, err = lk.ob.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	result := false
	for _, e := range es {
		switch e.Kind {
		case telemetry.KindResult:
			result = result || e.ID == r.ResultID
		case telemetry.KindImage:
			if e.ResultID != r.ResultID || e.SlideID != r.SlideID {
				t.Errorf("image %s belongs to %s/%s", e.ID, e.SlideID, e.ResultID)
			}
			if !bytes.Equal(e.Body, want[e.ID]) {
				t.Errorf("image %s re-derived with another body", e.ID)
			}
			got[e.ID] = true
		}
	}
	if !result {
		t.Error("result not re-derived")
	}
	for id := range want {
		if !got[id] {
			t.Errorf("image %s lost with the outbox", id)
		}
	}
}
