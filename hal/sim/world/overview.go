package world

import (
	"context"
	"fmt"
	"image"
	"sync"
	"syscall"
	"time"

	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
)

// Overview field of view of the simulated overview camera, µm: the slide
// (75x25 mm) with a margin of holder around it.
const (
	overviewWidthUM  = 80000.0
	overviewHeightUM = 30000.0
)

// OverviewCamera is the simulated low-magnification overview camera above
// the slide holder: a FrameSource of YUYV frames showing the loaded slide
// (label and cell spot) where the loader actually seated it, on the grey
// holder. Its geometry is calibrated by scan.overview_center_x/y and
// scan.overview_pixel_size: pixel (i, j) shows the point that stage position
// (cx + (i+0.5-w/2)·px, cy + (j+0.5-h/2)·px) puts under the objective.
type OverviewCamera struct {
	clock    *sim.Clock
	loader   *Loader
	cx, cy   float64 // stage position seen at the image centre, µm
	px       float64 // µm per pixel
	w, h     int
	exposure time.Duration
	img      *image.RGBA

	mu           sync.Mutex
	disconnected bool
	closed       bool
}

var _ hal.FrameSource = (*OverviewCamera)(nil)

func newOverviewCamera(c *sim.Clock, l *Loader, cx, cy, px float64) *OverviewCamera {
	w := int(overviewWidthUM/px) &^ 1
	h := int(overviewHeightUM / px)
	return &OverviewCamera{clock: c, loader: l, cx: cx, cy: cy, px: px, w: max(w, 2), h: max(h, 1),
		exposure: 20 * time.Millisecond}
}

// String implements hal.FrameSource.
func (o *OverviewCamera) String() string {
	return fmt.Sprintf("sim-overview %dx%d %s", o.w, o.h, hal.FourCC(hal.PixFmtYUYV))
}

// Format implements hal.FrameSource.
func (o *OverviewCamera) Format() (uint32, int, int) { return hal.PixFmtYUYV, o.w, o.h }

// ReadFrame implements hal.FrameSource.
func (o *OverviewCamera) ReadFrame(ctx context.Context, dst []byte) ([]byte, error) {
	o.mu.Lock()
	closed, disc := o.closed, o.disconnected
	o.mu.Unlock()
	switch {
	case closed:
		return dst[:0], fmt.Errorf("sim-overview: read frame: camera closed: %w", syscall.EBADF)
	case disc:
		return dst[:0], fmt.Errorf("sim-overview: read frame: %w", syscall.ENODEV)
	}
	if o.img == nil {
		o.img = image.NewRGBA(image.Rect(0, 0, o.w, o.h))
	}
	s := o.loader.onStage()
	org := o.loader.origin()
	// Slide point at the image's top-left corner.
	x0 := o.cx - float64(o.w)/2*o.px - org.X
	y0 := o.cy - float64(o.h)/2*o.px - org.Y
	slide.RenderOverviewAt(s, o.img, x0, y0, o.px)
	if err := o.clock.Sleep(ctx, o.exposure); err != nil {
		return dst[:0], err
	}
	return sim.EncodeYUYV(dst[:0], o.img), nil
}

// Close implements hal.FrameSource.
func (o *OverviewCamera) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	return nil
}

// Disconnect makes reads fail with ENODEV until Reconnect.
func (o *OverviewCamera) Disconnect() { o.mu.Lock(); o.disconnected = true; o.mu.Unlock() }

// Reconnect ends a Disconnect.
func (o *OverviewCamera) Reconnect() { o.mu.Lock(); o.disconnected = false; o.mu.Unlock() }
