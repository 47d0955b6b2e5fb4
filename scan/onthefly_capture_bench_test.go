package scan

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"testing"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim/slide"
)

// memSource hands out pre-encoded MJPEG frames, never waiting.
type memSource struct {
	frames [][]byte
	w, h   int
	n      int
}

func (m *memSource) String() string                    { return "mem" }
func (m *memSource) Format() (fourcc uint32, w, h int) { return hal.PixFmtMJPEG, m.w, m.h }
func (m *memSource) Close() error                      { return nil }
func (m *memSource) ReadFrame(_ context.Context, dst []byte) ([]byte, error) {
	f := m.frames[m.n%len(m.frames)]
	m.n++
	return append(dst[:0], f...), nil
}

// BenchmarkFlyCapture is the capture side of the on-the-fly loop with an
// MJPEG camera, the camera itself never the limit: each frame is read,
// decoded and checked as captureOnTheFly checks it (mean level for a dark
// frame, the overlap strip registered on the previous frame's). "sync"
// decodes on the capture goroutine (camera.Capture); "async-N" grabs the
// next frame while N decode goroutines work and finishes each frame in
// order after the next grab (hal.Grabber), as the loop does for MJPEG.
// frames/s is what the capture loop sustains (the analysis has its own
// workers: BenchmarkFlyPipeline).
func BenchmarkFlyCapture(b *testing.B) {
	sl := slide.Synthetic(slide.Spec{ID: "CAPT", Seed: 7, Diagnosis: slide.HighGrade, FocusBaseUM: 100})
	cx, cy, _ := sl.Spot()
	for _, sz := range []struct {
		name string
		w, h int
		px   float64
	}{{"1280x960", 1280, 960, 0.5}, {"1920x1080", 1920, 1080, 0.29}} {
		// 8 frames along a row, 10 % overlap.
		src := &memSource{w: sz.w, h: sz.h}
		step := float64(sz.w) * sz.px * 0.9
		for k := range 8 {
			img := image.NewRGBA(image.Rect(0, 0, sz.w, sz.h))
			slide.NewRenderer(slide.RenderOptions{PixelUM: sz.px}).Render(sl, img, cx+float64(k)*step, cy, 0, rand.New(rand.NewPCG(uint64(k), 1)))
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
				b.Fatal(err)
			}
			src.frames = append(src.frames, buf.Bytes())
		}
		ov := sz.w / 10
		for _, workers := range []int{0, 1, 2} {
			name := "sync"
			if workers > 0 {
				name = fmt.Sprintf("async-%d", workers)
			}
			b.Run(sz.name+"/"+name, func(b *testing.B) {
				ctx := context.Background()
				cam := camera.New(src, physic.Distance(sz.px*float64(physic.MicroMetre)), camera.WithDecodeWorkers(max(workers, 1)))
				defer cam.Close()
				var prev, cur strip
				have := false
				check := func(img *image.RGBA) {
					if meanGreen(img) < darkLevel {
						b.Fatal("dark frame")
					}
					cutStrip(&cur, img, 0, ov)
					if have {
						prev.x0 -= sz.w - ov
						registerStrips(&prev, &cur, regShiftPx)
						prev.x0 += sz.w - ov
					}
					cutStrip(&prev, img, sz.w-ov, ov)
					have = true
				}
				var buf *image.RGBA
				var pend hal.GrabbedFrame
				finish := func() {
					if pend == nil {
						return
					}
					img, err := pend.Wait(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if buf == nil {
						buf = image.NewRGBA(img.Rect)
					}
					copy(buf.Pix, img.Pix)
					pend.Release()
					pend = nil
					check(buf)
				}
				b.ResetTimer()
				for range b.N {
					if workers == 0 {
						var err error
						if buf, err = cam.Capture(ctx, buf); err != nil {
							b.Fatal(err)
						}
						check(buf)
						continue
					}
					g, err := cam.Grab(ctx)
					if err != nil {
						b.Fatal(err)
					}
					finish()
					pend = g
				}
				finish()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
			})
		}
	}
}
