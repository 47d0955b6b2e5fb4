package sim_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

// TestTriggeredCamera: a camera in external-trigger mode exposes a frame
// at each edge on its trigger input (timestamped at the edge, blurred by
// the motion during its exposure), ignores an edge while the sensor is
// still busy with the last frame, and without an edge gives no frame: the
// read times out.
func TestTriggeredCamera(t *testing.T) {
	ctx := context.Background()
	s := slide.Synthetic(slide.Spec{ID: "TRIG", Seed: 5, FocusBaseUM: 200})
	clk := sim.NewClock()
	cx, cy, _ := s.Spot()
	const v = 10000.0 // µm/s
	pose := func() (float64, float64, float64) {
		x := cx + v*clk.Elapsed().Seconds()
		return x, cy, s.FocusZ(x, cy)
	}
	trig := sim.NewTrigger(clk, pose)
	const exposure = 50 * time.Microsecond
	cam := sim.NewCamera(clk, sim.CameraOptions{
		Width: 128, Height: 96, PixelUM: 0.5, Exposure: exposure, FrameInterval: time.Second / 30,
		Timeout: 400 * time.Millisecond, TimestampJitter: -1,
		Pose: pose, Specimen: func() *slide.Slide { return s }, Trigger: trig,
	})
	pulse := func() time.Time {
		at := clk.Now()
		trig.Set(true)
		clk.Advance(10 * time.Microsecond)
		trig.Set(false)
		return at
	}
	// Free of triggers: no frame.
	t0 := clk.Now()
	if _, err := cam.ReadFrame(ctx, nil); !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("read without a trigger: %v, want a timeout", err)
	}
	if got := clk.Now().Sub(t0); got != 400*time.Millisecond {
		t.Errorf("waited %v for the frame, want the 400ms timeout", got)
	}
	for k := range 3 {
		clk.Advance(time.Duration(k+1) * 7 * time.Millisecond)
		at := pulse()
		if _, err := cam.ReadFrame(ctx, nil); err != nil {
			t.Fatal(err)
		}
		fi := cam.LastFrame()
		if !fi.Timestamp.Equal(at) || fi.Seq != uint64(k+1) {
			t.Errorf("frame %d: #%d at %v, want #%d at the edge %v", k, fi.Seq, fi.Timestamp.Sub(sim.Epoch), k+1, at.Sub(sim.Epoch))
		}
		if got := clk.Now().Sub(at); got != exposure {
			t.Errorf("frame %d delivered %v after its edge, want the exposure %v", k, got, exposure)
		}
		dx, _, light := cam.LastMotion()
		if want := v * exposure.Seconds() / 0.5; math.Abs(dx-want) > 0.01 || light != 1 {
			t.Errorf("frame %d: blur %.3f px, light %g; want %.3f px, 1", k, dx, light, want)
		}
		clk.Advance(time.Second / 30)
	}
	// An edge while the sensor is busy (within a frame period of the last
	// exposure's start) is ignored.
	first := pulse()
	if _, err := cam.ReadFrame(ctx, nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Millisecond)
	pulse()
	if _, err := cam.ReadFrame(ctx, nil); !errors.Is(err, hal.ErrTimeout) {
		t.Errorf("edge %v after the last: %v, want it ignored (timeout)", clk.Now().Sub(first), err)
	}
	// A cut trigger wire: edges never reach the camera.
	trig.Break()
	clk.Advance(time.Second)
	pulse()
	if _, err := cam.ReadFrame(ctx, nil); !errors.Is(err, hal.ErrTimeout) {
		t.Errorf("broken trigger: %v, want a timeout", err)
	}
	trig.Repair()
	clk.Advance(time.Second)
	pulse()
	if _, err := cam.ReadFrame(ctx, nil); err != nil {
		t.Errorf("repaired trigger: %v", err)
	}
}
