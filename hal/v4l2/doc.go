// Package v4l2 is the robot's camera at the wire: a hal.FrameSource over a
// Linux video4linux2 capture device (a UVC USB microscope camera), built on
// github.com/blackjack/webcam (pure Go, mmap streaming).
//
// Open negotiates the pixel format and size and checks them, sets a small
// buffer count before streaming (the library's default is 256 buffers), and
// ReadFrame copies each frame out of the driver's buffer before handing the
// buffer back. Errors wrap the kernel's errno, so callers can test
// errors.Is(err, syscall.ENODEV) (camera unplugged: close and reopen with
// backoff) or errors.Is(err, hal.ErrTimeout) (no frame in time).
//
// The library reports no timestamps or sequence numbers; Source counts
// frames itself. A Source is owned by one goroutine.
package v4l2
