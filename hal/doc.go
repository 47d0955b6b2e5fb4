// Package hal is the robot's hardware abstraction layer: small interfaces for
// every device the scanner needs (stage axes, focus, camera, illumination,
// indicator LEDs, buttons, slide loader, clock) and helpers shared by their
// drivers.
//
// The interfaces are what scan and cmd program against. Concrete drivers live
// in sub-packages (hal/ticaxis for Pololu Tic motion controllers on I²C,
// hal/stepdir for STEP/DIR drivers on GPIO, hal/dacfocus for a piezo focus
// behind an I²C DAC, hal/light for the lamp on a GPIO or a PCA9685,
// hal/camera for V4L2-style frame sources, hal/panel for GPIO LEDs and
// buttons, hal/pins to open GPIO lines). Simulated hardware lives in hal/sim and sits below those drivers,
// at the wire: an i2c.Bus that speaks the Tic protocol, gpiotest pins, a frame
// source that hands out raw YUYV frames. The same driver code runs in
// simulation and on the robot.
//
// Positions and lengths are physic.Distance (nanometre resolution); all
// blocking calls take a context.Context and return promptly when it is
// cancelled.
package hal
