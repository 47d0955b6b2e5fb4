package camera

import (
	"context"
	"fmt"
	"image"

	"periph.io/x/conn/v3/physic"

	"papscan/hal"
)

// Option configures a Camera.
type Option func(*Camera)

// WithName sets the name String reports (default: the source's String).
func WithName(name string) Option { return func(c *Camera) { c.name = name } }

// WithDecodeWorkers sets how many goroutines decode the frames Grab takes
// (default 1).
func WithDecodeWorkers(n int) Option { return func(c *Camera) { c.workers = n } }

// Camera is a hal.Camera decoding the raw frames of a hal.FrameSource. Like
// its source it is owned by one goroutine.
type Camera struct {
	src   hal.FrameSource
	pixel physic.Distance
	name  string
	buf   []byte

	workers int
	async   *Async // started by the first Grab
}

var (
	_ hal.Camera     = (*Camera)(nil)
	_ hal.FrameTimer = (*Camera)(nil)
	_ hal.Grabber    = (*Camera)(nil)
)

// New returns a camera reading src, whose pixels project to pixelSize on
// the specimen.
func New(src hal.FrameSource, pixelSize physic.Distance, opts ...Option) *Camera {
	c := &Camera{src: src, pixel: pixelSize}
	for _, o := range opts {
		o(c)
	}
	if c.name == "" {
		c.name = src.String()
	}
	return c
}

// String implements hal.Camera.
func (c *Camera) String() string { return c.name }

// Size implements hal.Camera.
func (c *Camera) Size() (w, h int) {
	_, w, h = c.src.Format()
	return w, h
}

// PixelSize implements hal.Camera.
func (c *Camera) PixelSize() physic.Distance { return c.pixel }

// LastFrame implements hal.FrameTimer when the source does (the zero
// FrameInfo otherwise).
func (c *Camera) LastFrame() hal.FrameInfo {
	if t, ok := c.src.(hal.FrameTimer); ok {
		return t.LastFrame()
	}
	return hal.FrameInfo{}
}

// Source is the raw frame source.
func (c *Camera) Source() hal.FrameSource { return c.src }

// Capture implements hal.Camera: it reads one raw frame (into a buffer the
// camera reuses) and decodes it into dst, reallocated only when its bounds
// differ from the frame size. Source errors are returned wrapped, so
// errors.Is sees hal.ErrTimeout, syscall.ENODEV and the like.
func (c *Camera) Capture(ctx context.Context, dst *image.RGBA) (*image.RGBA, error) {
	fourcc, w, h := c.src.Format()
	if _, err := FrameBytes(fourcc, w, h); err != nil {
		return dst, fmt.Errorf("camera %s: %w", c.name, err)
	}
	buf, err := c.src.ReadFrame(ctx, c.buf[:0])
	if cap(buf) > cap(c.buf) {
		c.buf = buf[:0]
	}
	if err != nil {
		return dst, fmt.Errorf("camera %s: capture: %w", c.name, err)
	}
	dst, err = Decode(dst, buf, fourcc, w, h)
	if err != nil {
		return dst, fmt.Errorf("camera %s: %w", c.name, err)
	}
	return dst, nil
}

// Grab implements hal.Grabber: it reads the next raw frame and queues its
// decode on the camera's decode pool (an Async, started by the first
// Grab; WithDecodeWorkers sizes it), so the caller can grab the next
// frame while this one decodes. Capture and Grab may be mixed on the
// owning goroutine.
func (c *Camera) Grab(ctx context.Context) (hal.GrabbedFrame, error) {
	if c.async == nil {
		c.async = NewAsync(c.src, AsyncOptions{Workers: c.workers})
		c.async.name = c.name
	}
	f, err := c.async.Grab(ctx)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Close stops the decode pool, if Grab started one (the source stays
// open: its owner closes it).
func (c *Camera) Close() {
	if c.async != nil {
		c.async.Close()
		c.async = nil
	}
}
