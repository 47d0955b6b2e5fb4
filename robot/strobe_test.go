package robot_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/sim/world"
	"papscan/robot"
	"papscan/robot/robottest"
)

// TestAcceptedStrobesRun: every strobe the validator accepts, on a gpio or
// a pca9685 lamp, runs on the simulated robot through the real drivers
// (for the PCA9685: periph's driver over the emulated chip, its I²C writes
// timed at 100 kHz): fired as the on-the-fly scan fires it, at the middle
// of the free-running camera's exposure, the pulse lands inside that
// exposure and the frame gets the light of a full exposure. What the
// validator refuses is a pulse the hardware cannot give or that would
// miss the exposure; some of each are in the table.
func TestAcceptedStrobesRun(t *testing.T) {
	ctx := context.Background()
	accepted := map[string]int{}
	for _, lamp := range []string{"gpio", "pca9685"} {
		for _, exp := range []time.Duration{200 * time.Microsecond, 2 * time.Millisecond, 3100 * time.Microsecond, 8 * time.Millisecond} {
			for _, pulse := range []time.Duration{10 * time.Microsecond, 50 * time.Microsecond, 290 * time.Microsecond, 300 * time.Microsecond, 500 * time.Microsecond, 1530 * time.Microsecond} {
				cfg := robottest.DriverCombo("tic", "tic", lamp)
				cfg.Machine.Camera.Exposure = config.Duration(exp)
				cfg.Machine.Light.StrobePulse = config.Duration(pulse)
				if cfg.Validate() != nil {
					continue
				}
				accepted[lamp]++
				t.Run(fmt.Sprintf("%s/exposure=%v/pulse=%v", lamp, exp, pulse), func(t *testing.T) {
					w, err := world.NewWorld(cfg, nil)
					if err != nil {
						t.Fatal(err)
					}
					r, err := robot.BuildSim(cfg, w, w.Camera, w.Clock)
					if err != nil {
						t.Fatal(err)
					}
					st, ok := r.Light.(hal.Strobe)
					if !ok {
						t.Fatalf("light %s is no strobe", r.Light)
					}
					if err := r.Light.SetBrightness(0); err != nil {
						t.Fatal(err)
					}
					for k := range 3 {
						if _, err := w.Camera.ReadFrame(ctx, nil); err != nil {
							t.Fatal(err)
						}
						fi := w.Camera.LastFrame()
						mid := fi.Timestamp.Add(time.Second/time.Duration(cfg.Machine.Camera.FrameRate) + exp/2)
						if err := w.Clock.Sleep(ctx, mid.Sub(w.Clock.Now())); err != nil {
							t.Fatal(err)
						}
						if err := st.Fire(ctx, pulse); err != nil {
							t.Fatalf("pulse %d: %v", k, err)
						}
						if _, err := w.Camera.ReadFrame(ctx, nil); err != nil {
							t.Fatal(err)
						}
						_, _, light := w.Camera.LastMotion()
						if got := w.Camera.LastFrame().Seq; got != fi.Seq+1 || math.Abs(light-1) > 0.02 {
							t.Fatalf("pulse %d: frame #%d with light %.3f; want #%d fully lit", k, got, light, fi.Seq+1)
						}
					}
				})
			}
		}
	}
	if accepted["gpio"] == 0 || accepted["pca9685"] == 0 {
		t.Fatalf("accepted %v: the table must hold accepted strobes of both drivers", accepted)
	}
}

// TestAcceptedTriggersRun: every triggered camera the validator accepts
// (trigger pulses, exposures, frame rates, with and without a rolling
// shutter, stop-and-go and on the fly) runs on the simulated robot built
// like the real one: each capture pulses the trigger line, the camera
// exposes one frame from the edge, and the frame's time is that edge. A
// capture asked sooner than a frame after the last waits for the camera
// rather than losing its trigger.
func TestAcceptedTriggersRun(t *testing.T) {
	ctx := context.Background()
	accepted := 0
	for _, mode := range []string{config.ModeStopAndGo, config.ModeOnTheFly} {
		for _, rate := range []float64{5, 30} {
			for _, exp := range []time.Duration{10 * time.Microsecond, 2 * time.Millisecond} {
				for _, line := range []time.Duration{0, 5 * time.Microsecond} {
					for _, pulse := range []time.Duration{0, time.Microsecond, 100 * time.Microsecond, 2 * time.Millisecond} {
						cfg := robottest.DriverCombo("tic", "tic", "gpio")
						cfg.Scan.Mode = mode
						cam := &cfg.Machine.Camera
						cam.Trigger = config.Pin{Name: "SIM_CAM_TRIGGER", ActiveLow: pulse == time.Microsecond}
						cam.TriggerPulse = config.Duration(pulse)
						cam.FrameRate, cam.Exposure, cam.LineTime = rate, config.Duration(exp), config.Duration(line)
						cam.FrameTimeout = config.Duration(400 * time.Millisecond)
						cam.Width, cam.Height = 320, 240
						if cfg.Validate() != nil {
							continue
						}
						accepted++
						t.Run(fmt.Sprintf("%s/%gfps/exposure=%v/line=%v/pulse=%v", mode, rate, exp, line, pulse), func(t *testing.T) {
							w, err := world.NewWorld(cfg, nil)
							if err != nil {
								t.Fatal(err)
							}
							frames, err := w.RecoveringCamera(ctx, nil)
							if err != nil {
								t.Fatal(err)
							}
							r, err := robot.BuildSim(cfg, w, frames, w.Clock)
							if err != nil {
								t.Fatal(err)
							}
							ft := r.Camera.(hal.FrameTimer)
							for k := range 3 {
								if _, err := r.Camera.Capture(ctx, nil); err != nil {
									t.Fatalf("capture %d: %v", k, err)
								}
								if fi := ft.LastFrame(); fi.Seq != uint64(k+1) || !fi.Timestamp.Equal(r.Trigger.LastEdge()) {
									t.Fatalf("capture %d: frame #%d at %v, want #%d at the trigger edge %v", k, fi.Seq, fi.Timestamp, k+1, r.Trigger.LastEdge())
								}
							}
							if n := w.CameraTrigger().Edges(); n != 3 {
								t.Errorf("%d trigger edges for 3 captures", n)
							}
						})
					}
				}
			}
		}
	}
	if accepted < 4 {
		t.Fatalf("only %d accepted configurations in the table", accepted)
	}
}
