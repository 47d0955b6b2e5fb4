package scan_test

import (
	"bytes"
	"image"
	"image/jpeg"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"papscan/classify"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim/slide"
)

// BenchmarkFlyPipeline is the analysis pipeline of an on-the-fly scan on
// all cores (GOMAXPROCS workers): MJPEG decode and nucleus analysis of
// frames of a simulated high-grade slide, as papscan-r2-fly (1920x1080,
// 0.29 µm/px) and sim-fly (1280x960, 0.5 µm/px, YUYV in the profile, MJPEG
// here) deliver them. frames/s is what the pipeline sustains; the camera
// gives 30.
func BenchmarkFlyPipeline(b *testing.B) {
	model, err := classify.DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	sl := slide.Synthetic(slide.Spec{ID: "PIPE", Seed: 7, Diagnosis: slide.HighGrade, FocusBaseUM: 100})
	cx, cy, _ := sl.Spot()
	for _, sz := range []struct {
		name string
		w, h int
		px   float64
	}{{"1280x960", 1280, 960, 0.5}, {"1920x1080", 1920, 1080, 0.29}} {
		b.Run(sz.name, func(b *testing.B) {
			// 8 different frames along a row.
			var frames [][]byte
			for k := range 8 {
				img := image.NewRGBA(image.Rect(0, 0, sz.w, sz.h))
				slide.NewRenderer(slide.RenderOptions{PixelUM: sz.px}).Render(sl, img, cx+float64(k)*float64(sz.w)*sz.px*0.9, cy, 0, rand.New(rand.NewPCG(uint64(k), 1)))
				var buf bytes.Buffer
				if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 85}); err != nil {
					b.Fatal(err)
				}
				frames = append(frames, buf.Bytes())
			}
			n := 0
			var mu sync.Mutex
			next := func() int {
				mu.Lock()
				defer mu.Unlock()
				if n >= b.N {
					return -1
				}
				n++
				return n - 1
			}
			b.ResetTimer()
			var wg sync.WaitGroup
			for range runtimeProcs() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := classify.NewAnalyzer(classify.DetectOptions{PixelUM: sz.px, MinAreaUM2: 10, MaxAreaUM2: 900}, model)
					var dst *image.RGBA
					for i := next(); i >= 0; i = next() {
						var err error
						if dst, err = camera.Decode(dst, frames[i%len(frames)], hal.PixFmtMJPEG, sz.w, sz.h); err != nil {
							b.Error(err)
							return
						}
						a.Analyze(dst)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
