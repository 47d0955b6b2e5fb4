package hal

import (
	"context"
	"fmt"
	"image"
	"time"

	"periph.io/x/conn/v3/physic"
)

// PixFmtMJPEG is V4L2_PIX_FMT_MJPEG: each frame is one baseline JPEG image
// (what USB video-class cameras deliver at full frame rate over USB 2).
const PixFmtMJPEG uint32 = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24

// FrameInfo describes the frame a FrameSource delivered last.
type FrameInfo struct {
	// Seq counts the frames the device exposed since it was opened,
	// including frames nobody read: a gap between two reads' Seq is
	// frames the camera took meanwhile.
	Seq uint64
	// Timestamp is when the frame's exposure started, on the time base of
	// the machine's hal.Clock (the V4L2 buffer timestamp, monotonic). It
	// carries the device's jitter.
	Timestamp time.Time
}

// FrameTimer is a frame source (or camera) that reports when its last
// frame was exposed. On-the-fly scanning needs it: a frame's place on the
// slide comes from its timestamp and the planned motion.
type FrameTimer interface {
	LastFrame() FrameInfo
}

// SweepAxis is an axis that can cross a row at a chosen constant speed
// while the caller watches it (on-the-fly scanning). hal/ticaxis implements
// it.
type SweepAxis interface {
	Axis
	// SetCruise sets the top speed of the moves started from now on; 0
	// restores the configured maximum speed.
	SetCruise(v physic.Speed) error
	// Poll checks a move in progress without waiting for it: any driver
	// error halts the axis and latches a fault, as Wait would; the
	// dead-man is fed. It returns the counted position and whether the
	// axis is still short of its target.
	Poll() (pos physic.Distance, moving bool, err error)
}

// Strobe is a light that can flash one short pulse: the lamp driver (on a
// GPIO line or a PCA9685 channel) or a camera trigger line. A short pulse
// freezes a moving stage in the frame.
type Strobe interface {
	fmt.Stringer
	// Fire switches the light on for width and off again, and returns
	// when the pulse is over.
	Fire(ctx context.Context, width time.Duration) error
}

// Grabber is a camera that reads a frame now and decodes it later, off
// the capture goroutine (hal/camera's Camera, on a small decode pool):
// the capture loop grabs the next frame while earlier ones decode, and
// an analysis worker waits for each. Frames decode concurrently; each
// waits for its own, so a consumer that waits in grab order gets them in
// order.
type Grabber interface {
	// Grab waits for the camera's next raw frame only (and for a free
	// buffer when too many frames are out) and queues its decode.
	Grab(ctx context.Context) (GrabbedFrame, error)
}

// GrabbedFrame is one frame from a Grabber.
type GrabbedFrame interface {
	// Info is the frame's timing, taken when it was read.
	Info() FrameInfo
	// Wait returns the decoded frame, owned by the GrabbedFrame until
	// Release.
	Wait(ctx context.Context) (*image.RGBA, error)
	// Release hands the frame's buffers back; its image must not be used
	// after it.
	Release()
}
