// Package robottest gives tests a simulated robot's configuration for each
// combination of drivers the configuration accepts, so the tests of the
// assembly point, the agent and the wiring build the same machines.
//
//	cfg := robottest.DriverCombo("tic", "dac", "pca9685")
//	r, err := robot.OpenSim(ctx, cfg, robot.SimOptions{})
package robottest

import config "papscan/firmware-config"

// StageDrivers, FocusDrivers and LampDrivers are the drivers the
// configuration accepts for the stage (x and y), the focus (z) and the lamp.
func StageDrivers() []string { return []string{"tic", "stepdir"} }
func FocusDrivers() []string { return []string{"tic", "stepdir", "dac"} }
func LampDrivers() []string  { return []string{"gpio", "pca9685"} }

// DriverCombo returns the sim profile with the stage (x and y) on driver
// xy, the focus (z) on z and the lamp on lamp, each axis's other keys
// adjusted to what its driver can do.
func DriverCombo(xy, z, lamp string) *config.Config {
	c := config.Default()
	for _, a := range []*config.Axis{&c.Machine.Axes.X, &c.Machine.Axes.Y} {
		a.Driver = xy
		if xy == "stepdir" { // 200 steps/rev × 4 / 10mm: 80 steps/mm, 1600 steps/s
			a.MicrostepsPerUM = 0.08
			a.MaxSpeed = 20 * config.MillimetrePerSecond
			a.HomingSpeed = 10 * config.MillimetrePerSecond
			a.Acceleration = 200 * config.MillimetrePerSecond2
		}
	}
	zc := &c.Machine.Axes.Z
	zc.Driver = z
	switch z {
	case "stepdir": // 12.8 steps/µm: at most 156 µm/s
		zc.MaxSpeed = 150 * config.MicrometrePerSecond
		zc.HomingSpeed = 100 * config.MicrometrePerSecond
	case "dac":
		zc.Address = 0x4C
		zc.TravelMin, zc.TravelMax = 0, 100*config.Micrometre
		zc.DAC = config.DAC{FullScale: 100 * config.Micrometre, Gain: 1}
		c.Scan.ZNominal = 50 * config.Micrometre
		c.Scan.ReferenceZ = 50 * config.Micrometre
	}
	c.Machine.Light.Driver = lamp
	c.Machine.Light.PCA9685 = config.PCA9685{Address: 0x40, Channel: 5, Frequency: config.Kilohertz}
	return c
}
