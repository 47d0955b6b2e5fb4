package scan

import (
	"context"
	"errors"
	"image"
	"log/slog"
	"math"
	"testing"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/sim"
)

// lens is a focus stage and camera over a specimen in focus at zTrue: the
// frames carry stripes whose contrast falls off as a Gaussian of the
// defocus (sigma µm), so their Sharpness does too.
type lens struct {
	z, zTrue, sigma float64
	frames          int
}

func (l *lens) String() string                    { return "lens" }
func (l *lens) Home(context.Context) error        { return nil }
func (l *lens) Halt() error                       { return nil }
func (l *lens) Z() (physic.Distance, error)       { return dist(l.z), nil }
func (l *lens) Range() (min, max physic.Distance) { return 0, 2 * physic.MilliMetre }
func (l *lens) Size() (w, h int)                  { return 64, 48 }
func (l *lens) PixelSize() physic.Distance        { return physic.MicroMetre / 2 }
func (l *lens) SetZ(_ context.Context, z physic.Distance) error {
	l.z = um(z)
	return nil
}

func (l *lens) Capture(_ context.Context, dst *image.RGBA) (*image.RGBA, error) {
	l.frames++
	return stripes(dst, l.z-l.zTrue, l.sigma), nil
}

// stripes draws into dst (a 64x48 frame, allocated if nil) vertical
// stripes whose contrast falls off as a Gaussian of the defocus d (µm,
// width sigma), so their Sharpness does too.
func stripes(dst *image.RGBA, d, sigma float64) *image.RGBA {
	if dst == nil {
		dst = image.NewRGBA(image.Rect(0, 0, 64, 48))
	}
	a := 100 * math.Exp(-d*d/(4*sigma*sigma)) // sharpness ∝ a²
	for y := range 48 {
		for x := range 64 {
			v := uint8(128 + a*float64((x/2)%2*2-1))
			o := y*dst.Stride + x*4
			dst.Pix[o], dst.Pix[o+1], dst.Pix[o+2], dst.Pix[o+3] = v, v, v, 255
		}
	}
	return dst
}

var (
	_ hal.Focus  = (*lens)(nil)
	_ hal.Camera = (*lens)(nil)
)

func lensScanner(l *lens) *Scanner {
	return &Scanner{m: Machine{Focus: l, Camera: l, Clock: sim.NewClock()},
		o: Options{FocusStep: 3, FocusRange: 30}, log: slog.New(slog.DiscardHandler)}
}

// focusNear brackets a good prediction with three frames and refines
// with two; a prediction a step or two off climbs to the peak with a frame
// per step; one beyond the local range is no peak (the caller widens); a
// confirmed refocus costs two frames.
func TestFocusNear(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []focusCase{
		{"on the peak", 0.4, 5, false},
		{"a step above", 3.5, 6, false},
		{"two steps below", -6.8, 7, false},
		{"beyond the local range", 14, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &lens{zTrue: 1000, sigma: 2}
			s := lensScanner(l)
			var r Report
			var buf *image.RGBA
			z, err := s.focusNear(ctx, &r, l.zTrue+tc.off, math.NaN(), false, &buf)
			checkBracket(t, tc, z, err, l.zTrue, l.frames, &r, 0.2)
		})
	}
	// Refocus check of a tile imaged on the peak: two frames confirm it.
	l := &lens{zTrue: 1000, sigma: 2}
	s := lensScanner(l)
	var r Report
	var buf *image.RGBA
	l.z = 1000.5
	img, _ := l.Capture(ctx, nil)
	l.frames = 0
	z, err := s.checkFocus(ctx, &r, 1000.5, Sharpness(img), &buf)
	if err != nil || math.Abs(z-1000.5) >= s.o.FocusStep/2 || l.frames != 2 {
		t.Errorf("check on the peak: focus %.2f, %d frames, err %v", z, l.frames, err)
	}
}

// focusCase is a bracket test: how far the prediction lies from the truth,
// and what the bracket may spend or must report.
type focusCase struct {
	name      string
	off       float64 // prediction - truth, µm
	maxFrames int
	noPeak    bool
}

// checkBracket asserts a bracket's outcome: ErrNoFocusPeak when tc expects
// no peak, else the peak within tol µm of the truth zTrue from at most
// tc.maxFrames frames in one operation, the report counting those frames.
// It reports whether a peak was found (the caller's further checks).
func checkBracket(t *testing.T, tc focusCase, z float64, err error, zTrue float64, frames int, r *Report, tol float64) bool {
	t.Helper()
	if tc.noPeak {
		if !errors.Is(err, ErrNoFocusPeak) {
			t.Fatalf("focus %.2f, err %v; want no peak", z, err)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(z-zTrue) > tol || frames > tc.maxFrames || r.Focus.Ops != 1 || r.Focus.Frames != frames {
		t.Errorf("focus %.2f (truth %.0f), %d frames (max %d), %d ops", z, zTrue, frames, tc.maxFrames, r.Focus.Ops)
	}
	return true
}
