package sim_test

import (
	"context"
	"image"
	"math"
	"testing"
	"time"

	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

// rollingRig is a rolling-shutter camera (noise off) over a stage moving
// along x at v µm/s from the spot centre at the clock's epoch.
func rollingRig(v float64, line, exposure time.Duration, lamp bool) (*sim.Clock, *sim.Camera, *sim.Lamp) {
	s := slide.Synthetic(slide.Spec{ID: "ROLL", Seed: 9, FocusBaseUM: 200, SpotDiameterUM: 2000, CellsPerMM2: 3000})
	clk := sim.NewClock()
	cx, cy, _ := s.Spot()
	pose := func() (float64, float64, float64) {
		x := cx + v*clk.Elapsed().Seconds()
		return x, cy, s.FocusZ(cx, cy)
	}
	var l *sim.Lamp
	if lamp {
		l = sim.NewLamp(clk, pose)
	}
	cam := sim.NewCamera(clk, sim.CameraOptions{
		Width: 256, Height: 192, PixelUM: 0.5, Exposure: exposure, FrameInterval: time.Second / 30,
		LineTime: line, NoiseSigma: -1, TimestampJitter: -1,
		Pose: pose, Specimen: func() *slide.Slide { return s }, Lamp: l,
	})
	return clk, cam, l
}

// bandShift is the horizontal shift (pixels, sub-pixel) that best maps
// rows [r0, r1) of b onto a: the peak of the cross-correlation of their
// column profiles.
func bandShift(a, b *image.RGBA, r0, r1 int) float64 {
	w := a.Rect.Dx()
	prof := func(img *image.RGBA) []float64 {
		p := make([]float64, w)
		for y := r0; y < r1; y++ {
			for x := range w {
				p[x] += float64(img.Pix[y*img.Stride+x*4+1])
			}
		}
		var m float64
		for _, v := range p {
			m += v
		}
		m /= float64(w)
		for i := range p {
			p[i] -= m
		}
		return p
	}
	pa, pb := prof(a), prof(b)
	const maxS = 24
	cc := make([]float64, 2*maxS+1)
	for s := -maxS; s <= maxS; s++ {
		for x := maxS; x < w-maxS; x++ {
			cc[s+maxS] += pa[x] * pb[x+s]
		}
	}
	best := 1
	for i := 1; i < len(cc)-1; i++ {
		if cc[i] > cc[best] {
			best = i
		}
	}
	y0, y1, y2 := cc[best-1], cc[best], cc[best+1]
	off := 0.0
	if d := y0 - 2*y1 + y2; d != 0 {
		off = 0.5 * (y0 - y2) / d
	}
	return float64(best-maxS) + off
}

// TestRollingShutterSkew: under steady light a rolling shutter exposes each
// row at its own time, so a moving stage skews the frame by speed ×
// (height-1) × line time. The skew is measured twice: the camera's own
// account (LastSkew) and in the image, as the horizontal shift between
// the top and bottom bands of rows against the same frame taken standing
// still.
func TestRollingShutterSkew(t *testing.T) {
	ctx := context.Background()
	const v, line, px = 1000.0, 20 * time.Microsecond, 0.5
	_, cam, _ := rollingRig(v, line, time.Millisecond, false)
	raw, err := cam.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	moving := decode(t, cam, raw)
	dx, dy, rows := cam.LastSkew()
	want := v * (line * 191).Seconds() / px
	if math.Abs(dx-want) > 0.01*want || dy != 0 || rows != 192 {
		t.Fatalf("skew %.3f, %.3f px over %d rows; want %.3f px along x over 192 rows", dx, dy, rows, want)
	}
	// The same scene standing still, and the shift of six bands of rows
	// against it: the content under later rows lies further back.
	_, still, _ := rollingRig(0, line, time.Millisecond, false)
	raw, err = still.ReadFrame(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref := decode(t, still, raw)
	var sx, sy, sxx, sxy float64
	const bands = 6
	for b := range bands {
		r := float64(b*32) + 15.5
		sh := -bandShift(ref, moving, b*32, b*32+32)
		sx, sy, sxx, sxy = sx+r, sy+sh, sxx+r*r, sxy+r*sh
	}
	slope := (bands*sxy - sx*sy) / (bands*sxx - sx*sx) // px per row
	measured := slope * 191
	t.Logf("skew over the frame: camera %.2f px, measured in the image %.2f px (want %.2f)", dx, measured, want)
	if math.Abs(measured-want) > 0.12*want {
		t.Errorf("skew measured in the image %.2f px, want %.2f ± 12%%", measured, want)
	}
}

// TestRollingShutterStrobe: a strobe pulse that falls while every row is
// exposing lights the whole frame at one instant: no skew, full light. A
// pulse before the last row has started lights only the rows exposing at
// that time; the rest of the frame stays dark.
func TestRollingShutterStrobe(t *testing.T) {
	ctx := context.Background()
	const v, line = 17280.0, 10 * time.Microsecond // 1.91 ms readout
	const exposure = 8 * time.Millisecond
	for _, tc := range []struct {
		name   string
		at     time.Duration // pulse start after row 0 starts
		allLit bool
	}{{"in the window", 4 * time.Millisecond, true}, {"before the last row", time.Millisecond, false}} {
		t.Run(tc.name, func(t *testing.T) {
			clk, cam, lamp := rollingRig(v, line, exposure, true)
			if _, err := cam.ReadFrame(ctx, nil); err != nil {
				t.Fatal(err)
			}
			fi := cam.LastFrame()
			at := fi.Timestamp.Add(time.Second / 30).Add(tc.at)
			clk.Advance(at.Sub(clk.Now()))
			lamp.Set(true)
			clk.Advance(10 * time.Microsecond)
			lamp.Set(false)
			if _, err := cam.ReadFrame(ctx, nil); err != nil {
				t.Fatal(err)
			}
			dx, _, rows := cam.LastSkew()
			bx, _, light := cam.LastMotion()
			t.Logf("lit rows %d, skew %.3f px, blur %.3f px, light %.2f", rows, dx, bx, light)
			if tc.allLit {
				if rows != 192 || math.Abs(dx) > 0.01 || math.Abs(light-1) > 0.01 || bx > 0.5 {
					t.Errorf("lit rows %d, skew %.3f px, light %.2f, blur %.2f; want all 192, no skew, light 1, blur <= 0.5", rows, dx, light, bx)
				}
			} else if rows >= 192 || light > 0.9 {
				t.Errorf("lit rows %d, light %.2f: want only the rows exposing at the pulse", rows, light)
			}
		})
	}
}
