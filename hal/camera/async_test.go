package camera_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"testing"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

// countSource hands out RGB3 frames whose every pixel is the frame's
// index (mod 256), with that index as the frame's sequence number; a frame
// listed in short comes truncated.
type countSource struct {
	w, h  int
	n     int
	short map[int]bool
	err   error
}

func (s *countSource) String() string                    { return "count" }
func (s *countSource) Format() (fourcc uint32, w, h int) { return hal.PixFmtRGB3, s.w, s.h }
func (s *countSource) Close() error                      { return nil }
func (s *countSource) LastFrame() hal.FrameInfo          { return hal.FrameInfo{Seq: uint64(s.n)} }
func (s *countSource) ReadFrame(_ context.Context, dst []byte) ([]byte, error) {
	if s.err != nil {
		return dst[:0], s.err
	}
	s.n++
	n := s.w * s.h * 3
	if s.short[s.n] {
		n--
	}
	dst = dst[:0]
	for range n {
		dst = append(dst, byte(s.n))
	}
	return dst, nil
}

// TestAsyncOrder: frames are grabbed back to back, each grab returning
// after the raw read while earlier frames still wait to be decoded; each
// frame then decodes to its own image, in grab order, on one and on two
// decode goroutines; a bad frame is its own decode error, a source error
// is Grab's; with Depth frames out, Grab waits for a release.
func TestAsyncOrder(t *testing.T) {
	ctx := context.Background()
	for _, workers := range []int{1, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			src := &countSource{w: 64, h: 48, short: map[int]bool{3: true}}
			a := camera.NewAsync(src, camera.AsyncOptions{Workers: workers, Depth: 4})
			defer a.Close()
			for round := range 3 {
				var frames []*camera.Frame
				for range 4 {
					f, err := a.Grab(ctx)
					if err != nil {
						t.Fatal(err)
					}
					frames = append(frames, f)
				}
				// Depth frames out: the next Grab waits (here: until
				// its context ends).
				cctx, cancel := context.WithCancel(ctx)
				cancel()
				if _, err := a.Grab(cctx); !errors.Is(err, context.Canceled) {
					t.Fatalf("grab with %d frames out: %v, want it to wait", len(frames), err)
				}
				for i, f := range frames {
					k := round*4 + i + 1
					img, err := f.Wait(ctx)
					if k == 3 {
						var fe *camera.FrameSizeError
						if !errors.As(err, &fe) {
							t.Errorf("frame %d: %v, want a frame size error", k, err)
						}
					} else if err != nil {
						t.Fatalf("frame %d: %v", k, err)
					} else if got := img.Pix[len(img.Pix)/2]; got != byte(k) || f.Info().Seq != uint64(k) {
						t.Errorf("frame %d decoded as %d (seq %d)", k, got, f.Info().Seq)
					}
					f.Release()
				}
			}
			src.err = errors.New("unplugged")
			if _, err := a.Grab(ctx); err == nil || !errors.Is(err, src.err) {
				t.Errorf("source error: %v", err)
			}
			a.Close()
			if _, err := a.Grab(ctx); !errors.Is(err, camera.ErrClosed) {
				t.Errorf("grab after close: %v", err)
			}
		})
	}
}

// mjpegSource hands out one encoded MJPEG frame, instantly.
type mjpegSource struct {
	raw  []byte
	w, h int
}

func (s *mjpegSource) String() string                    { return "mjpeg" }
func (s *mjpegSource) Format() (fourcc uint32, w, h int) { return hal.PixFmtMJPEG, s.w, s.h }
func (s *mjpegSource) Close() error                      { return nil }
func (s *mjpegSource) ReadFrame(_ context.Context, dst []byte) ([]byte, error) {
	return append(dst[:0], s.raw...), nil
}

// BenchmarkAsyncDecodeMJPEG: frames per second an Async camera sustains on
// 1280x960 MJPEG frames of a simulated Pap smear (quality 85) with one
// and with two decode goroutines, the source delivering instantly (the
// camera is never the limit) and a consumer waiting for each frame in
// order and releasing it. The machine's core count bounds the second.
func BenchmarkAsyncDecodeMJPEG(b *testing.B) {
	sl := slide.Synthetic(slide.Spec{ID: "BENCH", Seed: 5, Diagnosis: slide.HighGrade, FocusBaseUM: 100})
	cx, cy, _ := sl.Spot()
	const w, h = 1280, 960
	scene := image.NewRGBA(image.Rect(0, 0, w, h))
	slide.NewRenderer(slide.RenderOptions{PixelUM: 0.5}).Render(sl, scene, cx, cy, 0, nil)
	src := &mjpegSource{raw: encodeJPEG(b, scene, 85), w: w, h: h}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprint("workers=", workers), func(b *testing.B) {
			ctx := context.Background()
			a := camera.NewAsync(src, camera.AsyncOptions{Workers: workers})
			defer a.Close()
			frames := make(chan *camera.Frame, 8)
			done := make(chan error, 1)
			go func() {
				var err error
				for f := range frames {
					if _, e := f.Wait(ctx); e != nil && err == nil {
						err = e
					}
					f.Release()
				}
				done <- err
			}()
			b.SetBytes(int64(len(src.raw)))
			for b.Loop() {
				f, err := a.Grab(ctx)
				if err != nil {
					b.Fatal(err)
				}
				frames <- f
			}
			close(frames)
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
		})
	}
}

// TestCameraGrab: the camera's Grab reads frames from a simulated MJPEG
// camera on the caller's goroutine and decodes them on its pool: two
// frames grabbed back to back keep their own timing and decode to the
// same image Capture gives.
func TestCameraGrab(t *testing.T) {
	ctx := context.Background()
	mk := func() (*sim.Camera, *camera.Camera) {
		s := slide.Synthetic(slide.Spec{ID: "GRAB", Seed: 3, FocusBaseUM: 200, SpotDiameterUM: 2000})
		cx, cy, _ := s.Spot()
		sc := sim.NewCamera(sim.NewClock(), sim.CameraOptions{Width: 160, Height: 120, PixelFormat: hal.PixFmtMJPEG, NoiseSigma: -1,
			Pose: func() (float64, float64, float64) { return cx, cy, 200 }, Specimen: func() *slide.Slide { return s }})
		return sc, camera.New(sc, 0, camera.WithDecodeWorkers(2))
	}
	sc, c := mk()
	defer c.Close()
	f1, err := c.Grab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := c.Grab(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f1.Info().Seq != 1 || f2.Info().Seq != 2 || !f2.Info().Timestamp.After(f1.Info().Timestamp) || sc.LastFrame() != f2.Info() {
		t.Errorf("frame timing %+v, %+v", f1.Info(), f2.Info())
	}
	_, ref := mk()
	want, err := ref.Capture(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, err := f1.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Pix, want.Pix) {
		t.Error("grabbed frame differs from the captured one")
	}
	f1.Release()
	f2.Release()
}
