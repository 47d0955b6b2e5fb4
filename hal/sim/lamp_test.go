package sim_test

import (
	"context"
	"math"
	"testing"
	"time"

	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

// movingRig is a Lamp camera over a stage moving along x at v µm/s from
// x0 at the clock's epoch.
func movingRig(t *testing.T, v float64, exposure time.Duration) (*sim.Clock, *sim.Camera, *sim.Lamp, *slide.Slide) {
	t.Helper()
	s := slide.Synthetic(slide.Spec{ID: "LAMP", Seed: 4, FocusBaseUM: 200, Diagnosis: slide.HighGrade})
	clk := sim.NewClock()
	cx, cy, _ := s.Spot()
	pose := func() (float64, float64, float64) {
		x := cx + v*clk.Elapsed().Seconds()
		return x, cy, s.FocusZ(x, cy)
	}
	lamp := sim.NewLamp(clk, pose)
	cam := sim.NewCamera(clk, sim.CameraOptions{
		Width: 256, Height: 192, PixelUM: 0.5, Exposure: exposure, FrameInterval: time.Second / 30,
		Pose: pose, Specimen: func() *slide.Slide { return s }, Lamp: lamp,
	})
	return clk, cam, lamp, s
}

// TestLampBlur: under steady light the frame integrates the scene over the
// exposure along the true motion (blur = speed × exposure); a 10 µs pulse
// freezes it to well under half a pixel, and the frame is as bright.
func TestLampBlur(t *testing.T) {
	ctx := context.Background()
	const v = 17280.0 // µm/s
	clk, cam, lamp, _ := movingRig(t, v, 2*time.Millisecond)
	lamp.Set(true)
	raw, err := cam.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	dx, dy, light := cam.LastMotion()
	want := v * 0.002 / 0.5
	if math.Abs(dx-want) > 0.05*want || dy != 0 || math.Abs(light-1) > 0.01 {
		t.Fatalf("steady light: blur %.2f, %.2f px, light %.2f; want %.1f px along x, light 1", dx, dy, light, want)
	}
	steady := decode(t, cam, raw)
	lamp.Set(false)

	// A pulse in the middle of the next exposure.
	fi := cam.LastFrame()
	mid := fi.Timestamp.Add(time.Second/30 + time.Millisecond)
	if d := mid.Sub(clk.Now()); d > 0 {
		clk.Advance(d)
	}
	lamp.Set(true)
	clk.Advance(10 * time.Microsecond)
	lamp.Set(false)
	raw, err = cam.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	dx, _, light = cam.LastMotion()
	if dx > 0.5 || math.Abs(light-1) > 0.01 {
		t.Fatalf("strobe: blur %.3f px, light %.2f; want <= 0.5 px and light 1", dx, light)
	}
	frozen := decode(t, cam, raw)
	if sharpness(frozen) < 2*sharpness(steady) {
		t.Errorf("a 10µs pulse (sharpness %.1f) is not much sharper than 2 ms of motion (%.1f)", sharpness(frozen), sharpness(steady))
	}
	if got := cam.LastFrame().Seq; got != fi.Seq+1 {
		t.Errorf("the pulse's frame is #%d, want #%d (the next exposure)", got, fi.Seq+1)
	}
}

// TestLampDark: without light the frame is dark, as a strobe that never
// fires leaves it; a broken lamp stays dark whatever its line does.
func TestLampDark(t *testing.T) {
	ctx := context.Background()
	_, cam, lamp, _ := movingRig(t, 0, 2*time.Millisecond)
	lamp.Break()
	lamp.Set(true)
	raw, err := cam.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := decode(t, cam, raw)
	var sum float64
	for i := 1; i < len(img.Pix); i += 4 {
		sum += float64(img.Pix[i])
	}
	if mean := sum / float64(len(img.Pix)/4); mean > 20 {
		t.Errorf("a frame without light has mean green %.1f", mean)
	}
	if _, _, light := cam.LastMotion(); light != 0 {
		t.Errorf("light %.2f without light", light)
	}
}

// TestFrameTimestamps: a free-running camera's frames start on a grid of
// frame intervals; the timestamps carry tens of microseconds of jitter,
// never more than a fraction of a millisecond, and never repeat a frame.
func TestFrameTimestamps(t *testing.T) {
	ctx := context.Background()
	clk, cam, lamp, _ := movingRig(t, 0, 2*time.Millisecond)
	lamp.Set(true)
	iv := time.Second / 30
	var prev hal.FrameInfo
	var dev []float64
	for k := range 40 {
		if k%3 == 0 {
			clk.Advance(7 * time.Millisecond) // reads at odd moments
		}
		if _, err := cam.ReadFrame(ctx, nil); err != nil {
			t.Fatal(err)
		}
		fi := cam.LastFrame()
		if k > 0 && fi.Seq <= prev.Seq {
			t.Fatalf("frame %d: seq %d after %d", k, fi.Seq, prev.Seq)
		}
		grid := sim.Epoch.Add(7300 * time.Microsecond).Add(time.Duration(fi.Seq) * iv)
		d := fi.Timestamp.Sub(grid)
		if d < -400*time.Microsecond || d > 400*time.Microsecond {
			t.Fatalf("frame %d: timestamp %v off the grid", k, d)
		}
		if clk.Now().Before(grid.Add(2 * time.Millisecond)) {
			t.Fatalf("frame %d delivered before its exposure ended", k)
		}
		dev = append(dev, float64(d))
		prev = fi
	}
	var ss float64
	for _, d := range dev {
		ss += d * d
	}
	if rms := time.Duration(math.Sqrt(ss / float64(len(dev)))); rms < 10*time.Microsecond || rms > 150*time.Microsecond {
		t.Errorf("timestamp jitter %v RMS, want tens of µs", rms)
	}
}

// TestMJPEGFrames: a camera in MJPEG mode hands out real JPEG frames that
// decode to the same scene as the raw YUYV ones.
func TestMJPEGFrames(t *testing.T) {
	ctx := context.Background()
	s := slide.Synthetic(slide.Spec{ID: "MJPG", Seed: 4, FocusBaseUM: 200, Diagnosis: slide.HighGrade})
	cx, cy, _ := s.Spot()
	pose := func() (float64, float64, float64) { return cx, cy, s.FocusZ(cx, cy) }
	mk := func(f uint32) *sim.Camera {
		return sim.NewCamera(sim.NewClock(), sim.CameraOptions{Width: 320, Height: 240, Pose: pose, NoiseSigma: -1,
			Specimen: func() *slide.Slide { return s }, PixelFormat: f})
	}
	mj, yu := mk(hal.PixFmtMJPEG), mk(hal.PixFmtYUYV)
	rawJ, err := mj.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rawJ) < 4 || rawJ[0] != 0xFF || rawJ[1] != 0xD8 {
		t.Fatal("the MJPEG frame is no JPEG")
	}
	rawY, err := yu.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, b := decode(t, mj, rawJ), decode(t, yu, rawY)
	var se float64
	for i := range a.Pix {
		d := float64(a.Pix[i]) - float64(b.Pix[i])
		se += d * d
	}
	if rmse := math.Sqrt(se / float64(len(a.Pix))); rmse > 8 {
		t.Errorf("MJPEG and YUYV frames differ by %.1f DN RMS", rmse)
	}
	if len(rawJ) >= len(rawY)/2 {
		t.Errorf("MJPEG frame %d bytes, YUYV %d: no compression", len(rawJ), len(rawY))
	}
}
