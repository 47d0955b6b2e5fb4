package robot

import (
	"context"
	"log/slog"
	"math"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/v4l2"
)

// v4l2Options maps machine.camera onto the V4L2 driver.
func v4l2Options(cam config.Camera) v4l2.Options {
	o := v4l2.Options{
		PixelFormat:  fourcc(cam.PixelFormat),
		Width:        cam.Width,
		Height:       cam.Height,
		BufferCount:  uint32(cam.BufferCount),
		FrameTimeout: cam.FrameTimeout.D(),
		FrameRate:    cam.FrameRate,
		Exposure:     cam.Exposure.D(),
	}
	if cam.GainUnity > 0 {
		o.Gain = int32(math.Round(cam.Gain * float64(cam.GainUnity)))
	}
	return o
}

func fourcc(s string) uint32 {
	switch s {
	case "RGB3":
		return hal.PixFmtRGB3
	case "MJPEG":
		return hal.PixFmtMJPEG
	}
	return hal.PixFmtYUYV
}

// openCamera opens the robot's V4L2 camera behind the recovering wrapper:
// unplugs, I/O errors and stalls are retried with backoff, then become a
// camera fault.
func openCamera(ctx context.Context, cam config.Camera, log *slog.Logger) (*camera.Recovering, error) {
	opts := v4l2Options(cam)
	return camera.NewRecovering(ctx, func(context.Context) (hal.FrameSource, error) {
		return v4l2.Open(cam.Device, opts)
	}, camera.RecoverOptions{
		Attempts: cam.ReopenAttempts,
		Backoff:  cam.ReopenBackoff.D(),
		Clock:    hal.SystemClock{},
		Log:      log,
	})
}
