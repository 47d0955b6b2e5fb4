package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"time"

	"papscan/hal"
)

// SelfTestOptions configure the self-test. Lengths are micrometres.
type SelfTestOptions struct {
	// Disabled skips the self-test around magazines (RunMagazine).
	Disabled bool
	// Reference is the stage position of the reference target on the
	// slide holder; clear glass lies GlassOffset beside it.
	Reference   Point
	GlassOffset Point // zero means (2000, 0)
	// ReferenceZ is the focus of the reference target.
	ReferenceZ float64
	// Tolerance is the largest home-repeatability error and the largest
	// focus offset on the reference accepted.
	Tolerance float64
}

// Check is one self-test measurement.
type Check struct {
	Name   string  `json:"name"` // camera, illumination, focus_reference, home_repeatability
	OK     bool    `json:"ok"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// SelfTestResult is the outcome of a self-test.
type SelfTestResult struct {
	OK       bool      `json:"ok"`
	At       time.Time `json:"at"` // machine clock
	Seconds  float64   `json:"machine_seconds"`
	Checks   []Check   `json:"checks"`
	Failures []string  `json:"failures,omitempty"` // "name: detail" of each failed check
}

func (t *SelfTestResult) add(c Check) {
	t.Checks = append(t.Checks, c)
	if !c.OK {
		t.OK = false
		t.Failures = append(t.Failures, c.Name+": "+c.Detail)
	}
}

// Illumination limits: mean green of clear glass (8-bit) and the darkest
// region's share of the brightest.
const (
	minGlassLevel  = 150.0
	maxGlassLevel  = 252.0
	minFlatness    = 0.8
	maxShiftSearch = 24 // pixels searched each way for home repeatability
)

// SelfTest checks the machine against the reference target on the slide
// holder (o.SelfTest): it homes focus and stage; focuses on the reference
// (the focus found must be within the tolerance of its known focus); images
// the clear glass beside it (the camera delivers frames that change from
// one to the next; the illumination is bright enough, not saturated and
// flat); homes the stage again and images the reference at the same place
// (the image shift between the two homings is the home repeatability). No
// slide may be on the stage. Device failures are failed checks, not
// errors; the error is non-nil only when ctx ended. It uses o's focus
// range and step, and needs no classifier.
func SelfTest(ctx context.Context, m hal.Machine, o Options) (*SelfTestResult, error) {
	o.Model = nil
	if m.Clock == nil || m.Camera == nil || m.Focus == nil || m.Stage.X == nil || m.Stage.Y == nil {
		return nil, errors.New("scan: self-test: machine is missing a device")
	}
	if !(o.FocusStep > 0) || !(o.FocusRange >= o.FocusStep) {
		return nil, fmt.Errorf("scan: self-test: need 0 < focus step (%g µm) <= focus range (%g µm)", o.FocusStep, o.FocusRange)
	}
	if o.Logger == nil {
		o.Logger = discardLogger()
	}
	s := &Scanner{m: m, o: o, log: o.Logger}
	return s.selfTest(ctx)
}

// SelfTest runs SelfTest on the scanner's machine with its options.
func (s *Scanner) SelfTest(ctx context.Context) (*SelfTestResult, error) { return s.selfTest(ctx) }

func (s *Scanner) selfTest(ctx context.Context) (*SelfTestResult, error) {
	st := s.o.SelfTest
	tol := st.Tolerance
	if !(tol > 0) {
		tol = 2
	}
	glass := st.GlassOffset
	if glass == (Point{}) {
		glass = Point{2000, 0}
	}
	res := &SelfTestResult{OK: true, At: s.m.Clock.Now()}
	defer func() { res.Seconds = s.m.Clock.Now().Sub(res.At).Seconds() }()
	r := &Report{} // accounting sink for the shared move/capture helpers
	fail := func(name string, err error) (*SelfTestResult, error) {
		res.add(Check{Name: name, Detail: err.Error()})
		_ = s.Halt()
		return res, ctxErr(ctx)
	}
	if s.m.Light != nil {
		if err := s.m.Light.SetBrightness(1); err != nil {
			return fail("illumination", err)
		}
		defer s.m.Light.SetBrightness(0)
	}
	if err := s.Home(ctx); err != nil {
		return fail("home_repeatability", err)
	}
	ref := st.Reference

	// Focus on the reference.
	if err := s.moveTo(ctx, r, ref.X, ref.Y); err != nil {
		return fail("focus_reference", err)
	}
	var buf *image.RGBA
	z, err := s.autofocus(ctx, r, st.ReferenceZ, s.o.FocusRange, &buf)
	if err != nil {
		if errors.Is(err, ErrNoFocusPeak) {
			res.add(Check{Name: "focus_reference", Limit: tol, Unit: "um", Detail: err.Error()})
		} else {
			return fail("focus_reference", err)
		}
		z = st.ReferenceZ
	} else {
		off := z - st.ReferenceZ
		res.add(Check{Name: "focus_reference", OK: math.Abs(off) <= tol, Value: off, Limit: tol, Unit: "um",
			Detail: fmt.Sprintf("focus %.2f µm, reference %.2f µm (%d frames)", z, st.ReferenceZ, r.Focus.Frames)})
	}
	if err := s.setZ(ctx, r, z); err != nil {
		return fail("focus_reference", err)
	}
	imgA, err := s.capture(ctx, r, nil)
	if err != nil {
		return fail("camera", err)
	}

	// Camera and illumination on clear glass.
	if err := s.moveTo(ctx, r, ref.X+glass.X, ref.Y+glass.Y); err != nil {
		return fail("illumination", err)
	}
	g1, err := s.capture(ctx, r, nil)
	if err != nil {
		return fail("camera", err)
	}
	g2, err := s.capture(ctx, r, nil)
	if err != nil {
		return fail("camera", err)
	}
	w, h := s.m.Camera.Size()
	diff := meanAbsDiff(g1, g2)
	camOK := g1.Rect.Dx() == w && g1.Rect.Dy() == h && diff > 0
	res.add(Check{Name: "camera", OK: camOK, Value: diff, Limit: 0, Unit: "DN",
		Detail: fmt.Sprintf("%dx%d frames, mean frame-to-frame change %.2f DN (0 is a frozen sensor)", g1.Rect.Dx(), g1.Rect.Dy(), diff)})
	level, flat, sat := glassStats(g1)
	illOK := level >= minGlassLevel && level <= maxGlassLevel && flat >= minFlatness && sat < 0.01
	res.add(Check{Name: "illumination", OK: illOK, Value: level, Limit: minGlassLevel, Unit: "DN",
		Detail: fmt.Sprintf("glass level %.0f (want %.0f..%.0f), flatness %.2f (want >= %.2f), saturated %.1f%%", level, minGlassLevel, maxGlassLevel, flat, minFlatness, 100*sat)})

	// Home again and image the reference at the same place.
	if err := s.m.Stage.Home(ctx); err != nil {
		return fail("home_repeatability", err)
	}
	if err := s.moveTo(ctx, r, ref.X, ref.Y); err != nil {
		return fail("home_repeatability", err)
	}
	imgB, err := s.capture(ctx, r, nil)
	if err != nil {
		return fail("camera", err)
	}
	dx, dy, ok := imageShift(imgA, imgB, maxShiftSearch)
	px := um(s.m.Camera.PixelSize())
	if !ok {
		res.add(Check{Name: "home_repeatability", Limit: tol, Unit: "um",
			Detail: fmt.Sprintf("reference not found again within ±%d pixels after homing", maxShiftSearch)})
	} else {
		e := math.Hypot(float64(dx), float64(dy)) * px
		res.add(Check{Name: "home_repeatability", OK: e <= tol, Value: e, Limit: tol, Unit: "um",
			Detail: fmt.Sprintf("reference moved %d, %d pixels between two homings", dx, dy)})
	}
	return res, nil
}

// ctxErr is ctx's error if it ended (the failure is then the
// cancellation, not the machine), else nil: a device failure is a failed
// check, not an error.
func ctxErr(ctx context.Context) error { return ctx.Err() }

// meanAbsDiff is the mean absolute difference of green between a and b on
// a sparse grid.
func meanAbsDiff(a, b *image.RGBA) float64 {
	if a.Rect != b.Rect {
		return math.Inf(1)
	}
	var sum, n float64
	for y := 0; y < a.Rect.Dy(); y += 3 {
		for x := 0; x < a.Rect.Dx(); x += 3 {
			o := y*a.Stride + x*4 + 1
			sum += math.Abs(float64(a.Pix[o]) - float64(b.Pix[o]))
			n++
		}
	}
	return sum / math.Max(n, 1)
}

// glassStats is the mean green level of an image of clear glass, its
// flatness (darkest of 4x4 regions over the brightest) and the fraction of
// saturated pixels.
func glassStats(img *image.RGBA) (level, flat, sat float64) {
	w, h := img.Rect.Dx(), img.Rect.Dy()
	var sums [16]float64
	var counts [16]float64
	var total, n, nsat float64
	for y := 0; y < h; y += 2 {
		for x := 0; x < w; x += 2 {
			g := float64(img.Pix[y*img.Stride+x*4+1])
			k := (y*4/h)*4 + x*4/w
			sums[k] += g
			counts[k]++
			total += g
			n++
			if g >= 254 {
				nsat++
			}
		}
	}
	if n == 0 {
		return 0, 0, 0
	}
	lo, hi := math.Inf(1), 0.0
	for k := range sums {
		if counts[k] == 0 {
			continue
		}
		m := sums[k] / counts[k]
		lo, hi = math.Min(lo, m), math.Max(hi, m)
	}
	if hi > 0 {
		flat = lo / hi
	}
	return total / n, flat, nsat / n
}

// imageShift finds the integer shift (dx, dy) that best maps the central
// region of a onto b (b(x+dx, y+dy) ≈ a(x, y)) within ±search pixels, by
// the smallest mean absolute difference of green; ok is false when even
// the best match is poor (the reference is not there).
func imageShift(a, b *image.RGBA, search int) (dx, dy int, ok bool) {
	if a.Rect != b.Rect {
		return 0, 0, false
	}
	w, h := a.Rect.Dx(), a.Rect.Dy()
	size := min(192, w-2*search-2, h-2*search-2)
	if size < 16 {
		return 0, 0, false
	}
	x0, y0 := (w-size)/2, (h-size)/2
	best := math.Inf(1)
	var mean float64
	for y := range size {
		for x := range size {
			mean += float64(a.Pix[(y0+y)*a.Stride+(x0+x)*4+1])
		}
	}
	mean /= float64(size * size)
	var spread float64 // mean absolute deviation: the texture to match
	for y := range size {
		for x := range size {
			spread += math.Abs(float64(a.Pix[(y0+y)*a.Stride+(x0+x)*4+1]) - mean)
		}
	}
	spread /= float64(size * size)
	for sy := -search; sy <= search; sy++ {
		for sx := -search; sx <= search; sx++ {
			var sad int
			for y := 0; y < size; y += 2 {
				ra := a.Pix[(y0+y)*a.Stride+x0*4:]
				rb := b.Pix[(y0+y+sy)*b.Stride+(x0+sx)*4:]
				for x := 0; x < size; x += 2 {
					d := int(ra[x*4+1]) - int(rb[x*4+1])
					if d < 0 {
						d = -d
					}
					sad += d
				}
			}
			if v := float64(sad) / float64((size/2)*(size/2)); v < best {
				best, dx, dy = v, sx, sy
			}
		}
	}
	// A real match leaves much less difference than the texture itself.
	return dx, dy, spread > 2 && best < 0.6*spread
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
