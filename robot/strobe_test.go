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
