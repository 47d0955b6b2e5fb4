package robot

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/i2c/i2creg"
	"periph.io/x/host/v3"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/loader"
	"papscan/hal/panel"
	"papscan/hal/pins"
	"papscan/hal/sim/slide"
	"papscan/hal/sim/world"
)

// Names of the technician panel's buttons, as hal.Press.Button carries
// them (a chord joins names with "+", e.g. "ack+start").
const (
	ButtonStart = "start"
	ButtonAbort = "abort"
	ButtonAck   = "ack"
)

// Robot is an opened robot, real or simulated: its devices as hal
// interfaces, the technician panel, the axes that were built and one
// registry of every device that latches faults.
type Robot struct {
	hal.Machine
	// Panel is the three LEDs of the technician panel.
	Panel *panel.Panel
	// Buttons are the panel's buttons; nil when none is configured.
	Buttons *panel.Buttons
	// Axes are the axes that were built, by name ("x", "y", "z"), for
	// jog and park. A z on a DAC is a hal.FocusAxis. An axis that was not
	// built is absent (never a nil value).
	Axes map[string]hal.Axis
	// Faults holds every device that latches faults: the axes of every
	// driver, the focus, the dimmable lamp, the camera (and the loader
	// when it latches). The technician's acknowledge clears them all.
	Faults *hal.FaultRegistry
	// Trigger is the camera's trigger line (machine.camera.trigger), nil
	// when the camera runs free. Every frame read is triggered through it.
	Trigger *camera.TriggerLine
	// World is the simulation (nil on the real robot).
	World *world.World
	// Slides and Source are the simulated magazine's slides and where
	// their cells come from (OpenSim only).
	Slides []*slide.Slide
	Source string

	closers []func()
}

// Close releases what Open or OpenSim opened, last first.
func (r *Robot) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
}

// Options are what the opener needs besides the configuration.
type Options struct {
	// Clock wraps the robot's clock (the agent's health-watched clock);
	// nil leaves it as is.
	Clock func(hal.Clock) hal.Clock
	// Log receives the opener's and the camera wrapper's lines; nil
	// discards them.
	Log *slog.Logger
}

func (o Options) clock(c hal.Clock) hal.Clock {
	if o.Clock == nil {
		return c
	}
	return o.Clock(c)
}

func (o Options) log() *slog.Logger {
	if o.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Log
}

// Open opens the real robot described by cfg: periph's host drivers, the
// I²C bus, the V4L2 camera behind the recovering wrapper, the GPIO pins,
// a manual one-slot loader, then Build on top.
func Open(ctx context.Context, cfg *config.Config, o Options) (*Robot, error) {
	log := o.log()
	state, err := host.Init()
	if err != nil {
		return nil, fmt.Errorf("periph host: %w", err)
	}
	for _, f := range state.Failed {
		log.Warn("periph driver failed to load", "driver", f.D.String(), "err", f.Err)
	}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	bus, err := i2creg.Open(cfg.Machine.I2CBus)
	if err != nil {
		return nil, fmt.Errorf("machine.i2c_bus: %s: %w", cfg.Machine.I2CBus, err)
	}
	closers = append(closers, func() { bus.Close() })
	frames, err := openCamera(ctx, cfg.Machine.Camera, log)
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("machine.camera.device: %w", err)
	}
	closers = append(closers, func() { frames.Close() })
	pin := func(p config.Pin) (gpio.PinIO, error) { return pins.Open(Line(p)) }
	r, err := Build(cfg, Wire{Bus: bus, Frames: frames, Pin: pin, Loader: &loader.Manual{}, Clock: o.clock(hal.SystemClock{})})
	if err != nil {
		closeAll()
		return nil, err
	}
	r.closers = closers
	return r, nil
}

// SimOptions choose the simulated magazine.
type SimOptions struct {
	Options
	// Magazine names the simulated magazine (slide IDs); default "M0001".
	Magazine string
	// Synthetic renders synthetic slides even when real data is found.
	Synthetic bool
}

// SimSlides builds the slides of cfg's simulated magazine (sim.slides,
// seed, spot kind, the unreadable label slot) and says where their cells
// come from.
func SimSlides(cfg *config.Config, magazine string, synthetic bool) ([]*slide.Slide, string, error) {
	kind := slide.SurePath
	if cfg.Sim.SpotKind == "thinprep" {
		kind = slide.ThinPrep
	}
	data := ""
	if !synthetic {
		data = world.FindDataDir(cfg.Sim.DataDir)
	}
	specs := world.SlideSpecs(cfg.Sim.Slides, cfg.Sim.Seed, kind, magazine)
	for i := range specs {
		specs[i].FocusBaseUM = cfg.Scan.ZNominal.UM() + float64(i%5-2)*4
		// The simulated spots have the configured nominal diameter.
		specs[i].SpotDiameterUM = cfg.Scan.SpotDiameter.UM()
		// Spec.Abnormal counts CRIC fields on slides built from the
		// data (a synthetic slide's count of cells keeps its default).
		if data != "" {
			switch specs[i].Diagnosis {
			case slide.LowGrade:
				specs[i].Abnormal = cfg.Sim.LowGradeFields
			case slide.HighGrade:
				specs[i].Abnormal = cfg.Sim.HighGradeFields
			}
		}
		if i == cfg.Sim.UnreadableLabelSlot {
			specs[i].Label = slide.LabelDamaged
		}
	}
	return world.BuildSlides(specs, data)
}

// OpenSim opens the simulated robot of cfg: its magazine (SimSlides), the
// world's wire (SimWire) with the camera behind the same recovering
// wrapper as the real robot's, then Build on top.
func OpenSim(ctx context.Context, cfg *config.Config, o SimOptions) (*Robot, error) {
	if o.Magazine == "" {
		o.Magazine = "M0001"
	}
	slides, source, err := SimSlides(cfg, o.Magazine, o.Synthetic)
	if err != nil {
		return nil, err
	}
	w, err := world.NewWorld(cfg, slides)
	if err != nil {
		return nil, err
	}
	o.log().Info("simulated robot", "slides", len(slides), "source", source)
	// An unplugged sim camera is reopened with backoff on the virtual
	// clock, then becomes a camera fault, as on the robot.
	frames, err := w.RecoveringCamera(ctx, o.Log)
	if err != nil {
		return nil, err
	}
	r, err := BuildSim(cfg, w, frames, o.clock(w.Clock))
	if err != nil {
		return nil, err
	}
	r.Slides, r.Source = slides, source
	return r, nil
}

// SimWire is the wire of a simulated world: its I²C bus, GPIO lines and
// loader, the overview camera, with frames and clock as given (the agent
// passes the recovering camera and its health-watched clock, tests the
// bare camera and clock).
func SimWire(w *world.World, frames hal.FrameSource, clock hal.Clock) Wire {
	wire := Wire{Bus: w.Bus, Frames: frames, Pin: w.GPIO, Loader: w.Loader, Clock: clock}
	if w.Overview != nil {
		wire.Overview = w.Overview
	}
	return wire
}

// BuildSim is Build on a simulated world's wire (SimWire); the robot's
// World is w.
func BuildSim(cfg *config.Config, w *world.World, frames hal.FrameSource, clock hal.Clock) (*Robot, error) {
	r, err := Build(cfg, SimWire(w, frames, clock))
	if err != nil {
		return nil, err
	}
	r.World = w
	return r, nil
}

// Press presses a panel button of the simulated robot through its GPIO
// pin (button is "start", "abort", "ack" or a chord like "ack+start"),
// held long when long is set.
func (r *Robot) Press(cfg *config.Config, button string, long bool) error {
	if r.World == nil {
		return fmt.Errorf("press: only the simulated robot's buttons can be pressed")
	}
	pc := cfg.Machine.Panel
	keys := map[string]config.Pin{ButtonStart: pc.ButtonStart, ButtonAbort: pc.ButtonAbort, ButtonAck: pc.ButtonAck}
	var ps []config.Pin
	for _, b := range strings.Split(button, "+") {
		p, ok := keys[b]
		if !ok || p.IsZero() {
			return fmt.Errorf("press: no button %q (want start, abort, ack or a chord like ack+start)", b)
		}
		ps = append(ps, p)
	}
	hold := 150 * time.Millisecond
	if long {
		hold = pc.LongPress.D() + 300*time.Millisecond
	}
	for _, p := range ps {
		r.World.Pins[p.String()].EdgesChan <- gpio.Level(!p.ActiveLow)
	}
	time.AfterFunc(hold, func() {
		for _, p := range ps {
			r.World.Pins[p.String()].EdgesChan <- gpio.Level(p.ActiveLow)
		}
	})
	return nil
}

// Line maps a configured pin onto the GPIO driver's line.
func Line(p config.Pin) pins.Line {
	return pins.Line{Name: p.Name, Chip: p.Chip, Line: p.Line, ActiveLow: p.ActiveLow, Pull: p.Pull}
}

// newButtons opens the panel's configured buttons; nil when none is.
func newButtons(cfg *config.Config, pin func(config.Pin) (gpio.PinIO, error)) (*panel.Buttons, error) {
	pc := cfg.Machine.Panel
	var bs []panel.Button
	for _, b := range []struct {
		name, key string
		p         config.Pin
	}{{ButtonStart, "button_start", pc.ButtonStart}, {ButtonAbort, "button_abort", pc.ButtonAbort}, {ButtonAck, "button_ack", pc.ButtonAck}} {
		if b.p.IsZero() {
			continue
		}
		p, err := pin(b.p)
		if err != nil {
			return nil, fmt.Errorf("machine.panel.%s: %w", b.key, err)
		}
		bs = append(bs, panel.Button{Name: b.name, Pin: p, ActiveLow: b.p.ActiveLow, Pull: pins.Pull(Line(b.p))})
	}
	if len(bs) == 0 {
		return nil, nil
	}
	return panel.NewButtons(bs, panel.ButtonOptions{Debounce: pc.Debounce.D(), LongPress: pc.LongPress.D()})
}
