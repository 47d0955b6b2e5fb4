// Package sim is the simulated robot: hardware that sits below the real
// drivers, at the wire. Motion controllers are emulated as an i2c.Bus that
// speaks the Pololu Tic protocol over a motion model; LEDs, buttons and
// switches are periph gpiotest pins; the camera renders a virtual slide at
// the current true stage X, Y, Z and hands out raw YUYV frames. The drivers in
// hal/... run unchanged on top of it.
//
// Time in the simulation is virtual (Clock): sleeping advances machine time
// instantly, so the simulated robot runs as fast as the host can compute while
// every timing figure it reports is the machine time physics would take.
package sim
