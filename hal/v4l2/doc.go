// Package v4l2 is the robot's camera at the wire: a hal.FrameSource over a
// Linux video4linux2 capture device (a UVC USB microscope camera), built on
// github.com/blackjack/webcam (pure Go, mmap streaming).
//
// Open negotiates the pixel format and size and checks them (an
// unsupported one is an error listing what the device offers), sets the
// frame rate, the exposure (V4L2_CID_EXPOSURE_ABSOLUTE with automatic
// exposure off), the gain (V4L2_CID_GAIN with automatic gain off) and any
// further controls, each checked against the controls the device offers
// and read back, sets a small buffer count before streaming (the library's
// default is 256 buffers), and ReadFrame copies each frame out of the
// driver's buffer before handing the buffer back. Every wait has a
// timeout. Errors wrap the kernel's errno, so callers can test
// errors.Is(err, syscall.ENODEV) (camera unplugged) or errors.Is(err,
// hal.ErrTimeout) (no frame in time); hal/camera.Recovering closes and
// reopens the camera on those.
//
// MJPEG (V4L2_PIX_FMT_MJPEG) frames vary in length and are not
// length-checked; hal/camera decodes them.
//
// Limits of the library: it waits in whole seconds, reports no timestamps
// or sequence numbers (Source counts frames itself and stamps each with
// its dequeue time, see LastFrame) and does not expose
// V4L2_BUF_FLAG_ERROR, so a frame the driver marks as corrupt is delivered
// like any other (its length is still checked).
//
// The package is tested against the kernel's vivid driver in a VM:
// scripts/vm (build tag "vivid"). A Source is owned by one goroutine.
package v4l2
