package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"math"
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
	// PixelFormat is what ReadFrame hands out: hal.PixFmtYUYV (default)
	// or hal.PixFmtMJPEG (each frame really JPEG-encoded, at JPEGQuality,
	// default 85).
	PixelFormat uint32
	JPEGQuality int
	// TimestampJitter is the standard deviation of the frame timestamps
	// around the true start of exposure; default 50µs, negative for none.
	TimestampJitter time.Duration
	// Lamp, if set, is the lamp the camera sees (a strobe): the camera
	// then runs free at FrameInterval from a fixed phase, integrates the
	// lamp's light over each exposure along the true motion (the pose at
	// each pulse's edges, or at the exposure's start and end under steady
	// light), and a frame without light is dark. Nil: the lamp is always
	// on, and each read starts a new exposure (the stop-and-go camera).
	Lamp *Lamp
	// LineTime, above zero, makes the shutter a rolling one: row r starts
	// exposing r×LineTime after row 0, so each row sees the specimen at
	// its own time along the true motion (a moving stage skews the
	// frame) and gets its own light (a strobe pulse lights the rows that
	// are exposing while it lasts). The frame is delivered when its last
	// row has been exposed. Zero: a global shutter.
	LineTime time.Duration
	// Trigger, if set, puts the camera in external-trigger mode: each
	// frame is exposed from an edge on the trigger input (see
	// readTriggered); without one a read times out.
	Trigger *Trigger
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
	jit *rand.Rand // timestamp jitter (apart from rng: the noise stays as it was)

	next   time.Time // earliest start of the next exposure
	frames uint64
	last   hal.FrameInfo
	seq    uint64    // grid frame index of the last frame (Lamp mode)
	litEnd time.Time // end of the last frame's exposure (Lamp mode)
	blur   *image.RGBA
	jpeg   bytes.Buffer
	motion [2]float64 // blur of the last frame along x, y in pixels
	light  float64    // light of the last frame relative to a nominal exposure
	skew   [2]float64 // rolling shutter: offset of the last lit row from the first, pixels
	// litRows is the span of rows from the first to the last lit one
	// (rolling shutter; the height otherwise).
	litRows int

	mu           sync.Mutex
	disconnected bool
	drop         int
	closed       bool
}

var (
	_ hal.FrameSource = (*Camera)(nil)
	_ hal.FrameTimer  = (*Camera)(nil)
)

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
	if opts.PixelFormat == 0 {
		opts.PixelFormat = hal.PixFmtYUYV
	}
	if opts.JPEGQuality <= 0 {
		opts.JPEGQuality = 85
	}
	if opts.TimestampJitter == 0 {
		opts.TimestampJitter = 50 * time.Microsecond
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
		jit:   rand.New(rand.NewPCG(opts.Seed, 0x717732)),
	}
}

// String implements hal.FrameSource.
func (c *Camera) String() string {
	return fmt.Sprintf("%s %dx%d %s", c.opts.Name, c.opts.Width, c.opts.Height, hal.FourCC(c.opts.PixelFormat))
}

// Format implements hal.FrameSource: the configured format and size.
func (c *Camera) Format() (fourcc uint32, w, h int) {
	return c.opts.PixelFormat, c.opts.Width, c.opts.Height
}

// LastFrame implements hal.FrameTimer: the sequence number and the
// (jittered) start-of-exposure timestamp of the last frame delivered.
func (c *Camera) LastFrame() hal.FrameInfo { return c.last }

// LastMotion is the motion blur of the last frame in pixels along x and y
// (the true stage path while light fell on the sensor), and its light
// relative to a nominal exposure (0: dark, 1: nominal). For tests.
func (c *Camera) LastMotion() (dx, dy, light float64) { return c.motion[0], c.motion[1], c.light }

// LastSkew is the rolling-shutter skew of the last frame: how far (pixels,
// along x and y) the specimen under the last lit row had moved from where
// it was under the first, and how many rows lie from the first lit row to
// the last. A global shutter has no skew and all rows lit when lit at
// all. For tests.
func (c *Camera) LastSkew() (dx, dy float64, rows int) { return c.skew[0], c.skew[1], c.litRows }

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
	if c.opts.Trigger != nil {
		return c.readTriggered(ctx, dst)
	}
	if c.opts.Lamp != nil {
		return c.readLit(ctx, dst)
	}
	if now := c.clock.Now(); now.Before(c.next) {
		if err := c.clock.Sleep(ctx, c.next.Sub(now)); err != nil {
			return dst[:0], err
		}
	}
	start := c.clock.Now()
	c.next = start.Add(c.opts.FrameInterval)
	x, y, z := c.opts.Pose()
	s := c.specimen()
	if c.opts.LineTime > 0 {
		end := c.frameEnd(start)
		if err := c.clock.Sleep(ctx, end.Sub(start)); err != nil {
			return dst[:0], err
		}
		x1, y1, z1 := c.opts.Pose()
		c.renderRolling(s, start, poseTrack{{start, [3]float64{x, y, z}}, {end, [3]float64{x1, y1, z1}}})
		c.frames++
		c.stamp(c.frames, start)
		return c.encode(dst), nil
	}
	if err := c.clock.Sleep(ctx, c.opts.Exposure); err != nil {
		return dst[:0], err
	}
	x1, y1, _ := c.opts.Pose()
	c.render(s, x, y, z, x1, y1, 1)
	c.frames++
	c.stamp(c.frames, start)
	return c.encode(dst), nil
}

func (c *Camera) specimen() *slide.Slide {
	if c.opts.Specimen != nil {
		return c.opts.Specimen()
	}
	return nil
}

// stamp records the frame's sequence number and its timestamp: the start
// of exposure with the device's jitter.
func (c *Camera) stamp(seq uint64, start time.Time) {
	ts := start
	if c.opts.TimestampJitter > 0 {
		ts = ts.Add(time.Duration(c.jit.NormFloat64() * float64(c.opts.TimestampJitter)))
	}
	c.last = hal.FrameInfo{Seq: seq, Timestamp: ts}
}

// render draws the specimen with the light travelling from pose (x0, y0)
// to (x1, y1) during the exposure (a box motion blur along that path:
// the scene integrated over the exposure) at the focus z, scaled by the
// light the frame received relative to a nominal exposure.
func (c *Camera) render(s *slide.Slide, x0, y0, z, x1, y1, light float64) {
	xm, ym := (x0+x1)/2, (y0+y1)/2
	defocus := 0.0
	if s != nil {
		defocus = z - s.FocusZ(xm, ym)
	}
	dx, dy := (x1-x0)/c.opts.PixelUM, (y1-y0)/c.opts.PixelUM
	moved := math.Hypot(dx, dy) >= 0.05
	if moved {
		// The motion blurs the scene, not the sensor's noise: noise
		// after the blur.
		c.r.Render(s, c.img, xm, ym, defocus, nil)
	} else {
		c.r.Render(s, c.img, xm, ym, defocus, c.rng)
	}
	c.motion, c.light = [2]float64{dx, dy}, light
	c.skew, c.litRows = [2]float64{}, 0
	if light > 0 {
		c.litRows = c.opts.Height
	}
	if moved {
		if c.blur == nil || c.blur.Rect != c.img.Rect {
			c.blur = image.NewRGBA(c.img.Rect)
		}
		MotionBlur(c.blur, c.img, dx, dy)
		c.img, c.blur = c.blur, c.img
		c.r.AddNoise(c.img, c.rng)
	}
	if light != 1 {
		scaleLight(c.img, light)
	}
}

// encode hands the frame out in the configured format.
func (c *Camera) encode(dst []byte) []byte {
	if c.opts.PixelFormat == hal.PixFmtMJPEG {
		return EncodeMJPEG(dst[:0], &c.jpeg, c.img, c.opts.JPEGQuality)
	}
	return EncodeYUYV(dst[:0], c.img)
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

func (h *cameraHandle) LastFrame() hal.FrameInfo { return h.c.LastFrame() }

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
