//go:build vivid && linux

package vmtest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blackjack/webcam"

	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/v4l2"
	"papscan/internal/vmguest"
)

// vivid's driver-private controls (drivers/media/test-drivers/vivid/
// vivid-ctrls.c: VIVID_CID_VIVID_BASE = 0x00f00000 | 0xf000).
const (
	vividBase        uint32 = 0x00f0f000
	cidPercDropped          = vividBase + 64 // "Percentage of Dropped Buffers", 0..100
	cidDisconnect           = vividBase + 65 // button "Disconnect"
	cidDQBufError           = vividBase + 66 // button "Inject VIDIOC_DQBUF Error"
	cidStartStrError        = vividBase + 69 // button "Inject VIDIOC_STREAMON Error"
	cidQueueError           = vividBase + 70 // button "Inject Fatal Streaming Error"
)

const dev = "/dev/video0"

var console = flag.String("console", "/dev/ttyS0", "serial console of the VM")

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getpid() != 1 {
		fmt.Println("vmtest: these tests run as PID 1 inside the vivid VM; use scripts/vm/vivid.sh")
		os.Exit(0)
	}
	code := 1
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "vmtest setup: %v\n", err)
	} else {
		code = m.Run()
	}
	result := "PASS"
	if code != 0 {
		result = "FAIL"
	}
	fmt.Printf("\n%s%s\n", Marker, result)
	if err := vmguest.PowerOff(); err != nil {
		fmt.Fprintf(os.Stderr, "power off: %v\n", err)
	}
	os.Exit(code)
}

func setup() error {
	if err := vmguest.Init(*console); err != nil {
		return err
	}
	start := time.Now()
	mods, err := vmguest.LoadModules("/modules")
	if err != nil {
		return err
	}
	if err := vmguest.WaitFor(dev, 10*time.Second); err != nil {
		return err
	}
	fmt.Printf("vmtest: loaded %s in %v\n", strings.Join(mods, " "), time.Since(start).Round(time.Millisecond))
	return nil
}

func logger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func opts() v4l2.Options {
	return v4l2.Options{Width: 640, Height: 480, BufferCount: 3, FrameTimeout: time.Second, FrameRate: 30}
}

func open(t *testing.T, o v4l2.Options) *v4l2.Source {
	t.Helper()
	s, err := v4l2.Open(dev, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// press sets a vivid control through a second file handle, as another
// program (v4l2-ctl) would, and closes the handle again unless keep.
func press(t *testing.T, id uint32, value int32, keep bool) *webcam.Webcam {
	t.Helper()
	h, err := webcam.Open(dev)
	if err != nil {
		t.Fatalf("control handle: %v", err)
	}
	if err := h.SetControl(webcam.ControlID(id), value); err != nil {
		h.Close()
		t.Fatalf("set vivid control 0x%08x=%d: %v", id, value, err)
	}
	if keep {
		return h
	}
	h.Close()
	return nil
}

// meanLuma is the mean Y of a YUYV frame.
func meanLuma(f []byte) float64 {
	var sum int
	for i := 0; i < len(f); i += 2 {
		sum += int(f[i])
	}
	return float64(sum) / float64(len(f)/2)
}

func TestCapture(t *testing.T) {
	s := open(t, opts())
	var frames, copies [][]byte
	for i := 0; i < 5; i++ {
		f, err := s.ReadFrame(t.Context(), nil)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		frames = append(frames, f)
		copies = append(copies, bytes.Clone(f))
	}
	// With 3 buffers, frames 3 and 4 were captured into the buffers of
	// frames 0 and 1: had ReadFrame handed out the driver's buffer, those
	// would have changed under us.
	for i := range frames {
		if !bytes.Equal(frames[i], copies[i]) {
			t.Errorf("frame %d changed after later captures: not copied out of the driver's buffer", i)
		}
	}
	if len(frames[0]) != 640*480*2 || s.Frames() != 5 {
		t.Fatalf("frame of %d bytes, %d frames", len(frames[0]), s.Frames())
	}
	// vivid's OSD text (frame counter, time) makes successive frames
	// differ, which is what makes the check above meaningful.
	if bytes.Equal(frames[0], frames[3]) {
		t.Error("frame 0 equals frame 3: the copy check above proves nothing")
	}
	// Decoded: vivid's 75% colour bars give many distinct colours.
	cam := camera.New(s, 0)
	img, err := cam.Capture(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	colours := map[[3]uint8]bool{}
	for x := 0; x < 640; x += 8 {
		c := img.RGBAAt(x, 240)
		colours[[3]uint8{c.R >> 4, c.G >> 4, c.B >> 4}] = true
	}
	if len(colours) < 6 || img.Bounds() != image.Rect(0, 0, 640, 480) {
		t.Errorf("decoded test pattern has %d colours along a row", len(colours))
	}
	t.Logf("captured %d frames of %d bytes; %d colours in a row", s.Frames(), len(frames[0]), len(colours))
}

func TestFormatErrorsListOffers(t *testing.T) {
	o := opts()
	o.PixelFormat = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	_, err := v4l2.Open(dev, o)
	if err == nil || !strings.Contains(err.Error(), "MJPG") || !strings.Contains(err.Error(), "YUYV") {
		t.Errorf("unsupported pixel format: %v", err)
	}
	t.Log(err)
	o = opts()
	o.Width, o.Height = 1000, 1000
	_, err = v4l2.Open(dev, o)
	if err == nil || !strings.Contains(err.Error(), "640x480") {
		t.Errorf("unsupported size: %v", err)
	}
	t.Log(err)
}

func TestControls(t *testing.T) {
	// vivid has no exposure control: a clear error naming it and listing
	// what the device offers.
	o := opts()
	o.Exposure = 10 * time.Millisecond
	_, err := v4l2.Open(dev, o)
	if err == nil || !strings.Contains(err.Error(), "exposure") || !strings.Contains(err.Error(), `"Brightness"`) {
		t.Fatalf("unsupported exposure: %v", err)
	}
	t.Log(err)

	// Gain (automatic gain off first) and brightness take effect.
	o = opts()
	o.Gain = 50
	o.Controls = []v4l2.Control{{ID: v4l2.CIDBrightness, Name: "brightness", Value: 40}}
	s := open(t, o)
	got := s.Controls()
	if got[v4l2.CIDGain] != 50 || got[v4l2.CIDAutoGain] != 0 || got[v4l2.CIDBrightness] != 40 {
		t.Errorf("controls read back %v", got)
	}
	dark, err := s.ReadFrame(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetControl(v4l2.Control{ID: v4l2.CIDBrightness, Value: 220}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetControl(v4l2.Control{ID: v4l2.CIDBrightness, Value: 999}); err == nil ||
		!strings.Contains(err.Error(), "outside the device's range [0, 255]") {
		t.Errorf("brightness 999: %v", err)
	}
	var bright []byte
	for i := 0; i < 4; i++ { // frames queued before the change still come
		if bright, err = s.ReadFrame(t.Context(), bright); err != nil {
			t.Fatal(err)
		}
	}
	ld, lb := meanLuma(dark), meanLuma(bright)
	t.Logf("mean luma at brightness 40: %.1f, at 220: %.1f", ld, lb)
	if lb < ld+40 {
		t.Errorf("brightness had no effect on the frames: %.1f -> %.1f", ld, lb)
	}
}

func TestTimeoutWhenNoFrames(t *testing.T) {
	s := open(t, opts())
	if _, err := s.ReadFrame(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	press(t, cidPercDropped, 100, false)
	defer press(t, cidPercDropped, 0, false)
	var err error
	start := time.Now()
	for i := 0; i < 5 && err == nil; i++ { // drain frames already filled
		_, err = s.ReadFrame(t.Context(), nil)
	}
	if !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("all frames dropped: %v", err)
	}
	t.Logf("all frames dropped: %v after %v", err, time.Since(start).Round(time.Millisecond))
	press(t, cidPercDropped, 0, false)
	if _, err := s.ReadFrame(t.Context(), nil); err != nil {
		t.Errorf("after frames resumed: %v", err)
	}
}

func recovering(t *testing.T, attempts int) *camera.Recovering {
	t.Helper()
	o := opts()
	r, err := camera.NewRecovering(t.Context(), func(context.Context) (hal.FrameSource, error) {
		return v4l2.Open(dev, o)
	}, camera.RecoverOptions{Attempts: attempts, Backoff: 100 * time.Millisecond, MaxBackoff: 400 * time.Millisecond, Log: logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Disconnect unregisters vivid's device nodes: every ioctl fails with
// ENODEV. vivid registers them again when the last file handle closes, as
// a USB camera re-enumerates after an unplug.
func TestRecoverFromDisconnect(t *testing.T) {
	r := recovering(t, 5)
	buf, err := r.ReadFrame(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	press(t, cidDisconnect, 1, false)
	for i := 0; i < 3; i++ {
		if buf, err = r.ReadFrame(t.Context(), buf); err != nil {
			t.Fatalf("read %d after disconnect: %v", i, err)
		}
	}
	if r.Reopens() != 1 || len(buf) != 640*480*2 {
		t.Errorf("reopens %d, frame %d bytes", r.Reopens(), len(buf))
	}
}

// A camera that stays gone (another handle keeps vivid from
// re-registering) latches a camera fault after the bounded reopens; once
// the camera is back, clearing the fault resumes capture.
func TestStaysGoneFaults(t *testing.T) {
	r := recovering(t, 3)
	if _, err := r.ReadFrame(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	holder := press(t, cidDisconnect, 1, true)
	start := time.Now()
	_, err := r.ReadFrame(t.Context(), nil)
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultCamera || !errors.Is(err, syscall.ENODEV) {
		holder.Close()
		t.Fatalf("camera gone: want a camera fault wrapping ENODEV, got %v", err)
	}
	t.Logf("fault after %v: %v", time.Since(start).Round(time.Millisecond), err)
	if _, err := r.ReadFrame(t.Context(), nil); hal.FaultOf(err) != f {
		t.Errorf("fault not latched: %v", err)
	}
	holder.Close() // last handle: vivid re-registers the device
	_ = r.ClearFault()
	if _, err := r.ReadFrame(t.Context(), nil); err != nil {
		t.Errorf("after the camera came back and the fault was cleared: %v", err)
	}
}

// A fatal streaming error makes DQBUF fail with EIO; a STREAMON error
// injected at the same time makes the first reopen fail too.
func TestRecoverFromStreamingError(t *testing.T) {
	r := recovering(t, 5)
	if _, err := r.ReadFrame(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	press(t, cidStartStrError, 1, false)
	press(t, cidQueueError, 1, false)
	for i := 0; i < 3; i++ {
		if _, err := r.ReadFrame(t.Context(), nil); err != nil {
			t.Fatalf("read %d after the streaming error: %v", i, err)
		}
	}
	if r.Reopens() != 1 {
		t.Errorf("reopens %d", r.Reopens())
	}
}

// An injected DQBUF error marks one buffer V4L2_BUF_FLAG_ERROR; the
// library does not expose the flag, so the frame arrives with its full
// length and the stream goes on.
func TestDequeueErrorFrame(t *testing.T) {
	s := open(t, opts())
	press(t, cidDQBufError, 1, false)
	for i := 0; i < 4; i++ {
		f, err := s.ReadFrame(t.Context(), nil)
		if err != nil || len(f) != 640*480*2 {
			t.Fatalf("frame %d after a DQBUF error: %d bytes, %v", i, len(f), err)
		}
	}
}

// A camera that streams no frames (vivid drops every buffer) is reopened
// like an unplugged one; when reopening does not help, the camera fault
// latches, wrapping hal.ErrTimeout.
func TestStuckCameraFaults(t *testing.T) {
	r := recovering(t, 2)
	if _, err := r.ReadFrame(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	press(t, cidPercDropped, 100, false)
	defer press(t, cidPercDropped, 0, false)
	var err error
	for i := 0; i < 5 && err == nil; i++ { // drain frames already filled
		_, err = r.ReadFrame(t.Context(), nil)
	}
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultCamera || !errors.Is(err, hal.ErrTimeout) {
		t.Fatalf("stuck camera: want a camera fault wrapping ErrTimeout, got %v", err)
	}
	if r.Reopens() != 2 {
		t.Errorf("reopens %d, want 2 (each reopen worked, the frames never came)", r.Reopens())
	}
	t.Log(err)
}
