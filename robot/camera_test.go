package robot

import (
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
)

func TestV4L2Options(t *testing.T) {
	cam := config.Default().Machine.Camera
	cam.Device, cam.Exposure, cam.Gain, cam.GainUnity = "/dev/video0", config.Duration(10*time.Millisecond), 2.5, 16
	o := v4l2Options(cam)
	if o.PixelFormat != hal.PixFmtYUYV || o.Width != cam.Width || o.Exposure != 10*time.Millisecond || o.Gain != 40 ||
		o.FrameRate != cam.FrameRate || o.BufferCount != uint32(cam.BufferCount) || o.FrameTimeout != cam.FrameTimeout.D() {
		t.Errorf("options %+v", o)
	}
	cam.GainUnity = 0
	if o := v4l2Options(cam); o.Gain != 0 {
		t.Errorf("gain_unity 0 must leave the gain alone, got %d", o.Gain)
	}
}
