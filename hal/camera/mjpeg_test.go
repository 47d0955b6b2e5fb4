package camera_test

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"testing"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim/slide"
)

func testScene(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			// Smooth colour ramps plus a few dark "nuclei".
			r := uint8(120 + 100*x/w)
			g := uint8(90 + 120*y/h)
			b := uint8(200 - 80*x/w)
			if (x/40+y/40)%7 == 0 && (x%40-20)*(x%40-20)+(y%40-20)*(y%40-20) < 100 {
				r, g, b = 60, 40, 110
			}
			img.SetRGBA(x, y, color.RGBA{r, g, b, 255})
		}
	}
	return img
}

func encodeJPEG(t testing.TB, img image.Image, q int) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecodeMJPEG: a JPEG frame decodes to the scene within JPEG's
// quantisation error, in every chroma layout a UVC camera sends.
func TestDecodeMJPEG(t *testing.T) {
	src := testScene(320, 240)
	for _, ratio := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio444} {
		ycc := image.NewYCbCr(src.Rect, ratio)
		for y := range 240 {
			for x := range 320 {
				c := src.RGBAAt(x, y)
				yy, cb, cr := color.RGBToYCbCr(c.R, c.G, c.B)
				ycc.Y[ycc.YOffset(x, y)] = yy
				ycc.Cb[ycc.COffset(x, y)] = cb
				ycc.Cr[ycc.COffset(x, y)] = cr
			}
		}
		raw := encodeJPEG(t, ycc, 95)
		got, err := camera.Decode(nil, raw, hal.PixFmtMJPEG, 320, 240)
		if err != nil {
			t.Fatalf("%v: %v", ratio, err)
		}
		var se, n float64
		for i := 0; i < len(src.Pix); i += 4 {
			for c := range 3 {
				d := float64(got.Pix[i+c]) - float64(src.Pix[i+c])
				se += d * d
				n++
			}
		}
		if rmse := math.Sqrt(se / n); rmse > 6 {
			t.Errorf("%v: RMS error %.2f DN against the scene", ratio, rmse)
		}
	}
}

// TestDecodeMJPEGBad: garbage, a truncated JPEG and a JPEG of the wrong
// size are errors naming the frame, never a panic.
func TestDecodeMJPEGBad(t *testing.T) {
	good := encodeJPEG(t, testScene(64, 48), 80)
	for name, raw := range map[string][]byte{
		"empty":     nil,
		"garbage":   bytes.Repeat([]byte{0x55}, 100),
		"truncated": good[:len(good)/2],
	} {
		_, err := camera.Decode(nil, raw, hal.PixFmtMJPEG, 64, 48)
		var me *camera.MJPEGError
		if !errors.As(err, &me) {
			t.Errorf("%s: err = %v, want *MJPEGError", name, err)
		}
	}
	if _, err := camera.Decode(nil, good, hal.PixFmtMJPEG, 128, 48); err == nil {
		t.Error("a 64x48 JPEG decoded as 128x48")
	}
}

// FuzzDecodeMJPEG: any bytes decode or fail cleanly.
func FuzzDecodeMJPEG(f *testing.F) {
	f.Add(encodeJPEG(f, testScene(32, 16), 70))
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, raw []byte) {
		img, err := camera.Decode(nil, raw, hal.PixFmtMJPEG, 32, 16)
		if err == nil && img.Bounds() != image.Rect(0, 0, 32, 16) {
			t.Fatalf("decoded to %v", img.Bounds())
		}
	})
}

// BenchmarkDecodeMJPEG decodes a 1280x960 (sim) and a 1920x1080 (r2)
// frame of a simulated Pap smear with sensor noise, JPEG quality 85 4:2:0
// as the simulated camera encodes them. MB/s is compressed bytes decoded
// per second; run with -cpu 1 for one core.
func BenchmarkDecodeMJPEG(b *testing.B) {
	sl := slide.Synthetic(slide.Spec{ID: "BENCH", Seed: 5, Diagnosis: slide.HighGrade, FocusBaseUM: 100})
	cx, cy, _ := sl.Spot()
	for _, sz := range []struct {
		name string
		w, h int
		px   float64
	}{{"1280x960", 1280, 960, 0.5}, {"1920x1080", 1920, 1080, 0.29}} {
		b.Run(sz.name, func(b *testing.B) {
			scene := image.NewRGBA(image.Rect(0, 0, sz.w, sz.h))
			slide.NewRenderer(slide.RenderOptions{PixelUM: sz.px}).Render(sl, scene, cx, cy, 0, rand.New(rand.NewPCG(1, 1)))
			raw := encodeJPEG(b, scene, 85)
			var dst *image.RGBA
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if dst, err = camera.Decode(dst, raw, hal.PixFmtMJPEG, sz.w, sz.h); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			b.ReportMetric(float64(sz.w*sz.h)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MP/s")
		})
	}
}
