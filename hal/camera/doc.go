// Package camera turns a raw hal.FrameSource (a V4L2 camera from hal/v4l2
// on the robot, the simulated camera from hal/sim in simulation) into a
// hal.Camera that delivers decoded RGBA frames. Decoding is the same code on
// the robot and in simulation.
//
// Supported pixel formats: YUYV 4:2:2 (ITU-R BT.601, limited range, the
// usual V4L2 webcam encoding), RGB3 (packed 24-bit RGB) and MJPEG (one JPEG
// per frame, what UVC cameras send at full frame rate over USB 2, decoded
// by the standard library's pure-Go image/jpeg and converted from YCbCr in
// fixed point). Raw decoding allocates nothing per frame once the caller
// reuses its destination image; image/jpeg allocates its planes per frame.
//
// Async (and Camera.Grab, the hal.Grabber on top of it) reads raw frames
// on the capture goroutine and decodes them on a small pool, so reading
// the next frame never waits for a decode; each Frame waits for its own,
// so a consumer waiting in grab order gets them in order.
//
// TriggerLine pulses a GPIO wired to a camera's external trigger input;
// Triggered (or Recovering.SetTrigger, below the recovery) fires it before
// every read, and reports the trigger's edge as the frame's time.
//
// Recovering wraps a frame source with recovery: a camera that drops off
// the bus (ENODEV, EIO) or stops delivering frames (hal.ErrTimeout) is
// closed and reopened with exponential backoff on the injected hal.Clock;
// after a bounded number of attempts a camera fault (*hal.Fault,
// hal.FaultCamera) latches until ClearFault.
package camera
