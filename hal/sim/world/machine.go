package world

import (
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/machine"
)

// Machine puts the robot's drivers on this world's wire, as
// machine.Build does on the real robot: the world's I²C bus, GPIO lines
// (World.GPIO) and loader, with frames and clock as given (the binary
// passes RecoveringCamera and its health-watched clock, tests the bare
// camera and clock), and the overview camera that reads the slide labels.
func (w *World) Machine(frames hal.FrameSource, clock hal.Clock) (*machine.Machine, error) {
	m, err := machine.Build(w.cfg, machine.Wire{Bus: w.Bus, Frames: frames, Pin: w.GPIO, Loader: w.Loader, Clock: clock})
	if err != nil {
		return nil, err
	}
	if w.Overview != nil {
		m.Overview = camera.New(w.Overview, w.cfg.Scan.OverviewPixelSize.D(), camera.WithName("overview"))
	}
	return m, nil
}
