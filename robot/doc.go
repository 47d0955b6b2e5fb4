// Package robot is the one assembly point of papscan: it opens a robot,
// real (Open) or simulated (OpenSim), from its configuration, maps the
// configuration onto each driver's own options, and returns the devices
// as hal interfaces (Robot.Machine), the technician panel, the axes that
// were built (Robot.Axes) and one fault registry holding every device
// that latches faults (Robot.Faults), which the technician's acknowledge
// clears.
//
// The simulated robot sits below the same drivers: Build puts them on a
// Wire, which is the real I²C bus, camera and GPIO lines on the robot and
// the simulated world's (SimWire) in simulation.
//
//	r, err := robot.OpenSim(ctx, cfg, robot.SimOptions{})
//	if err != nil { ... }
//	defer r.Close()
//	sc, err := scan.New(r.Machine, opts)
//
// Only this package (and the tools that print the configuration) knows
// both firmware-config and the drivers.
package robot
