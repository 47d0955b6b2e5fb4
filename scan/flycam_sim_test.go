package scan_test

import (
	"context"
	"math"
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/sim/slide"
	"papscan/scan"
)

// triggerTweak makes the camera a triggered one: no strobe, a 12 µs
// exposure (0.42 px of blur at the 17.3 mm/s row speed), a 10 µs trigger
// pulse on its own line.
func triggerTweak(cfg *config.Config) {
	cfg.Machine.Light.StrobePulse = 0
	cfg.Machine.Camera.Exposure = config.Duration(12 * time.Microsecond)
	cfg.Machine.Camera.Trigger = config.Pin{Name: "SIM_CAM_TRIGGER"}
	cfg.Machine.Camera.TriggerPulse = config.Duration(10 * time.Microsecond)
}

// pca9685Tweak makes the lamp a PCA9685 strobe with the shortest pulse
// the validator accepts (300 µs, the I²C off write at 100 kHz); the row
// speed comes down to what that pulse can freeze (1.4 frames/s).
func pca9685Tweak(cfg *config.Config) {
	cfg.Machine.Light.Driver = "pca9685"
	cfg.Machine.Light.StrobePulse = config.Duration(300 * time.Microsecond)
	cfg.Machine.Camera.Exposure = config.Duration(3100 * time.Microsecond)
	cfg.Machine.Camera.FrameRate = 1.4
}

// rollingTweak gives the camera a rolling shutter (10 µs per row: the 960
// rows start over 9.6 ms) and a 20 ms exposure, so the 10 µs strobe pulse,
// aimed at the middle of row 0's exposure, falls while every row exposes.
func rollingTweak(cfg *config.Config) {
	cfg.Machine.Camera.LineTime = config.Duration(10 * time.Microsecond)
	cfg.Machine.Camera.Exposure = config.Duration(20 * time.Millisecond)
}

// mjpegTweak makes the camera deliver MJPEG frames, which the on-the-fly
// loop decodes off its goroutine (hal.Grabber) and checks as they arrive.
func mjpegTweak(cfg *config.Config) { cfg.Machine.Camera.PixelFormat = "MJPEG" }

// TestOnTheFlyAcceptedModes: configurations the validator accepts for
// on-the-fly scanning run: a triggered camera (a frame per trigger pulse,
// every one taken as the stage crosses its tile), a PCA9685 strobe
// (pulses timed by its I²C writes) and a rolling shutter under a strobe
// (every frame fully lit, no skew). The slides are complete, imaged on
// the fly.
func TestOnTheFlyAcceptedModes(t *testing.T) {
	skipWholeSlideInShort(t)
	for _, tc := range []struct {
		name  string
		tweak func(*config.Config)
	}{{"trigger", triggerTweak}, {"pca9685", pca9685Tweak}, {"rolling", rollingTweak}, {"mjpeg", mjpegTweak}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rig := newFlyRig(t, tc.tweak, slide.HighGrade)
			if err := rig.cfg.Validate(); err != nil {
				t.Fatalf("the test's configuration is refused: %v", err)
			}
			if err := rig.scanner.Home(ctx); err != nil {
				t.Fatal(err)
			}
			r, err := rig.scanner.ScanSlot(ctx, "F", 0)
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			f := r.Fly
			t.Logf("tiles %d retakes %d dropped %d dark %d off %d blur %.2f px max off %.1f µm registered %d reg max %.2f px",
				r.TilesPlanned, f.Retakes, f.Dropped, f.Dark, f.OffPlace, f.BlurPx, f.MaxOffUM, f.Registered, f.RegMaxPx)
			if !r.Complete() || r.TilesMissing != 0 {
				t.Fatalf("incomplete: %d/%d tiles, error %q", r.TilesAnalysed, r.TilesPlanned, r.Error)
			}
			if f.Retakes > r.TilesPlanned/20 || f.BlurPx > 0.5 {
				t.Errorf("%d of %d tiles re-taken, blur %.2f px", f.Retakes, r.TilesPlanned, f.BlurPx)
			}
			if mjpeg := rig.cfg.Machine.Camera.PixelFormat == "MJPEG"; f.AsyncDecode != mjpeg {
				t.Errorf("frames decoded off the capture goroutine: %v, want %v (MJPEG)", f.AsyncDecode, mjpeg)
			}
			if dx, _, rows := rig.world.Camera.LastSkew(); math.Abs(dx) > 0.5 || rows != rig.cfg.Machine.Camera.Height {
				t.Errorf("last frame: skew %.2f px, %d rows lit", dx, rows)
			}
			if trig := rig.world.CameraTrigger(); trig != nil && trig.Edges() < r.TilesPlanned {
				t.Errorf("%d trigger edges for %d tiles", trig.Edges(), r.TilesPlanned)
			}
		})
	}
}

// TestOnTheFlyTriggerFault: a cut trigger wire brings no frame: the
// recovering camera re-triggers after each reopen, then latches a camera
// fault, whether the wire is cut as the slide starts (stop-and-go frames
// of the focus map first) or in the middle of a row (where the sweeping
// Tic's dead-man stops the stage meanwhile). The slide is INCOMPLETE,
// never a dark slide called NILM.
func TestOnTheFlyTriggerFault(t *testing.T) {
	skipWholeSlideInShort(t)
	for _, tc := range []struct {
		name string
		when func(scan.Progress) bool
		code hal.FaultCode
	}{
		{"at start", func(scan.Progress) bool { return true }, hal.FaultCamera},
		{"mid-row", func(p scan.Progress) bool { return p.Phase == "scan" && p.Done == 3 }, hal.FaultCamera},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rig := newFlyRig(t, triggerTweak, slide.Negative)
			if err := rig.scanner.Home(ctx); err != nil {
				t.Fatal(err)
			}
			trig := rig.world.CameraTrigger()
			rig.onProgress = func(p scan.Progress) {
				if tc.when(p) {
					trig.Break()
				}
			}
			r, err := rig.scanner.ScanSlot(ctx, "F", 0)
			f := hal.FaultOf(err)
			if f == nil || f.Code != tc.code {
				t.Fatalf("err = %v, want a %s fault", err, tc.code)
			}
			if r == nil || r.Complete() || r.Verdict != "INCOMPLETE" {
				t.Fatalf("report %+v: want INCOMPLETE", r)
			}
		})
	}
}
