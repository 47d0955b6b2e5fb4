package sim_test

import (
	"context"
	"errors"
	"image"
	"strings"
	"syscall"
	"testing"
	"time"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

type pose struct{ x, y, z float64 }

func setup(t *testing.T) (*sim.Clock, *sim.Camera, *slide.Slide, *pose) {
	t.Helper()
	s := slide.Synthetic(slide.Spec{ID: "SIMCAM", Seed: 3, FocusBaseUM: 200, Diagnosis: slide.HighGrade})
	clk := sim.NewClock()
	p := &pose{x: 40000, y: 12500}
	p.z = s.FocusZ(p.x, p.y)
	cam := sim.NewCamera(clk, sim.CameraOptions{
		Width: 320, Height: 240, Exposure: 5 * time.Millisecond, FrameInterval: 50 * time.Millisecond,
		Pose:     func() (float64, float64, float64) { return p.x, p.y, p.z },
		Specimen: func() *slide.Slide { return s },
	})
	return clk, cam, s, p
}

func decode(t *testing.T, cam *sim.Camera, raw []byte) *image.RGBA {
	t.Helper()
	fourcc, w, h := cam.Format()
	img, err := camera.Decode(nil, raw, fourcc, w, h)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func lum(img *image.RGBA, x, y int) float64 {
	o := img.PixOffset(x, y)
	return 0.299*float64(img.Pix[o]) + 0.587*float64(img.Pix[o+1]) + 0.114*float64(img.Pix[o+2])
}

func sharpness(img *image.RGBA) float64 {
	b := img.Bounds()
	var s, s2, n float64
	for y := 1; y < b.Dy()-1; y++ {
		for x := 1; x < b.Dx()-1; x++ {
			l := 4*lum(img, x, y) - lum(img, x-1, y) - lum(img, x+1, y) - lum(img, x, y-1) - lum(img, x, y+1)
			s, s2, n = s+l, s2+l*l, n+1
		}
	}
	return s2/n - (s/n)*(s/n)
}

func TestCameraFormatAndTiming(t *testing.T) {
	clk, cam, _, _ := setup(t)
	var _ hal.FrameSource = cam
	fourcc, w, h := cam.Format()
	if fourcc != hal.PixFmtYUYV || w != 320 || h != 240 {
		t.Fatalf("format %s %dx%d", hal.FourCC(fourcc), w, h)
	}
	ctx := context.Background()
	raw, err := cam.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != w*h*2 {
		t.Fatalf("frame of %d bytes", len(raw))
	}
	if got := clk.Elapsed(); got != 5*time.Millisecond {
		t.Errorf("first frame took %v of machine time, want the 5ms exposure", got)
	}
	// The next frame cannot start before the frame interval has passed.
	if _, err := cam.ReadFrame(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if got := clk.Elapsed(); got != 55*time.Millisecond {
		t.Errorf("two frames took %v, want 55ms (interval 50ms + exposure)", got)
	}
	// A slow reader is not held back further.
	clk.Advance(time.Second)
	before := clk.Elapsed()
	if _, err := cam.ReadFrame(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if d := clk.Elapsed() - before; d != 5*time.Millisecond {
		t.Errorf("late read took %v", d)
	}
	if cam.Frames() != 3 {
		t.Errorf("Frames() = %d", cam.Frames())
	}
}

func TestCameraRendersPoseAndFocus(t *testing.T) {
	_, cam, s, p := setup(t)
	ctx := context.Background()
	// Centre the view on a ground-truth nucleus: the frame centre is dark.
	c := s.Cells[0]
	for _, cc := range s.Cells {
		if cc.Class == slide.HSIL {
			c = cc
			break
		}
	}
	p.x, p.y = c.X, c.Y
	p.z = s.FocusZ(p.x, p.y)
	raw, err := cam.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, cam, raw)
	if l := lum(img, 160, 120); l > 120 {
		t.Errorf("nucleus of %v cell at the frame centre has luminance %.0f", c.Class, l)
	}
	focused := sharpness(img)
	// Move the focus 10 µm away: the same view is blurred.
	p.z += 10
	raw, err = cam.ReadFrame(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if blurred := sharpness(decode(t, cam, raw)); blurred > focused/3 {
		t.Errorf("10 µm defocus: sharpness %.1f vs focused %.1f", blurred, focused)
	}
}

func TestCameraNoSpecimen(t *testing.T) {
	clk := sim.NewClock()
	cam := sim.NewCamera(clk, sim.CameraOptions{Width: 64, Height: 48, NoiseSigma: -1})
	raw, err := cam.ReadFrame(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, cam, raw)
	if l := lum(img, 10, 10); l < 225 || l > 240 {
		t.Errorf("empty bright field luminance %.0f", l)
	}
}

func TestCameraFaults(t *testing.T) {
	clk, cam, _, _ := setup(t)
	ctx := context.Background()
	cam.Disconnect()
	_, err := cam.ReadFrame(ctx, nil)
	if !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("disconnected read: %v", err)
	}
	cam.Reconnect()
	if _, err := cam.ReadFrame(ctx, nil); err != nil {
		t.Fatalf("after reconnect: %v", err)
	}
	cam.DropFrames(2)
	for i := range 2 {
		before := clk.Elapsed()
		_, err := cam.ReadFrame(ctx, nil)
		if !errors.Is(err, hal.ErrTimeout) {
			t.Fatalf("dropped frame %d: %v", i, err)
		}
		if clk.Elapsed()-before != time.Second {
			t.Errorf("timeout took %v of machine time", clk.Elapsed()-before)
		}
	}
	if _, err := cam.ReadFrame(ctx, nil); err != nil {
		t.Fatalf("after drops: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := cam.ReadFrame(cctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if err := cam.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cam.ReadFrame(ctx, nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("read after close: %v", err)
	}
}

// Open is the device node: it fails with ENODEV while unplugged; a
// handle's Close ends that handle, not the camera.
func TestCameraOpenHandles(t *testing.T) {
	ctx := context.Background()
	cam := sim.NewCamera(sim.NewClock(), sim.CameraOptions{Width: 64, Height: 48, NoiseSigma: -1})
	h, err := cam.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.ReadFrame(ctx, nil); err != nil {
		t.Fatal(err)
	}
	cam.Disconnect()
	if _, err := cam.Open(ctx); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("open while unplugged: %v, want ENODEV", err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ReadFrame(ctx, nil); !errors.Is(err, syscall.EBADF) {
		t.Errorf("read on a closed handle: %v, want EBADF", err)
	}
	cam.Reconnect()
	h2, err := cam.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h2.ReadFrame(ctx, nil); err != nil {
		t.Errorf("read after reconnect: %v", err)
	}
}
