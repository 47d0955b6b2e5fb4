package sim

import (
	"context"
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"sync"
	"syscall"
	"time"

	"papscan/hal"
	"papscan/hal/sim/slide"
)

// CameraOptions configure a simulated camera. Zero fields take defaults.
type CameraOptions struct {
	Name          string        // for String and errors; default "sim-camera"
	Width, Height int           // frame size in pixels (even width); default 1280x960
	PixelUM       float64       // specimen µm per pixel; default slide.DefaultPixelUM
	Exposure      time.Duration // default 2 ms
	FrameInterval time.Duration // minimum time between frame starts (1/fps); default 1/30 s
	// Timeout is how long a read waits before it reports hal.ErrTimeout
	// while frames are being dropped (DropFrames); default 1 s.
	Timeout    time.Duration
	DOFUM      float64 // depth of field, µm; default slide.DefaultDOFUM
	NoiseSigma float64 // sensor noise in DN; default slide.DefaultNoiseSigma, negative for none
	Seed       uint64  // noise seed
	// Pose returns the TRUE position of the optical axis on the slide
	// (x, y, µm, slide coordinates) and the true focus-stage position z
	// (µm). It is sampled at the start of each exposure. Required.
	Pose func() (x, y, z float64)
	// Specimen returns the slide on the stage, or nil for none (an empty
	// bright field). nil Specimen means no slide ever.
	Specimen func() *slide.Slide
}

// Camera is a simulated microscope camera at the wire: it renders the
// specimen at the true stage pose with defocus blur and noise and hands out
// raw YUYV frames, as a V4L2 camera would. The defocus is
// z - specimen.FocusZ(x, y). Like a real FrameSource it is owned by one
// goroutine; the fault-injection methods may be called from any goroutine.
type Camera struct {
	clock hal.Clock
	opts  CameraOptions

	r   *slide.Renderer
	img *image.RGBA
	rng *rand.Rand

	next   time.Time // earliest start of the next exposure
	frames uint64

	mu           sync.Mutex
	disconnected bool
	drop         int
	closed       bool
}

var _ hal.FrameSource = (*Camera)(nil)

// NewCamera returns a simulated camera timed by clock.
func NewCamera(clock hal.Clock, opts CameraOptions) *Camera {
	if opts.Name == "" {
		opts.Name = "sim-camera"
	}
	if opts.Width <= 0 || opts.Height <= 0 {
		opts.Width, opts.Height = 1280, 960
	}
	opts.Width &^= 1
	if opts.Width == 0 {
		opts.Width = 2
	}
	if opts.PixelUM <= 0 {
		opts.PixelUM = slide.DefaultPixelUM
	}
	if opts.Exposure <= 0 {
		opts.Exposure = 2 * time.Millisecond
	}
	if opts.FrameInterval <= 0 {
		opts.FrameInterval = time.Second / 30
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Pose == nil {
		opts.Pose = func() (x, y, z float64) { return 0, 0, 0 }
	}
	return &Camera{
		clock: clock,
		opts:  opts,
		r:     slide.NewRenderer(slide.RenderOptions{PixelUM: opts.PixelUM, DOFUM: opts.DOFUM, NoiseSigma: opts.NoiseSigma}),
		img:   image.NewRGBA(image.Rect(0, 0, opts.Width, opts.Height)),
		rng:   rand.New(rand.NewPCG(opts.Seed, 0xca3e7a)),
	}
}

// String implements hal.FrameSource.
func (c *Camera) String() string {
	return fmt.Sprintf("%s %dx%d %s", c.opts.Name, c.opts.Width, c.opts.Height, hal.FourCC(hal.PixFmtYUYV))
}

// Format implements hal.FrameSource: YUYV at the configured size.
func (c *Camera) Format() (fourcc uint32, w, h int) {
	return hal.PixFmtYUYV, c.opts.Width, c.opts.Height
}

// PixelUM is the specimen size of one pixel, µm.
func (c *Camera) PixelUM() float64 { return c.opts.PixelUM }

// Frames is the number of frames delivered so far.
func (c *Camera) Frames() uint64 { return c.frames }

// ReadFrame implements hal.FrameSource. It waits (on the camera's clock)
// until the next frame slot, samples the pose at the start of the exposure,
// renders, lets the exposure time pass and returns the YUYV bytes in dst.
func (c *Camera) ReadFrame(ctx context.Context, dst []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return dst[:0], err
	}
	c.mu.Lock()
	closed, disc := c.closed, c.disconnected
	drop := c.drop > 0
	if drop && !disc && !closed {
		c.drop--
	}
	c.mu.Unlock()
	switch {
	case closed:
		return dst[:0], fmt.Errorf("%s: read frame: camera closed: %w", c.opts.Name, syscall.EBADF)
	case disc:
		return dst[:0], fmt.Errorf("%s: read frame: %w", c.opts.Name, syscall.ENODEV)
	case drop:
		if err := c.clock.Sleep(ctx, c.opts.Timeout); err != nil {
			return dst[:0], err
		}
		return dst[:0], fmt.Errorf("%s: no frame within %v: %w", c.opts.Name, c.opts.Timeout, hal.ErrTimeout)
	}
	if now := c.clock.Now(); now.Before(c.next) {
		if err := c.clock.Sleep(ctx, c.next.Sub(now)); err != nil {
			return dst[:0], err
		}
	}
	start := c.clock.Now()
	c.next = start.Add(c.opts.FrameInterval)
	x, y, z := c.opts.Pose()
	var s *slide.Slide
	if c.opts.Specimen != nil {
		s = c.opts.Specimen()
	}
	defocus := 0.0
	if s != nil {
		defocus = z - s.FocusZ(x, y)
	}
	c.r.Render(s, c.img, x, y, defocus, c.rng)
	if err := c.clock.Sleep(ctx, c.opts.Exposure); err != nil {
		return dst[:0], err
	}
	c.frames++
	return EncodeYUYV(dst[:0], c.img), nil
}

// Close implements hal.FrameSource; later reads fail.
func (c *Camera) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New(c.opts.Name + ": already closed")
	}
	c.closed = true
	return nil
}

// Disconnect simulates unplugging the camera: reads fail with an error
// wrapping syscall.ENODEV until Reconnect.
func (c *Camera) Disconnect() {
	c.mu.Lock()
	c.disconnected = true
	c.mu.Unlock()
}

// Reconnect ends a Disconnect.
func (c *Camera) Reconnect() {
	c.mu.Lock()
	c.disconnected = false
	c.mu.Unlock()
}

// DropFrames makes the next n reads wait for the timeout and fail with an
// error wrapping hal.ErrTimeout.
func (c *Camera) DropFrames(n int) {
	c.mu.Lock()
	c.drop += max(n, 0)
	c.mu.Unlock()
}

// Open opens the camera as opening its device node would: it fails with an
// error wrapping syscall.ENODEV while the camera is disconnected (and
// EBADF once it is closed), else it returns a new handle reading it. The
// handle's Close ends that handle only, so the camera can be opened again:
// it is the opener a camera.Recovering reopens a lost camera with.
func (c *Camera) Open(ctx context.Context) (hal.FrameSource, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.mu.Lock()
	closed, disc := c.closed, c.disconnected
	c.mu.Unlock()
	switch {
	case closed:
		return nil, fmt.Errorf("%s: open: camera closed: %w", c.opts.Name, syscall.EBADF)
	case disc:
		return nil, fmt.Errorf("%s: open: %w", c.opts.Name, syscall.ENODEV)
	}
	return &cameraHandle{c: c}, nil
}

// cameraHandle is one open of a Camera (see Camera.Open).
type cameraHandle struct {
	c      *Camera
	mu     sync.Mutex
	closed bool
}

var _ hal.FrameSource = (*cameraHandle)(nil)

func (h *cameraHandle) String() string { return h.c.String() }

func (h *cameraHandle) Format() (fourcc uint32, w, hh int) { return h.c.Format() }

func (h *cameraHandle) ReadFrame(ctx context.Context, dst []byte) ([]byte, error) {
	h.mu.Lock()
	closed := h.closed
	h.mu.Unlock()
	if closed {
		return dst[:0], fmt.Errorf("%s: read frame: handle closed: %w", h.c.opts.Name, syscall.EBADF)
	}
	return h.c.ReadFrame(ctx, dst)
}

func (h *cameraHandle) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New(h.c.opts.Name + ": already closed")
	}
	h.closed = true
	return nil
}
