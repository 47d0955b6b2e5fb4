package world

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/sim/slide"
)

func newTestWorld(t *testing.T) *World {
	t.Helper()
	cfg := config.Default()
	cfg.Machine.Camera.ReopenAttempts = 3
	cfg.Machine.Camera.ReopenBackoff = config.Duration(200 * time.Millisecond)
	cfg.Machine.Camera.Width, cfg.Machine.Camera.Height = 64, 48
	w, err := NewWorld(cfg, []*slide.Slide{nil})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A camera unplugged for good: the recovering wrapper reopens it three
// times with backoff (200+400+800 ms of machine time), then latches a
// camera fault that later reads return at once.
func TestRecoveringCameraLatchesFaultWhenTheCameraStaysGone(t *testing.T) {
	w := newTestWorld(t)
	ctx := context.Background()
	cam, err := w.RecoveringCamera(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cam.ReadFrame(ctx, nil); err != nil {
		t.Fatal(err)
	}
	w.UnplugCamera(0)
	t0 := w.Clock.Now()
	_, err = cam.ReadFrame(ctx, nil)
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultCamera || !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("read after unplug: %v, want a camera fault wrapping ENODEV", err)
	}
	if d := w.Clock.Now().Sub(t0); d != 1400*time.Millisecond {
		t.Errorf("gave up after %s of machine time, want 1.4s of backoff", d)
	}
	t1 := w.Clock.Now()
	if _, err := cam.ReadFrame(ctx, nil); hal.FaultOf(err) == nil || w.Clock.Now() != t1 {
		t.Errorf("latched fault: %v after %s", err, w.Clock.Now().Sub(t1))
	}
	// The technician plugs it back and acknowledges.
	w.Camera.Reconnect()
	cam.ClearFault()
	if _, err := cam.ReadFrame(ctx, nil); err != nil {
		t.Fatalf("after reconnect and acknowledge: %v", err)
	}
}

// A camera back within the backoff: the second reopen finds it and reads
// go on; no fault.
func TestRecoveringCameraSurvivesAShortUnplug(t *testing.T) {
	w := newTestWorld(t)
	ctx := context.Background()
	cam, err := w.RecoveringCamera(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.UnplugCamera(300 * time.Millisecond)
	if _, err := cam.ReadFrame(ctx, nil); err != nil {
		t.Fatalf("read across a 300 ms unplug: %v", err)
	}
	if cam.Reopens() != 1 || cam.Fault() != nil {
		t.Errorf("reopens %d, fault %v", cam.Reopens(), cam.Fault())
	}
}
