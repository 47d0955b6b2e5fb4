package world

import (
	"context"
	"log/slog"
	"time"

	"papscan/hal"
	"papscan/hal/camera"
)

// RecoveringCamera opens the simulated camera behind camera.Recovering,
// with the machine.camera reopen settings and the world's virtual clock:
// the same wrapper the real robot's V4L2 camera runs behind. A camera
// unplugged in the middle of a scan (Camera.Disconnect, InjectCameraLoss)
// is closed and reopened with backoff; it comes back if the simulation
// reconnects it meanwhile (Camera.Reconnect), else, after the configured
// attempts, the wrapper latches a camera fault (hal.FaultCamera) that
// every later read returns. Pass it as robot.Wire.Frames.
func (w *World) RecoveringCamera(ctx context.Context, log *slog.Logger) (*camera.Recovering, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := w.cfg.Machine.Camera
	return camera.NewRecovering(ctx, w.openCamera, camera.RecoverOptions{
		Attempts: c.ReopenAttempts,
		Backoff:  c.ReopenBackoff.D(),
		Clock:    w.Clock,
		Log:      log,
	})
}

// openCamera opens the simulated camera, reconnecting it first when an
// unplug's outage (UnplugCamera) is over.
func (w *World) openCamera(ctx context.Context) (hal.FrameSource, error) {
	w.mu.Lock()
	back := !w.cameraBack.IsZero() && !w.Clock.Now().Before(w.cameraBack)
	if back {
		w.cameraBack = time.Time{}
	}
	w.mu.Unlock()
	if back {
		w.Camera.Reconnect()
	}
	return w.Camera.Open(ctx)
}

// UnplugCamera unplugs the camera now; it is back (the next reopen finds
// it) after outage of machine time, or never when outage is 0.
func (w *World) UnplugCamera(outage time.Duration) {
	w.mu.Lock()
	w.cameraBack = time.Time{}
	if outage > 0 {
		w.cameraBack = w.Clock.Now().Add(outage)
	}
	w.mu.Unlock()
	w.Camera.Disconnect()
}
