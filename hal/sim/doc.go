// Package sim is the simulated robot: hardware that sits below the real
// drivers, at the wire. Motion controllers are emulated as an i2c.Bus that
// speaks the Pololu Tic protocol over a motion model; LEDs, buttons and
// switches are periph gpiotest pins; the camera renders a virtual slide at
// the current true stage X, Y, Z and hands out raw YUYV (or really encoded
// MJPEG) frames, each with a jittered start-of-exposure timestamp. The
// scene is integrated along the true motion during the light (MotionBlur).
// With a Lamp (a strobe lamp, seen through its GPIO line, LinePin) the
// camera runs free on a fixed frame grid and sees only the lamp's light:
// a pulse inside an exposure freezes a moving stage, a frame without light
// is dark; the lamp may also be a PCA9685 channel (pca9685emu.OnOutput),
// lit between the STOPs of the I²C writes that switch it. With a Trigger
// (its line a LinePin) the camera exposes a frame at each trigger edge
// and none without one. With CameraOptions.LineTime the shutter rolls:
// each row is exposed at its own time along the true motion with its own
// light (LastSkew reports the skew). The drivers in hal/... run unchanged
// on top of it.
//
// Time in the simulation is virtual (Clock): sleeping advances machine time
// instantly, so the simulated robot runs as fast as the host can compute while
// every timing figure it reports is the machine time physics would take.
package sim
