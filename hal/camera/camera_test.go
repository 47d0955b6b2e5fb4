package camera_test

import (
	"context"
	"errors"
	"image"
	"image/color"
	"strings"
	"syscall"
	"testing"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

// chart is a colour chart: 2-pixel-wide patches (so YUYV chroma sharing
// does not mix colours) of a grey ramp, primaries, secondaries and Pap
// stain colours.
func chart() *image.RGBA {
	cols := []color.RGBA{
		{0, 0, 0, 255}, {255, 255, 255, 255}, {128, 128, 128, 255}, {64, 64, 64, 255}, {192, 192, 192, 255},
		{255, 0, 0, 255}, {0, 255, 0, 255}, {0, 0, 255, 255}, {255, 255, 0, 255}, {0, 255, 255, 255}, {255, 0, 255, 255},
		{235, 235, 230, 255}, {230, 188, 202, 255}, {188, 212, 219, 255}, {60, 50, 120, 255}, {40, 30, 90, 255},
		{115, 82, 68, 255}, {194, 150, 130, 255}, {98, 122, 157, 255}, {87, 108, 67, 255}, {133, 128, 177, 255},
	}
	img := image.NewRGBA(image.Rect(0, 0, 2*len(cols), 4))
	for y := range 4 {
		for i, c := range cols {
			img.SetRGBA(2*i, y, c)
			img.SetRGBA(2*i+1, y, c)
		}
	}
	return img
}

func TestYUYVRoundTrip(t *testing.T) {
	src := chart()
	raw := sim.EncodeYUYV(nil, src)
	w, h := src.Bounds().Dx(), src.Bounds().Dy()
	if len(raw) != w*h*2 {
		t.Fatalf("encoded %d bytes, want %d", len(raw), w*h*2)
	}
	dst, err := camera.Decode(nil, raw, hal.PixFmtYUYV, w, h)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0
	for i := 0; i < len(src.Pix); i++ {
		d := int(src.Pix[i]) - int(dst.Pix[i])
		worst = max(worst, d, -d)
	}
	if worst > 3 {
		t.Errorf("round trip error up to %d levels, want <= 3", worst)
	}
	// Limited range: black is Y=16, white Y=235, grey has neutral chroma.
	if raw[0] != 16 || raw[2] != 16 || raw[4] != 235 || raw[5] != 128 || raw[7] != 128 {
		t.Errorf("black/white encoded as % x", raw[:8])
	}
}

func TestRGB3(t *testing.T) {
	raw := []byte{1, 2, 3, 4, 5, 6}
	dst, err := camera.Decode(nil, raw, hal.PixFmtRGB3, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{1, 2, 3, 255, 4, 5, 6, 255}; string(dst.Pix) != string(want) {
		t.Errorf("got % x", dst.Pix)
	}
}

func TestShortFrame(t *testing.T) {
	_, err := camera.Decode(nil, make([]byte, 100), hal.PixFmtYUYV, 16, 8)
	var fe *camera.FrameSizeError
	if !errors.As(err, &fe) || fe.Want != 256 || fe.Got != 100 {
		t.Fatalf("err = %v", err)
	}
	for _, s := range []string{"YUYV", "16x8", "100", "256"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %s", err, s)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	h264 := uint32('H') | '2'<<8 | '6'<<16 | '4'<<24
	_, err := camera.Decode(nil, make([]byte, 64), h264, 4, 4)
	var fe *camera.FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "H264") {
		t.Fatalf("err = %v", err)
	}
}

// fixedSource hands out one prepared frame.
type fixedSource struct {
	fourcc uint32
	w, h   int
	frame  []byte
}

func (f *fixedSource) String() string                    { return "fixed" }
func (f *fixedSource) Format() (fourcc uint32, w, h int) { return f.fourcc, f.w, f.h }
func (f *fixedSource) Close() error                      { return nil }
func (f *fixedSource) ReadFrame(_ context.Context, dst []byte) ([]byte, error) {
	return append(dst[:0], f.frame...), nil
}

func TestCaptureErrors(t *testing.T) {
	c := camera.New(&fixedSource{fourcc: hal.PixFmtYUYV, w: 8, h: 2, frame: make([]byte, 30)}, physic.MicroMetre)
	_, err := c.Capture(context.Background(), nil)
	var fe *camera.FrameSizeError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "fixed") {
		t.Errorf("short frame: %v", err)
	}
}

func newSimCamera(t testing.TB) (*sim.Camera, *camera.Camera) {
	s := slide.Synthetic(slide.Spec{ID: "CAM", Seed: 1, FocusBaseUM: 50})
	clk := sim.NewClock()
	src := sim.NewCamera(clk, sim.CameraOptions{
		Width: 320, Height: 240,
		Pose:     func() (x, y, z float64) { return 40000, 12500, s.FocusZ(40000, 12500) },
		Specimen: func() *slide.Slide { return s },
	})
	return src, camera.New(src, physic.Distance(src.PixelUM()*float64(physic.MicroMetre)))
}

func TestCaptureSimCamera(t *testing.T) {
	src, c := newSimCamera(t)
	ctx := context.Background()
	if w, h := c.Size(); w != 320 || h != 240 {
		t.Fatalf("size %dx%d", w, h)
	}
	img, err := c.Capture(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Capture(ctx, img)
	if err != nil || again != img {
		t.Fatalf("second capture reallocated (%v)", err)
	}
	if a := testing.AllocsPerRun(3, func() {
		if _, err := c.Capture(ctx, img); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%v allocations per capture", a)
	}
	src.Disconnect()
	if _, err := c.Capture(ctx, img); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("disconnected: %v", err)
	}
	src.Reconnect()
	src.DropFrames(1)
	if _, err := c.Capture(ctx, img); !errors.Is(err, hal.ErrTimeout) {
		t.Errorf("dropped frame: %v", err)
	}
	if _, err := c.Capture(ctx, img); err != nil {
		t.Errorf("after faults: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte{16, 128, 235, 128}, uint16(2), uint16(1), false)
	f.Add([]byte{1, 2, 3}, uint16(1), uint16(1), true)
	f.Add([]byte{}, uint16(0), uint16(0), false)
	f.Fuzz(func(t *testing.T, data []byte, w, h uint16, rgb bool) {
		fourcc := hal.PixFmtYUYV
		if rgb {
			fourcc = hal.PixFmtRGB3
		}
		img, err := camera.Decode(nil, data, fourcc, int(w), int(h))
		if err == nil {
			if img.Bounds() != image.Rect(0, 0, int(w), int(h)) {
				t.Fatalf("bounds %v for %dx%d", img.Bounds(), w, h)
			}
			if n, _ := camera.FrameBytes(fourcc, int(w), int(h)); n != len(data) {
				t.Fatalf("accepted %d bytes for %d", len(data), n)
			}
		}
		// Odd sizes and wrong lengths must be rejected, never panic.
		_, _ = camera.Decode(image.NewRGBA(image.Rect(0, 0, 3, 3)), data, fourcc, int(w)+1, int(h))
	})
}

func BenchmarkDecodeYUYV(b *testing.B) {
	const w, h = 1280, 960
	src := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range src.Pix {
		src.Pix[i] = uint8(i * 7)
	}
	raw := sim.EncodeYUYV(nil, src)
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := camera.Decode(dst, raw, hal.PixFmtYUYV, w, h); err != nil {
			b.Fatal(err)
		}
	}
}
