package scan

import (
	"context"
	"image"
	"log/slog"
	"math"
	"testing"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/sim"
)

// sweepLens is a Tic-like focus axis (constant speed between targets, no
// acceleration) and a free-running camera (frames every iv, exposed for
// exp from their timestamp) over a specimen in focus at zTrue: the
// frames' contrast falls off as a Gaussian of the defocus at the middle
// of their exposure.
type sweepLens struct {
	clock          *sim.Clock
	iv, exp        time.Duration
	zTrue, sigma   float64
	from, target   float64 // µm
	t0             time.Time
	speed, cruise  float64 // µm/s: configured, and set by SetCruise (0: configured)
	frames, starts int
	last           hal.FrameInfo
}

func (l *sweepLens) v() float64 {
	if l.cruise > 0 {
		return l.cruise
	}
	return l.speed
}

// at is the focus at t.
func (l *sweepLens) at(t time.Time) float64 {
	d := l.target - l.from
	run := l.v() * t.Sub(l.t0).Seconds()
	if run >= math.Abs(d) {
		return l.target
	}
	return l.from + math.Copysign(run, d)
}

func (l *sweepLens) String() string                     { return "sweep lens" }
func (l *sweepLens) Home(context.Context) error         { return nil }
func (l *sweepLens) Homed() bool                        { return true }
func (l *sweepLens) Halt() error                        { return nil }
func (l *sweepLens) Travel() (min, max physic.Distance) { return 0, 2 * physic.MilliMetre }
func (l *sweepLens) Position() (physic.Distance, error) {
	return dist(math.Round(l.at(l.clock.Now())*12.8) / 12.8), nil
}

func (l *sweepLens) Start(target physic.Distance) error {
	now := l.clock.Now()
	l.from, l.target, l.t0 = l.at(now), um(target), now
	l.starts++
	return nil
}

func (l *sweepLens) Wait(ctx context.Context) error {
	left := math.Abs(l.target-l.at(l.clock.Now())) / l.v()
	return l.clock.Sleep(ctx, time.Duration(left*float64(time.Second))+5*time.Millisecond)
}

func (l *sweepLens) SetCruise(v physic.Speed) error {
	// Like the Tic: the move under way keeps its speed until the next
	// target.
	now := l.clock.Now()
	l.from, l.t0 = l.at(now), now
	l.cruise = float64(v) / float64(physic.MicroMetrePerSecond)
	return nil
}

func (l *sweepLens) Poll() (physic.Distance, bool, error) {
	p, _ := l.Position()
	return p, l.at(l.clock.Now()) != l.target, nil
}

func (l *sweepLens) Size() (w, h int)           { return 64, 48 }
func (l *sweepLens) PixelSize() physic.Distance { return physic.MicroMetre / 2 }
func (l *sweepLens) LastFrame() hal.FrameInfo   { return l.last }

func (l *sweepLens) Capture(ctx context.Context, dst *image.RGBA) (*image.RGBA, error) {
	now := l.clock.Now()
	k := (now.Sub(sim.Epoch) + l.iv - 1) / l.iv
	start := sim.Epoch.Add(k * l.iv)
	if err := l.clock.Sleep(ctx, start.Add(l.exp).Sub(now)); err != nil {
		return dst, err
	}
	l.frames++
	l.last = hal.FrameInfo{Seq: uint64(k), Timestamp: start}
	return stripes(dst, l.at(start.Add(l.exp/2))-l.zTrue, l.sigma), nil
}

var (
	_ hal.SweepAxis  = (*sweepLens)(nil)
	_ hal.Camera     = (*sweepLens)(nil)
	_ hal.FrameTimer = (*sweepLens)(nil)
)

// The focus map's coarse bracket on the fly is swept when the focus can
// cruise and the camera stamps its frames: Z crosses the bracket at one
// focus step per frame interval and every frame slot is a frame, where a
// stepped bracket waits a move and a settle for the next slot. It finds
// the peak as the stepped one does, below the start too, gives up (to the
// caller's full sweep) on a peak out of reach, and leaves the focus at
// its configured speed.
func TestSweptBracket(t *testing.T) {
	ctx := context.Background()
	const iv = 33333 * time.Microsecond
	for _, tc := range []focusCase{ // maxFrames: after the frame on arrival
		{"on the peak", 0.4, 3, false},
		{"a step above the peak", 3.5, 5, false},
		{"a step below the peak", -3.2, 4, false},
		{"two and a half steps below", -7.5, 5, false},
		{"flat: far below", -15, 0, true},
		{"three steps above", 9.4, 9, false},
		{"beyond the climb", 40, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := sim.NewClock()
			l := &sweepLens{clock: clk, iv: iv, exp: 2 * time.Millisecond, zTrue: 1000, sigma: 2, speed: 1000}
			s := &Scanner{m: Machine{Focus: hal.AxisFocus{Axis: l}, Camera: l, Clock: clk},
				o:   Options{FocusStep: 3, FocusRange: 30, Motion: MotionModel{Z: AxisModel{Speed: 1000, Accel: 20000}, FrameInterval: iv, Exposure: 2 * time.Millisecond}},
				log: slog.New(slog.DiscardHandler)}
			zp := l.zTrue + tc.off
			// On arrival one step below the prediction, with its frame.
			if err := s.m.Focus.SetZ(ctx, dist(zp-3)); err != nil {
				t.Fatal(err)
			}
			var buf *image.RGBA
			img, _ := l.Capture(ctx, nil)
			l.frames = 0
			t0 := clk.Now()
			var r Report
			z, err := s.focusNearFrom(ctx, &r, zp, Sharpness(img), math.NaN(), true, true, &buf)
			took := clk.Now().Sub(t0)
			if l.cruise != 0 {
				t.Errorf("focus left at %.0f µm/s, not its configured speed", l.cruise)
			}
			if !checkBracket(t, tc, z, err, l.zTrue, l.frames, &r, 0.25) {
				return
			}
			t.Logf("focus %.2f µm (truth %.0f) from %d frames in %v", z, l.zTrue, l.frames, took)
			if tc.off > -1 && tc.off < 4 && took > time.Duration(l.frames)*iv+5*time.Millisecond {
				t.Errorf("%d swept frames took %v: more than a frame interval each", l.frames, took)
			}
		})
	}
}
