//go:build linux

package v4l2

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/blackjack/webcam"

	"papscan/hal"
)

// Options configure Open. Zero fields take defaults.
type Options struct {
	PixelFormat   uint32 // V4L2 fourcc; default hal.PixFmtYUYV
	Width, Height int    // required
	BufferCount   uint32 // mmap buffers; default 4
	// FrameTimeout is how long ReadFrame waits for a frame before it
	// returns an error wrapping hal.ErrTimeout; default 2 s. The library
	// waits in whole seconds, so it is rounded up to at least 1 s.
	FrameTimeout time.Duration
	// FrameRate requested with VIDIOC_S_PARM, frames per second; 0 leaves
	// the device's rate.
	FrameRate float64
	// Exposure is the manual exposure time (V4L2_CID_EXPOSURE_ABSOLUTE,
	// 100 µs units; automatic exposure is switched off first); 0 leaves
	// the device's exposure alone.
	Exposure time.Duration
	// Gain is the raw value of V4L2_CID_GAIN (device units; automatic gain
	// is switched off first); 0 leaves the device's gain alone.
	Gain int32
	// Controls are further controls set after exposure and gain.
	Controls []Control
}

// Source is a V4L2 capture device streaming frames.
type Source struct {
	dev      string
	cam      *webcam.Webcam
	fourcc   uint32
	w, h     int
	frameLen int // expected bytes per frame, 0 for compressed formats
	timeout  time.Duration
	frames   uint64
	controls map[uint32]int32
	last     hal.FrameInfo
}

var (
	_ hal.FrameSource = (*Source)(nil)
	_ hal.FrameTimer  = (*Source)(nil)
)

// LastFrame implements hal.FrameTimer. blackjack/webcam v0.6.1 does not
// expose the kernel's buffer timestamp nor its sequence number, so the
// timestamp is the wall-clock time the buffer was dequeued (after the
// exposure and the USB transfer: later than the start of exposure by
// about one frame interval, plus scheduling jitter) and Seq counts the
// frames read. On-the-fly scanning with a strobe needs only the frame
// grid's phase, which this gives up to that constant lag.
func (s *Source) LastFrame() hal.FrameInfo { return s.last }

// maxSide bounds the frame size: 16384² RGBA pixels are 1 GiB, still an
// int on 32-bit ARM.
const maxSide = 16384

// bytesPerPixel of the uncompressed formats whose frame length Source
// checks.
func frameLen(fourcc uint32, w, h int) int {
	switch fourcc {
	case hal.PixFmtYUYV:
		return w * h * 2
	case hal.PixFmtRGB3:
		return w * h * 3
	}
	return 0
}

// Open opens device (e.g. "/dev/video0"), selects the pixel format and size
// and starts streaming.
func Open(device string, opts Options) (*Source, error) {
	if opts.PixelFormat == 0 {
		opts.PixelFormat = hal.PixFmtYUYV
	}
	if opts.Width <= 0 || opts.Height <= 0 {
		return nil, fmt.Errorf("v4l2 %s: frame size %dx%d: width and height are required", device, opts.Width, opts.Height)
	}
	if opts.Width > maxSide || opts.Height > maxSide {
		// Keeps every frame length (and its RGBA decode) within a 32-bit int.
		return nil, fmt.Errorf("v4l2 %s: frame size %dx%d: at most %d pixels a side", device, opts.Width, opts.Height, maxSide)
	}
	if opts.BufferCount == 0 {
		opts.BufferCount = 4
	}
	if opts.FrameTimeout <= 0 {
		opts.FrameTimeout = 2 * time.Second
	}
	cam, err := webcam.Open(device)
	if err != nil {
		return nil, fmt.Errorf("v4l2 %s: open: %w", device, err)
	}
	s := &Source{dev: device, cam: cam, fourcc: opts.PixelFormat, w: opts.Width, h: opts.Height, timeout: opts.FrameTimeout}
	if err := s.setup(opts); err != nil {
		cam.Close()
		return nil, err
	}
	return s, nil
}

func (s *Source) setup(opts Options) error {
	formats := s.cam.GetSupportedFormats()
	pf := webcam.PixelFormat(opts.PixelFormat)
	if _, ok := formats[pf]; !ok {
		return fmt.Errorf("v4l2 %s: pixel format %s not supported; the device offers %s",
			s.dev, hal.FourCC(opts.PixelFormat), describeFormats(formats))
	}
	if sizes := s.cam.GetSupportedFrameSizes(pf); len(sizes) > 0 && !sizeSupported(sizes, opts.Width, opts.Height) {
		return fmt.Errorf("v4l2 %s: %s frame size %dx%d not supported; the device offers %s",
			s.dev, hal.FourCC(opts.PixelFormat), opts.Width, opts.Height, describeSizes(sizes))
	}
	got, w, h, err := s.cam.SetImageFormat(pf, uint32(opts.Width), uint32(opts.Height))
	if err != nil {
		return fmt.Errorf("v4l2 %s: set format %s %dx%d: %w", s.dev, hal.FourCC(opts.PixelFormat), opts.Width, opts.Height, err)
	}
	// SetImageFormat echoes the requested size, not the driver's choice:
	// the frame length is checked on every frame as well.
	if uint32(got) != opts.PixelFormat || int(w) != opts.Width || int(h) != opts.Height {
		return fmt.Errorf("v4l2 %s: asked for %s %dx%d, driver chose %s %dx%d",
			s.dev, hal.FourCC(opts.PixelFormat), opts.Width, opts.Height, hal.FourCC(uint32(got)), w, h)
	}
	s.frameLen = frameLen(s.fourcc, s.w, s.h)
	if opts.FrameRate > 0 {
		if err := s.cam.SetFramerate(float32(opts.FrameRate)); err != nil {
			return fmt.Errorf("v4l2 %s: set frame rate %g/s: %w", s.dev, opts.FrameRate, err)
		}
	}
	want, err := wantControls(opts, s.cam.GetControls())
	if err != nil {
		return fmt.Errorf("v4l2 %s: %w", s.dev, err)
	}
	if s.controls, err = applyControls(s.cam, want); err != nil {
		return fmt.Errorf("v4l2 %s: %w", s.dev, err)
	}
	if err := s.cam.SetBufferCount(opts.BufferCount); err != nil {
		return fmt.Errorf("v4l2 %s: set buffer count %d: %w", s.dev, opts.BufferCount, err)
	}
	if err := s.cam.StartStreaming(); err != nil {
		err = fmt.Errorf("v4l2 %s: start streaming: %w", s.dev, err)
		if rerr := releaseBuffers(s.cam); rerr != nil {
			err = fmt.Errorf("%w (and releasing its buffers: %v)", err, rerr)
		}
		return err
	}
	return nil
}

func sizeSupported(sizes []webcam.FrameSize, w, h int) bool {
	for _, fs := range sizes {
		if uint32(w) < fs.MinWidth || uint32(w) > fs.MaxWidth || uint32(h) < fs.MinHeight || uint32(h) > fs.MaxHeight {
			continue
		}
		if fs.StepWidth > 0 && (uint32(w)-fs.MinWidth)%fs.StepWidth != 0 {
			continue
		}
		if fs.StepHeight > 0 && (uint32(h)-fs.MinHeight)%fs.StepHeight != 0 {
			continue
		}
		return true
	}
	return false
}

func describeFormats(formats map[webcam.PixelFormat]string) string {
	if len(formats) == 0 {
		return "no formats"
	}
	var out []string
	for pf, desc := range formats {
		out = append(out, fmt.Sprintf("%s (%s)", hal.FourCC(uint32(pf)), desc))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

func describeSizes(sizes []webcam.FrameSize) string {
	var out []string
	for _, fs := range sizes {
		if fs.MinWidth == fs.MaxWidth && fs.MinHeight == fs.MaxHeight {
			out = append(out, fmt.Sprintf("%dx%d", fs.MinWidth, fs.MinHeight))
		} else {
			out = append(out, fmt.Sprintf("%dx%d..%dx%d", fs.MinWidth, fs.MinHeight, fs.MaxWidth, fs.MaxHeight))
		}
	}
	return strings.Join(out, ", ")
}

// String implements hal.FrameSource.
func (s *Source) String() string {
	return fmt.Sprintf("v4l2 %s %s %dx%d", s.dev, hal.FourCC(s.fourcc), s.w, s.h)
}

// Format implements hal.FrameSource.
func (s *Source) Format() (fourcc uint32, w, h int) { return s.fourcc, s.w, s.h }

// Controls are the values of the controls Open set, as the device reports
// them back (a driver may round to its step), by control ID.
func (s *Source) Controls() map[uint32]int32 { return maps.Clone(s.controls) }

// SetControl sets one V4L2 control on the open device, checking it against
// what the device offers like Open does.
func (s *Source) SetControl(c Control) (int32, error) {
	if s.cam == nil {
		return 0, fmt.Errorf("%s: set control: closed: %w", s, syscall.EBADF)
	}
	got, err := applyControls(s.cam, []Control{c})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s, err)
	}
	return got[c.ID], nil
}

// Frames is the number of frames read so far.
func (s *Source) Frames() uint64 { return s.frames }

// ReadFrame implements hal.FrameSource: it waits for the next frame (in
// one-second slices, checking ctx between them), copies it into dst and
// returns the buffer to the driver.
func (s *Source) ReadFrame(ctx context.Context, dst []byte) ([]byte, error) {
	if s.cam == nil {
		return dst[:0], fmt.Errorf("%s: read frame: closed: %w", s, syscall.EBADF)
	}
	deadline := time.Now().Add(s.timeout)
	for first := true; ; first = false {
		if err := ctx.Err(); err != nil {
			return dst[:0], err
		}
		if !first && !time.Now().Before(deadline) {
			return dst[:0], fmt.Errorf("%s: no frame within %v: %w", s, s.timeout, hal.ErrTimeout)
		}
		err := s.cam.WaitForFrame(1) // seconds
		var to *webcam.Timeout
		switch {
		case errors.As(err, &to):
			continue
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return dst[:0], fmt.Errorf("%s: wait for frame: %w", s, err)
		}
		frame, index, err := s.cam.GetFrame()
		dequeued := time.Now()
		if errors.Is(err, syscall.EAGAIN) {
			continue // woken without a filled buffer
		}
		if err != nil {
			return dst[:0], fmt.Errorf("%s: dequeue frame: %w", s, err)
		}
		dst = append(dst[:0], frame...)
		if err := s.cam.ReleaseFrame(index); err != nil {
			return dst[:0], fmt.Errorf("%s: requeue buffer %d: %w", s, index, err)
		}
		if s.frameLen > 0 && len(dst) != s.frameLen {
			return dst[:0], fmt.Errorf("%s: frame %d has %d bytes, want %d (%dx%d %s): driver chose another size or line padding",
				s, s.frames, len(dst), s.frameLen, s.w, s.h, hal.FourCC(s.fourcc))
		}
		s.frames++
		s.last = hal.FrameInfo{Seq: s.frames, Timestamp: dequeued}
		return dst, nil
	}
}

// Close stops streaming and closes the device.
func (s *Source) Close() error {
	if s.cam == nil {
		return nil
	}
	err := s.cam.Close()
	s.cam = nil
	if err != nil {
		return fmt.Errorf("v4l2 %s: close: %w", s.dev, err)
	}
	return nil
}
