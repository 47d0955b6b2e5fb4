package camera_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

// levelLog is a pin that logs its levels with the virtual time.
type levelLog struct {
	gpiotest.Pin
	clk *sim.Clock
	log []struct {
		at time.Duration
		l  gpio.Level
	}
}

func (p *levelLog) Out(l gpio.Level) error {
	p.log = append(p.log, struct {
		at time.Duration
		l  gpio.Level
	}{p.clk.Elapsed(), l})
	return nil
}

// TestTriggerLine: the line idles inactive (high for an active-low
// input), each pulse is active for the configured width, and a pulse
// comes no sooner than the frame period after the last.
func TestTriggerLine(t *testing.T) {
	clk := sim.NewClock()
	pin := &levelLog{clk: clk}
	tl, err := camera.NewTriggerLine(pin, camera.TriggerOptions{ActiveLow: true, Pulse: 20 * time.Microsecond, MinInterval: 30 * time.Millisecond, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if err := tl.Trigger(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []struct {
		at time.Duration
		l  gpio.Level
	}{{0, gpio.High}, {0, gpio.Low}, {20 * time.Microsecond, gpio.High}, {30 * time.Millisecond, gpio.Low}, {30*time.Millisecond + 20*time.Microsecond, gpio.High}}
	if len(pin.log) != len(want) {
		t.Fatalf("levels %v, want %v", pin.log, want)
	}
	for i := range want {
		if pin.log[i] != want[i] {
			t.Errorf("level %d: %v, want %v", i, pin.log[i], want[i])
		}
	}
	if tl.Pulses() != 2 {
		t.Errorf("%d pulses", tl.Pulses())
	}
	if _, err := camera.NewTriggerLine(nil, camera.TriggerOptions{Clock: clk}); err == nil {
		t.Error("nil pin accepted")
	}
}

// TestTriggeredCapture: a triggered simulated camera read through
// Triggered (and through Recovering.SetTrigger) gives a frame per
// trigger pulse, stamped at the pulse's edge as the agent timed it (not
// with the camera's jittered timestamp); with the trigger wire cut the
// recovering camera retries (triggering again after each reopen) and then
// latches a camera fault: a trigger that brings no frame is a camera
// fault, never a dark frame.
func TestTriggeredCapture(t *testing.T) {
	ctx := context.Background()
	s := slide.Synthetic(slide.Spec{ID: "TRIG", Seed: 5, FocusBaseUM: 200})
	clk := sim.NewClock()
	cx, cy, _ := s.Spot()
	pose := func() (float64, float64, float64) { return cx, cy, s.FocusZ(cx, cy) }
	trig := sim.NewTrigger(clk, pose)
	cam := sim.NewCamera(clk, sim.CameraOptions{
		Width: 64, Height: 48, Exposure: 100 * time.Microsecond, FrameInterval: time.Second / 30,
		Timeout: 400 * time.Millisecond,
		Pose:    pose, Specimen: func() *slide.Slide { return s }, Trigger: trig,
	})
	newLine := func() *camera.TriggerLine {
		tl, err := camera.NewTriggerLine(&sim.LinePin{Pin: &gpiotest.Pin{N: "T"}, Device: trig},
			camera.TriggerOptions{Pulse: 10 * time.Microsecond, MinInterval: time.Second / 30, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		return tl
	}
	tl := newLine()
	c := camera.New(camera.NewTriggered(cam, tl), 0)
	for k := range 3 {
		t0 := clk.Now()
		if _, err := c.Capture(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if fi := c.LastFrame(); fi.Seq != uint64(k+1) || fi.Timestamp.Before(t0) || fi.Timestamp.Sub(t0) > time.Second/30 || !fi.Timestamp.Equal(tl.LastEdge()) || fi.Timestamp.Equal(cam.LastFrame().Timestamp) {
			t.Errorf("capture %d: frame #%d at %v (asked at %v)", k, fi.Seq, fi.Timestamp.Sub(sim.Epoch), t0.Sub(sim.Epoch))
		}
	}

	rec, err := camera.NewRecovering(ctx, cam.Open, camera.RecoverOptions{Attempts: 2, Backoff: 100 * time.Millisecond, Clock: clk, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	line := newLine()
	rec.SetTrigger(line)
	rc := camera.New(rec, 0)
	if _, err := rc.Capture(ctx, nil); err != nil {
		t.Fatal(err)
	}
	trig.Break()
	before := line.Pulses()
	_, err = rc.Capture(ctx, nil)
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultCamera || !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("cut trigger: %v, want a camera fault from timeouts", err)
	}
	if n := line.Pulses() - before; n != 3 {
		t.Errorf("%d trigger pulses for the failed capture, want 3 (the read and one per reopen)", n)
	}
}
