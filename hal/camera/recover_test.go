package camera_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim"
)

// fakeSource replays a script of read results: nil is a 4-byte frame.
type fakeSource struct {
	id     int
	script []error
	closed bool
	w      int
}

func (f *fakeSource) String() string { return fmt.Sprintf("fake%d", f.id) }
func (f *fakeSource) Format() (uint32, int, int) {
	return hal.PixFmtYUYV, f.w, 1
}
func (f *fakeSource) Close() error { f.closed = true; return nil }
func (f *fakeSource) ReadFrame(ctx context.Context, dst []byte) ([]byte, error) {
	if f.closed {
		return dst[:0], syscall.EBADF
	}
	if len(f.script) == 0 {
		return append(dst[:0], byte(f.id), 0, 0, 0), nil
	}
	err := f.script[0]
	f.script = f.script[1:]
	if err != nil {
		return dst[:0], err
	}
	return append(dst[:0], byte(f.id), 0, 0, 0), nil
}

// fakeOpener hands out sources; opens[i] is the error of the i-th open
// (missing entries succeed), reads[i] the read script of the i-th source.
type fakeOpener struct {
	clock   *sim.Clock
	opens   []error
	reads   [][]error
	at      []time.Duration // virtual time of every open call
	sources []*fakeSource
	width   []int // width per opened source, default 2
}

func (o *fakeOpener) open(ctx context.Context) (hal.FrameSource, error) {
	n := len(o.at)
	o.at = append(o.at, o.clock.Elapsed())
	if n < len(o.opens) && o.opens[n] != nil {
		return nil, o.opens[n]
	}
	s := &fakeSource{id: n, w: 2}
	if n < len(o.reads) {
		s.script = o.reads[n]
	}
	if n < len(o.width) && o.width[n] != 0 {
		s.w = o.width[n]
	}
	o.sources = append(o.sources, s)
	return s, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func opts(c *sim.Clock) camera.RecoverOptions {
	return camera.RecoverOptions{Attempts: 4, Backoff: 100 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Clock: c, Log: quiet()}
}

func TestRecoverAfterUnplug(t *testing.T) {
	for _, cause := range []error{
		fmt.Errorf("v4l2 /dev/video0: dequeue frame: %w", syscall.ENODEV),
		fmt.Errorf("v4l2 /dev/video0: dequeue frame: %w", syscall.EIO),
		fmt.Errorf("v4l2 /dev/video0: no frame within 2s: %w", hal.ErrTimeout),
	} {
		t.Run(cause.Error(), func(t *testing.T) {
			c := sim.NewClock()
			o := &fakeOpener{clock: c,
				reads: [][]error{{nil, cause}},
				// the camera is still gone on the first two reopens
				opens: []error{nil, syscall.ENODEV, fmt.Errorf("open: %w", syscall.ENOENT)},
			}
			r, err := camera.NewRecovering(t.Context(), o.open, opts(c))
			if err != nil {
				t.Fatal(err)
			}
			if b, err := r.ReadFrame(t.Context(), nil); err != nil || b[0] != 0 {
				t.Fatalf("first frame: %v %v", b, err)
			}
			b, err := r.ReadFrame(t.Context(), nil)
			if err != nil {
				t.Fatalf("read across the unplug: %v", err)
			}
			if b[0] != 3 {
				t.Errorf("frame from source %d, want the 4th open", b[0])
			}
			if !o.sources[0].closed {
				t.Error("failed source was not closed before reopening")
			}
			// backoff 100, 200, 300 (capped) ms
			want := []time.Duration{0, 100 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond}
			if fmt.Sprint(o.at) != fmt.Sprint(want) {
				t.Errorf("opens at %v, want %v", o.at, want)
			}
			if r.Reopens() != 1 || r.Fault() != nil {
				t.Errorf("reopens %d fault %v", r.Reopens(), r.Fault())
			}
		})
	}
}

func TestCameraStaysGoneLatchesFault(t *testing.T) {
	c := sim.NewClock()
	gone := fmt.Errorf("open /dev/video0: %w", syscall.ENODEV)
	o := &fakeOpener{clock: c,
		reads: [][]error{{fmt.Errorf("dequeue: %w", syscall.ENODEV)}},
		opens: []error{nil, gone, gone, gone, gone, gone, gone},
	}
	r, err := camera.NewRecovering(t.Context(), o.open, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadFrame(t.Context(), nil)
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultCamera || f.Device != "camera" {
		t.Fatalf("want a camera fault, got %v", err)
	}
	if !errors.Is(err, hal.ErrFault) || !errors.Is(err, syscall.ENODEV) {
		t.Errorf("fault does not wrap ErrFault and the cause: %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "4 reopen attempts") || !strings.Contains(msg, "/dev/video0") {
		t.Errorf("fault message: %q", msg)
	}
	if len(o.at) != 5 { // first open + 4 bounded attempts
		t.Errorf("%d opens, want 5", len(o.at))
	}
	if got := c.Elapsed(); got != 100*time.Millisecond+200*time.Millisecond+300*time.Millisecond+300*time.Millisecond {
		t.Errorf("backoff took %v of machine time", got)
	}
	// Latched: no more opens until the technician clears it.
	if _, err2 := r.ReadFrame(t.Context(), nil); hal.FaultOf(err2) != f || len(o.at) != 5 {
		t.Errorf("fault not latched: %v, %d opens", err2, len(o.at))
	}
	o.opens = nil // camera plugged back in
	_ = r.ClearFault()
	if b, err := r.ReadFrame(t.Context(), nil); err != nil || b[0] != 5 {
		t.Fatalf("after clear: %v %v", b, err)
	}
}

func TestNonRecoverableErrorsPassThrough(t *testing.T) {
	c := sim.NewClock()
	bad := errors.New("frame 3 has 7 bytes, want 8")
	o := &fakeOpener{clock: c, reads: [][]error{{bad, context.Canceled}}}
	r, err := camera.NewRecovering(t.Context(), o.open, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFrame(t.Context(), nil); !errors.Is(err, bad) {
		t.Errorf("bad frame: %v", err)
	}
	if _, err := r.ReadFrame(t.Context(), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
	if len(o.at) != 1 || r.Fault() != nil {
		t.Errorf("reopened on a non-recoverable error: %d opens", len(o.at))
	}
}

func TestFirstOpen(t *testing.T) {
	c := sim.NewClock()
	// A configuration error fails at once.
	cfgErr := errors.New("pixel format MJPG not supported; the device offers YUYV")
	o := &fakeOpener{clock: c, opens: []error{cfgErr}}
	if _, err := camera.NewRecovering(t.Context(), o.open, opts(c)); !errors.Is(err, cfgErr) || len(o.at) != 1 {
		t.Errorf("config error: %v after %d opens", err, len(o.at))
	}
	// A camera still enumerating is waited for.
	o = &fakeOpener{clock: c, opens: []error{syscall.ENOENT, syscall.ENOENT}}
	r, err := camera.NewRecovering(t.Context(), o.open, opts(c))
	if err != nil || len(o.at) != 3 {
		t.Fatalf("enumerating camera: %v after %d opens", err, len(o.at))
	}
	if f, w, h := r.Format(); f != hal.PixFmtYUYV || w != 2 || h != 1 || r.String() != "fake2" {
		t.Errorf("format %s %dx%d name %s", hal.FourCC(f), w, h, r)
	}
	if err := r.Close(); err != nil || !o.sources[0].closed {
		t.Errorf("close: %v", err)
	}
	if _, err := r.ReadFrame(t.Context(), nil); !errors.Is(err, syscall.EBADF) {
		t.Errorf("read after close: %v", err)
	}
}

func TestReopenWithOtherFormatFaults(t *testing.T) {
	c := sim.NewClock()
	o := &fakeOpener{clock: c, reads: [][]error{{syscall.EIO}}, width: []int{2, 4}}
	r, err := camera.NewRecovering(t.Context(), o.open, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadFrame(t.Context(), nil)
	if f := hal.FaultOf(err); f == nil || !strings.Contains(err.Error(), "YUYV 4x1, not YUYV 2x1") {
		t.Errorf("format change: %v", err)
	}
}

func TestRecoverCancelled(t *testing.T) {
	c := sim.NewClock()
	ctx, cancel := context.WithCancel(t.Context())
	o := &fakeOpener{clock: c, reads: [][]error{{syscall.ENODEV}}}
	r, err := camera.NewRecovering(ctx, o.open, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := r.ReadFrame(ctx, nil); !errors.Is(err, context.Canceled) || r.Fault() != nil {
		t.Errorf("cancelled during recovery: %v (fault %v)", err, r.Fault())
	}
}

// The simulated camera at the wire unplugs and comes back: the decoded
// camera on top keeps capturing.
func TestRecoverSimCameraUnplug(t *testing.T) {
	c := sim.NewClock()
	var cams []*sim.Camera
	open := func(ctx context.Context) (hal.FrameSource, error) {
		if len(cams) > 0 && len(cams) < 3 {
			cams = append(cams, nil)
			return nil, fmt.Errorf("open /dev/video0: %w", syscall.ENODEV)
		}
		sc := sim.NewCamera(c, sim.CameraOptions{Width: 64, Height: 48, Pose: func() (x, y, z float64) { return 0, 0, 0 }})
		cams = append(cams, sc)
		return sc, nil
	}
	r, err := camera.NewRecovering(t.Context(), open, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	cam := camera.New(r, 0)
	img, err := cam.Capture(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cams[0].Disconnect()
	if img, err = cam.Capture(t.Context(), img); err != nil {
		t.Fatalf("capture across unplug: %v", err)
	}
	if len(cams) != 4 || r.Reopens() != 1 || img.Bounds().Dx() != 64 {
		t.Errorf("%d opens, %d reopens", len(cams), r.Reopens())
	}
}

// A camera that reopens fine but never delivers a frame (a stalled stream)
// must still run out of attempts: they count from the last good frame.
func TestStalledCameraRunsOutOfAttempts(t *testing.T) {
	c := sim.NewClock()
	stall := fmt.Errorf("no frame within 1s: %w", hal.ErrTimeout)
	o := &fakeOpener{clock: c}
	for i := 0; i < 10; i++ {
		o.reads = append(o.reads, []error{stall, stall})
	}
	o.reads[0] = []error{nil, stall}
	r, err := camera.NewRecovering(t.Context(), o.open, opts(c))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadFrame(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	_, err = r.ReadFrame(t.Context(), nil)
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultCamera || !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("stalled camera: %v", err)
	}
	if r.Reopens() != 4 || len(o.at) != 5 {
		t.Errorf("%d reopens, %d opens; want 4 reopens then the fault", r.Reopens(), len(o.at))
	}
	// A good frame in between ends an outage: attempts start over.
	c2 := sim.NewClock()
	o2 := &fakeOpener{clock: c2, reads: [][]error{{stall}, {nil, stall}, {nil, stall}, {nil, stall}, {nil, stall}, {nil, stall}}}
	r2, err := camera.NewRecovering(t.Context(), o2.open, opts(c2))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := r2.ReadFrame(t.Context(), nil); err != nil {
			t.Fatalf("read %d: camera recovering every time must not fault: %v", i, err)
		}
	}
	if c2.Elapsed() != 5*100*time.Millisecond {
		t.Errorf("backoff did not start over after good frames: %v", c2.Elapsed())
	}
}
