package config

import (
	"time"
)

// Scan modes (scan.mode).
const (
	ModeStopAndGo = "stop_and_go"
	ModeOnTheFly  = "on_the_fly"
)

// A PCA9685 lamp switches at the STOP of an I²C write, at the bus's
// 100 kHz: the full-on write (address, register pointer, three bytes: 47
// bit times) comes 470 µs after the call, the full-off write (address,
// pointer, one byte: 29 bit times) 290 µs after it. The strobe times the
// pulse between the two STOPs, so a pulse is at least the off write
// (rounded up for the kernel's I²C call), and it starts an on write after
// the scanner fires it.
const (
	minStrobePulsePCA9685 = 300 * time.Microsecond
	pca9685OnLatency      = 470 * time.Microsecond
)

// strobeJitterMargin is the room a strobe pulse keeps from either edge of
// the exposure it is aimed at: five standard deviations of the simulated
// camera's frame-timestamp jitter.
const strobeJitterMargin = 250 * time.Microsecond

// RowSpeed is the stage speed of an on-the-fly row: one tile step
// (the field of view less the overlap, along X) per camera frame, in µm/s.
func (c *Config) RowSpeed() float64 {
	cam := c.Machine.Camera
	step := float64(cam.Width) * cam.PixelSize.UM() * (1 - c.Scan.TileOverlap)
	return step * cam.FrameRate
}

// MotionBlurPx is the motion blur of an on-the-fly frame in pixels: the
// row speed times the light pulse (the strobe, or the exposure without
// one), over the pixel size.
func (c *Config) MotionBlurPx() float64 {
	cam := c.Machine.Camera
	lit := cam.Exposure.D()
	if p := c.Machine.Light.StrobePulse.D(); p > 0 {
		lit = p
	}
	px := cam.PixelSize.UM()
	if !(px > 0) {
		return 0
	}
	return c.RowSpeed() * lit.Seconds() / px
}

// RollingSkewPx is the rolling-shutter skew of an on-the-fly frame in
// pixels: how far the stage moves between the first and the last row's
// light. Under a strobe every row sees the same pulse (validateFly makes
// it fall while every row is exposing): no skew. Otherwise the rows are
// exposed (height-1) × line_time apart.
func (c *Config) RollingSkewPx() float64 {
	cam := c.Machine.Camera
	px := cam.PixelSize.UM()
	if cam.LineTime <= 0 || c.Machine.Light.StrobePulse > 0 || !(px > 0) || cam.Height < 2 {
		return 0
	}
	return c.RowSpeed() * (cam.LineTime.D() * time.Duration(cam.Height-1)).Seconds() / px
}

// maxBlurPx is the largest motion blur an on-the-fly frame may have.
const maxBlurPx = 0.5

// validateFly checks the strobe and, for scan.mode on_the_fly, every
// combination the scanner cannot run on the fly.
func (c *Config) validateFly(v *validator) {
	m, s := &c.Machine, &c.Scan
	lt := &m.Light
	if inRange(v, "machine.light.strobe_pulse", lt.StrobePulse, 0, Duration(10*time.Millisecond), false, false, fmtDur) && lt.StrobePulse > 0 {
		switch {
		case lt.Driver == "pca9685" && lt.StrobePulse.D() < minStrobePulsePCA9685:
			v.add("machine.light.strobe_pulse", "must be >= %s for a pca9685 lamp (it switches off at the end of a 290µs I2C write at 100kHz), got %s",
				minStrobePulsePCA9685, lt.StrobePulse)
		case lt.Driver == "pca9685" && (lt.StrobePulse+Duration(pca9685OnLatency))*4 > m.Camera.Exposure:
			v.add("machine.light.strobe_pulse", "must be <= machine.camera.exposure/4 - %s (%s) for a pca9685 lamp, so the pulse, which starts at the end of a %s I2C write, lands inside the exposure despite frame-timing jitter, got %s",
				pca9685OnLatency, (m.Camera.Exposure/4 - Duration(pca9685OnLatency)).String(), pca9685OnLatency, lt.StrobePulse)
		case lt.StrobePulse*4 > m.Camera.Exposure:
			v.add("machine.light.strobe_pulse", "must be <= machine.camera.exposure/4 (%s), so the pulse lands inside the exposure despite frame-timing jitter, got %s",
				(m.Camera.Exposure / 4).String(), lt.StrobePulse)
		case m.Camera.Exposure < 2*(lt.StrobePulse+Duration(strobeJitterMargin)):
			v.add("machine.camera.exposure", "must be >= 2 × (machine.light.strobe_pulse + %s) = %s with a strobe: the pulse is aimed at the exposure's middle from frame timestamps that jitter (the simulated camera's by 50µs RMS), got %s",
				strobeJitterMargin, (2 * (lt.StrobePulse + Duration(strobeJitterMargin))).String(), m.Camera.Exposure)
		}
	}
	if lt.StrobePulse > 0 && m.Camera.LineTime > 0 && m.Camera.Height > 1 {
		// A rolling shutter: every row must be exposing while the pulse
		// lasts. The pulse is aimed at the exposure's middle from row 0's
		// timestamp, so the last row must have started by then.
		if readout := m.Camera.LineTime * Duration(m.Camera.Height-1); readout+Duration(strobeJitterMargin) > m.Camera.Exposure/2 {
			v.add("machine.camera.line_time", "with a strobe, (height-1) × line_time (%s) + %s must be <= machine.camera.exposure/2 (%s): the pulse, aimed at the middle of row 0's exposure, must fall while every row is exposing, got line_time %s",
				readout, strobeJitterMargin, m.Camera.Exposure/2, m.Camera.LineTime)
		}
	}
	if !m.Camera.Trigger.IsZero() && lt.StrobePulse > 0 {
		v.add("machine.camera.trigger", "a triggered camera exposes at the trigger's edge and its exposure freezes the motion; it takes no machine.light.strobe_pulse (got %s): set one or the other", lt.StrobePulse)
	}
	if !oneOf(v, "scan.mode", s.Mode, ModeStopAndGo, ModeOnTheFly) || s.Mode != ModeOnTheFly {
		return
	}
	ax := &m.Axes
	if ax.X.Driver != "tic" || ax.Y.Driver != "tic" {
		v.add("scan.mode", "on_the_fly needs Tic X and Y axes (a constant-speed row watched by position reads), got x %s, y %s", ax.X.Driver, ax.Y.Driver)
	}
	if ax.Z.Driver == "stepdir" {
		v.add("scan.mode", "on_the_fly cannot follow the focus with a stepdir Z (the agent times its steps while the Tic stage moves); use a tic or dac Z")
	}
	if s.ZPlanes > 1 {
		v.add("scan.z_planes", "must be 1 with scan.mode on_the_fly (a z-stack cannot be taken while the stage moves), got %d", s.ZPlanes)
	}
	// A frame that never comes must not outlast the Tics' dead-man: the
	// sweeping axes get no command while the camera is waited for and
	// reopened.
	for _, a := range []struct {
		name string
		ax   *Axis
	}{{"x", &ax.X}, {"z", &ax.Z}} {
		if a.ax.Driver == "tic" && a.ax.CommandTimeout > 0 && m.Camera.FrameTimeout+m.Camera.ReopenBackoff >= a.ax.CommandTimeout {
			v.add("machine.camera.frame_timeout", "with scan.mode on_the_fly, frame_timeout + reopen_backoff (%s + %s) must be under machine.axes.%s.command_timeout %s (the moving axis gets no command while a lost frame is waited for)",
				m.Camera.FrameTimeout, m.Camera.ReopenBackoff, a.name, a.ax.CommandTimeout)
		}
	}
	if !(m.Camera.FrameRate > 0) || !(m.Camera.PixelSize > 0) {
		return // reported by the camera checks
	}
	speed := c.RowSpeed()
	if max := ax.X.MaxSpeed.UMPerS(); speed > max {
		v.add("scan.mode", "on_the_fly needs a row speed of one tile per frame, %.1fmm/s, above machine.axes.x.max_speed %s: lower machine.camera.frame_rate",
			speed/1000, ax.X.MaxSpeed)
	}
	if blur := c.MotionBlurPx(); blur > maxBlurPx {
		what := "machine.camera.exposure " + m.Camera.Exposure.String()
		if lt.StrobePulse > 0 {
			what = "machine.light.strobe_pulse " + lt.StrobePulse.String()
		}
		fix := "set a shorter machine.light.strobe_pulse"
		if !m.Camera.Trigger.IsZero() {
			fix = "set a shorter machine.camera.exposure (the triggered camera's exposure freezes the motion)"
		}
		v.add("scan.mode", "on_the_fly at %.1fmm/s with %s blurs frames by %.2f px (at most %g): %s",
			speed/1000, what, blur, maxBlurPx, fix)
	}
	if skew := c.RollingSkewPx(); skew > maxBlurPx {
		v.add("machine.camera.line_time", "on_the_fly at %.1fmm/s with a rolling shutter skews frames by %.2f px between their first and last rows (at most %g): use a strobe, a global shutter (line_time 0) or a slower frame_rate",
			speed/1000, skew, maxBlurPx)
	}
	if acc := ax.X.Acceleration.UMPerS2(); acc > 0 {
		runUp := speed * speed / (2 * acc)
		fw := float64(m.Camera.Width) * m.Camera.PixelSize.UM()
		reach := Distance((s.SpotDiameter.UM()/2 + fw/2 + runUp) * 1000)
		if s.SpotCenterX-reach < ax.X.TravelMin || s.SpotCenterX+reach > ax.X.TravelMax {
			v.add("scan.spot_center_x", "on_the_fly rows reach %s either side of the spot centre (spot, field and a %.2fmm run-up), beyond machine.axes.x travel [%s, %s]",
				reach, runUp/1000, ax.X.TravelMin, ax.X.TravelMax)
		}
	}
}
