package scan_test

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"sync/atomic"
	"testing"

	"papscan/classify"
	"papscan/hal"
	"papscan/hal/sim/slide"
	"papscan/scan"
)

// failArmed is a camera whose next capture fails once armed.
type failArmed struct {
	hal.Camera
	armed    atomic.Bool
	failures atomic.Int32
}

var errRecapture = errors.New("injected: capture failed")

func (c *failArmed) Capture(ctx context.Context, dst *image.RGBA) (*image.RGBA, error) {
	if c.armed.CompareAndSwap(true, false) {
		c.failures.Add(1)
		return dst, errRecapture
	}
	return c.Camera.Capture(ctx, dst)
}

// armOnRefocus arms the camera when the scanner logs "tile refocused": the
// next capture is the tile's re-capture at the new focus.
type armOnRefocus struct {
	slog.Handler
	cam *failArmed
}

func (h armOnRefocus) Enabled(context.Context, slog.Level) bool { return true }
func (h armOnRefocus) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "tile refocused" {
		h.cam.armed.Store(true)
	}
	return nil
}
func (h armOnRefocus) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h armOnRefocus) WithGroup(string) slog.Handler      { return h }

// TestFailedRecaptureAfterRefocusIsMissing: the stack re-capture after a
// refocus fails. The tile's buffers still hold the stale, defocused
// frames; the tile must count as missing and the slide be INCOMPLETE,
// never analysed from those frames and counted as imaged (the error used
// to be dropped in the refocus branch of the tile loop).
func TestFailedRecaptureAfterRefocusIsMissing(t *testing.T) {
	skipWholeSlideInShort(t)
	rig := newRig(t, slide.Negative)
	m := rig.machine
	cam := &failArmed{Camera: m.Camera}
	m.Camera = cam
	o := rig.options
	o.Logger = slog.New(armOnRefocus{cam: cam})
	o.Progress = func(p scan.Progress) {
		if p.Phase == "scan" && p.Done == 8 {
			rig.world.InjectFocusDrift(6) // as TestRefocusOnSharpnessDrop
		}
	}
	sc, err := scan.New(m, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := sc.Home(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := sc.ScanSlot(ctx, "T", 0)
	if cam.failures.Load() == 0 {
		t.Fatalf("no tile was refocused (err %v, report %+v): the test did not exercise the re-capture", err, r)
	}
	if r == nil {
		t.Fatalf("no report: %v", err)
	}
	t.Logf("err %v; tiles planned %d captured %d analysed %d missing %d; verdict %s", err, r.TilesPlanned, r.TilesCaptured, r.TilesAnalysed, r.TilesMissing, r.Verdict)
	if r.TilesMissing == 0 || r.Complete() || r.Verdict != classify.VerdictIncomplete {
		t.Errorf("failed re-capture: missing %d, complete %v, verdict %s; want the tile missing and the slide INCOMPLETE", r.TilesMissing, r.Complete(), r.Verdict)
	}
	if r.TilesAnalysed >= r.TilesCaptured+1 || r.TilesAnalysed > r.TilesPlanned-r.TilesMissing {
		t.Errorf("analysed %d of %d captured, %d missing: a tile was analysed from stale frames", r.TilesAnalysed, r.TilesCaptured, r.TilesMissing)
	}
}
