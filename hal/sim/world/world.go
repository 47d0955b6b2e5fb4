// Package world assembles a whole simulated robot from the wire-level
// simulators in hal/sim: emulated Tic controllers on one I²C bus, the
// simulated camera, GPIO pins, and a magazine of virtual slides with a
// loader. The real drivers are built on top of it exactly as on the robot.
package world

import (
	"context"

	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
	"periph.io/x/devices/v3/tic"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/sim"
	"papscan/hal/sim/slide"
	"papscan/hal/sim/ticemu"
	"papscan/hal/ticaxis/ticspec"
)

// World is a whole simulated robot below its drivers: an I²C bus (timed:
// every transfer takes its wire time on Clock) with one emulated Tic per axis, the camera's frame source, GPIO pins, a magazine of
// virtual slides and the loader that moves them. Build the real drivers on
// top of it (ticaxis on Bus, camera.New on Camera, panel on Pins).
type World struct {
	Clock  *sim.Clock
	Bus    *ticemu.Bus
	X, Y   *ticemu.Tic
	Z      *ticemu.Tic
	Camera *sim.Camera
	Loader *Loader
	// Pins are the simulated GPIO lines by name (LEDs, buttons, light).
	Pins map[string]*gpiotest.Pin
	// Overview is the overview camera above the holder; nil when
	// scan.overview_pixel_size is 0.
	Overview *OverviewCamera
	// Reference is the reference target on the slide holder (a flat,
	// densely stained patch with clear glass beside it) the self-test
	// images at scan.reference_x/y; its focus is scan.reference_z.
	Reference *slide.Slide

	cfg    *config.Config
	dev    devices      // emulators of the non-Tic drivers (world_devices.go)
	lamp   *sim.LinePin // the lamp's GPIO line when the camera sees a gpio lamp (a strobe)
	strobe *sim.Lamp    // the light the camera sees when the lamp is a strobe
	trig   *sim.LinePin // the camera's trigger line (machine.camera.trigger), or nil
	trigIn *sim.Trigger // the camera's trigger input at its other end

	mu         sync.Mutex
	focusDrift float64 // µm added to every true focal height
	lossSlot   int     // slot whose scan loses the camera, -1 none
	lossAfter  int     // ... after this many frames of that slide
	lossFrames int
	cameraBack time.Time // when an unplugged camera is back; zero: never
}

// Reference target geometry: the target is a disc of this diameter centred
// at the configured reference position; the self-test's clear-glass field
// lies referenceGlassDX beside it; the holder shows the reference within
// ±referenceHalfW x ±referenceHalfH of that position.
const (
	referenceDiameterUM = 2500.0
	referenceGlassDX    = 2000.0
	referenceHalfW      = 3000.0
	referenceHalfH      = 1200.0
)

// SlideSpecs returns the magazine a simulated run loads: n slides with a
// mix of diagnoses (negative, low grade, high grade, repeating), seeded.
func SlideSpecs(n int, seed int64, kind slide.SpotKind, magazine string) []slide.Spec {
	mix := []slide.Diagnosis{slide.Negative, slide.LowGrade, slide.HighGrade}
	specs := make([]slide.Spec, n)
	for i := range specs {
		specs[i] = slide.Spec{
			ID:        fmt.Sprintf("%s-S%02d", magazine, i),
			Seed:      seed + int64(i)*7919,
			Spot:      kind,
			Diagnosis: mix[i%len(mix)],
			// The label codes a lab meets: Code 128, Data Matrix, QR.
			Label: []slide.LabelCode{slide.LabelCode128, slide.LabelDataMatrix, slide.LabelQR}[i%3],
		}
	}
	return specs
}

// BuildSlides builds the virtual slides: from the real CRIC fields when
// dataDir holds them, synthetic otherwise. It reports which it used.
func BuildSlides(specs []slide.Spec, dataDir string) ([]*slide.Slide, string, error) {
	slides := make([]*slide.Slide, len(specs))
	useCRIC := dataDir != ""
	if useCRIC {
		if _, err := os.Stat(filepath.Join(dataDir, "cric", "fields", "nuclei.csv")); err != nil {
			useCRIC = false
		}
	}
	var lib *slide.Library
	if useCRIC {
		var err error
		if lib, err = slide.NewLibrary(dataDir); err != nil {
			return nil, "", fmt.Errorf("CRIC data in %s: %w", dataDir, err)
		}
	}
	for i, sp := range specs {
		if useCRIC {
			s, err := lib.Slide(sp)
			if err != nil {
				return nil, "", fmt.Errorf("slide %s from CRIC data in %s: %w", sp.ID, dataDir, err)
			}
			slides[i] = s
			continue
		}
		slides[i] = slide.Synthetic(sp)
	}
	if useCRIC {
		return slides, "real CRIC fields from " + dataDir, nil
	}
	return slides, "synthetic cells", nil
}

// FindDataDir looks for the shared data set: dir if given, else a
// "shared/data" directory next to the working directory or one of its
// parents. It returns "" when there is none.
func FindDataDir(dir string) string {
	if dir != "" {
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, c := range []string{filepath.Join(d, "shared", "data"), filepath.Join(d, "..", "shared", "data")} {
			if st, err := os.Stat(filepath.Join(c, "cric")); err == nil && st.IsDir() {
				return filepath.Clean(c)
			}
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// NewWorld builds the simulated machine described by cfg with slides in
// the magazine's first slots (a nil entry is an empty slot).
func NewWorld(cfg *config.Config, slides []*slide.Slide) (*World, error) {
	if len(slides) > cfg.Machine.Loader.Slots {
		return nil, fmt.Errorf("sim: %d slides for a %d-slot magazine", len(slides), cfg.Machine.Loader.Slots)
	}
	clk := sim.NewClock()
	w := &World{Clock: clk, Bus: ticemu.NewTimedBus(clk), Pins: map[string]*gpiotest.Pin{}, cfg: cfg, lossSlot: -1}
	rng := rand.New(rand.NewPCG(uint64(cfg.Sim.Seed), 0x3041d))
	ax := []struct {
		a   config.Axis
		dst **ticemu.Tic
	}{{cfg.Machine.Axes.X, &w.X}, {cfg.Machine.Axes.Y, &w.Y}, {cfg.Machine.Axes.Z, &w.Z}}
	for i, e := range ax {
		if ok, err := w.newDevice("xyz"[i:i+1], e.a, rng); err != nil || ok {
			if err != nil {
				return nil, err
			}
			continue // not on a Tic
		}
		t, err := w.newTic(e.a, rng)
		if err != nil {
			return nil, err
		}
		*e.dst = t
	}
	w.Loader = newLoader(w.Clock, cfg.Machine.Loader.Slots, cfg.Machine.Loader.LoadTime.D(), slides, rng,
		slide.Point{X: cfg.Scan.SpotCenterX.UM(), Y: cfg.Scan.SpotCenterY.UM()})
	c := cfg.Machine.Camera
	var lamp *sim.Lamp
	if cfg.Machine.Light.StrobePulse > 0 {
		// The camera sees the lamp's output: a gpio line's level or a
		// PCA9685 channel's (at the STOP of each I²C write).
		lamp = sim.NewLamp(w.Clock, w.pose)
		w.strobe = lamp
	}
	var trig *sim.Trigger
	if !c.Trigger.IsZero() {
		trig = sim.NewTrigger(w.Clock, w.pose)
	}
	pixfmt := hal.PixFmtYUYV
	if c.PixelFormat == "MJPEG" {
		pixfmt = hal.PixFmtMJPEG
	}
	w.Camera = sim.NewCamera(w.Clock, sim.CameraOptions{
		PixelFormat:   pixfmt,
		Lamp:          lamp,
		Trigger:       trig,
		Width:         c.Width,
		Height:        c.Height,
		PixelUM:       c.PixelSize.UM(),
		Exposure:      c.Exposure.D(),
		LineTime:      c.LineTime.D(),
		FrameInterval: time.Duration(float64(time.Second) / c.FrameRate),
		Timeout:       c.FrameTimeout.D(),
		DOFUM:         DepthOfFieldUM(c.Objective.NA),
		Seed:          uint64(cfg.Sim.Seed),
		Pose:          w.pose,
		Specimen:      w.specimen,
	})
	w.Reference = slide.Synthetic(slide.Spec{
		ID: "REFERENCE", Seed: cfg.Sim.Seed + 77, SpotDiameterUM: referenceDiameterUM,
		CellsPerMM2: 200, FocusBaseUM: cfg.Scan.ReferenceZ.UM(), FocusAmplitudeUM: -1,
	})
	if px := cfg.Scan.OverviewPixelSize.UM(); px > 0 {
		w.Overview = newOverviewCamera(w.Clock, w.Loader, cfg.Scan.OverviewCenterX.UM(), cfg.Scan.OverviewCenterY.UM(), px)
	}
	p := cfg.Machine.Panel
	for _, pin := range []config.Pin{p.LEDReady, p.LEDBusy, p.LEDFault, p.ButtonStart, p.ButtonAbort, p.ButtonAck, cfg.Machine.Light.Pin, c.Trigger} {
		if pin.IsZero() {
			continue
		}
		name := pin.String()
		// Buttons idle released: pulled to their inactive level.
		w.Pins[name] = &gpiotest.Pin{N: name, L: gpio.Level(pin.ActiveLow), EdgesChan: make(chan gpio.Level, 16)}
	}
	if lamp != nil && cfg.Machine.Light.Driver == "gpio" {
		lp := cfg.Machine.Light.Pin
		w.lamp = &sim.LinePin{Pin: w.Pins[lp.String()], Device: lamp, ActiveLow: lp.ActiveLow}
	}
	if trig != nil {
		w.trig = &sim.LinePin{Pin: w.Pins[c.Trigger.String()], Device: trig, ActiveLow: c.Trigger.ActiveLow}
		w.trigIn = trig
	}
	if err := w.newLamp(); err != nil {
		return nil, err
	}
	return w, nil
}

// DepthOfFieldUM is the wave-optical depth of field λ/NA² at 550 nm.
func DepthOfFieldUM(na float64) float64 {
	if na <= 0 {
		return slide.DefaultDOFUM
	}
	return 0.55 / (na * na)
}

func (w *World) newTic(a config.Axis, rng *rand.Rand) (*ticemu.Tic, error) {
	fullPerUM := a.MicrostepsPerUM / float64(a.StepMode)
	travel := a.TravelMax.UM() * fullPerUM
	homing := uint32(math.Min(a.HomingSpeed.UMPerS()*a.MicrostepsPerUM*ticspec.SpeedScale, math.MaxUint32))
	variant, _ := ticspec.Lookup(a.TicVariant) // validated; "" would be the emulator's default
	t := ticemu.New(w.Clock, ticemu.Options{
		Variant:     tic.Variant(variant.Model),
		TravelSteps: travel,
		// Power-up position: somewhere in the travel, unknown to the driver.
		StartSteps:         travel * (0.2 + 0.6*rng.Float64()),
		HomingSpeedTowards: homing,
		HomingSpeedAway:    max(homing/10, 1),
		CommandTimeout:     a.CommandTimeout.D(),
	})
	if err := w.Bus.Attach(a.Address, t); err != nil {
		return nil, fmt.Errorf("sim: axis at 0x%02x: %w", a.Address, err)
	}
	return t, nil
}

// umOf is the true carriage position of an axis, µm from its reverse
// limit switch (where homing puts zero).
func umOf(t *ticemu.Tic, a config.Axis) float64 {
	return t.PhysicalSteps() * float64(a.StepMode) / a.MicrostepsPerUM
}

// StageTruth is the true stage position (x, y) and focus z in µm.
func (w *World) StageTruth() (x, y, z float64) {
	return w.truthUM("x"), w.truthUM("y"), w.truthUM("z")
}

// pose maps the true stage position to the point of the specimen under the
// objective: the reference target when the stage stands over it, else the
// loaded slide. An injected focus drift shifts the true focus.
func (w *World) pose() (x, y, z float64) {
	sx, sy, sz := w.StageTruth()
	w.mu.Lock()
	sz -= w.focusDrift
	w.mu.Unlock()
	if ref, ok := w.overReference(sx, sy); ok {
		return ref.X, ref.Y, sz
	}
	o := w.Loader.origin()
	return sx - o.X, sy - o.Y, sz
}

// overReference maps stage (x, y) onto the reference target, if the stage
// stands over it.
func (w *World) overReference(x, y float64) (slide.Point, bool) {
	rx, ry := w.cfg.Scan.ReferenceX.UM(), w.cfg.Scan.ReferenceY.UM()
	if math.Abs(x-rx) > referenceHalfW || math.Abs(y-ry) > referenceHalfH {
		return slide.Point{}, false
	}
	cx, cy, _ := w.Reference.Spot()
	return slide.Point{X: cx + x - rx, Y: cy + y - ry}, true
}

// specimen is what the camera images: the reference target or the loaded
// slide. It also counts the frames of a slide that is to lose the camera.
func (w *World) specimen() *slide.Slide {
	sx, sy, _ := w.StageTruth()
	if _, ok := w.overReference(sx, sy); ok {
		return w.Reference
	}
	w.Loader.mu.Lock()
	loaded := w.Loader.loaded
	w.Loader.mu.Unlock()
	w.mu.Lock()
	if loaded >= 0 && loaded == w.lossSlot {
		w.lossFrames++
		if w.lossFrames == w.lossAfter {
			w.Camera.Disconnect() // fails the next read, as an unplug would
		}
	}
	w.mu.Unlock()
	return w.Loader.onStage()
}

// InjectCameraLoss unplugs the camera after the given number of frames
// taken while the slide in slot is loaded.
func (w *World) InjectCameraLoss(slot, afterFrames int) {
	w.mu.Lock()
	w.lossSlot, w.lossAfter, w.lossFrames = slot, max(afterFrames, 1), 0
	w.mu.Unlock()
}

// InjectFocusDrift shifts every true focal height (slides and reference)
// by dz µm, as a slipped objective or thermal drift would.
func (w *World) InjectFocusDrift(dz float64) {
	w.mu.Lock()
	w.focusDrift = dz
	w.mu.Unlock()
}

// FocusTruth is the true focus height (µm, focus-stage scale) at stage
// position (x, y) of the loaded slide, or false with no slide loaded. It is
// for measuring the scanner against the truth; the scanner never sees it.
func (w *World) FocusTruth(x, y float64) (float64, bool) {
	s := w.Loader.onStage()
	if s == nil {
		return 0, false
	}
	o := w.Loader.origin()
	w.mu.Lock()
	d := w.focusDrift
	w.mu.Unlock()
	return s.FocusZ(x-o.X, y-o.Y) + d, true
}

// ReferenceGlass is the stage position of the clear glass beside the
// reference target (for the self-test's illumination check).
func ReferenceGlass(cfg *config.Config) (x, y float64) {
	return cfg.Scan.ReferenceX.UM() + referenceGlassDX, cfg.Scan.ReferenceY.UM()
}

// StrobeLamp is the light the camera sees when the lamp is a strobe
// (machine.light.strobe_pulse), nil otherwise: Break it to simulate a
// strobe that never fires.
func (w *World) StrobeLamp() *sim.Lamp { return w.strobe }

// CameraTrigger is the camera's trigger input when machine.camera.trigger
// is set, nil otherwise: Break it to simulate a trigger wire that never
// reaches the camera.
func (w *World) CameraTrigger() *sim.Trigger {
	return w.trigIn
}

// Pin returns the named simulated GPIO pin.
func (w *World) Pin(name string) (*gpiotest.Pin, error) {
	p, ok := w.Pins[name]
	if !ok {
		return nil, fmt.Errorf("sim: no GPIO pin %q", name)
	}
	return p, nil
}

// Loader is the simulated slide loader: it moves slides between magazine
// slots and the stage, taking the configured machine time for each move.
// Each load seats the slide with a small random offset, as a real gripper
// does, so the scanner has to find the cell spot.
type Loader struct {
	clock    *sim.Clock
	loadTime time.Duration
	nominal  slide.Point // stage position of a nominally seated slide's spot centre

	mu     sync.Mutex
	slots  []*slide.Slide
	loaded int // slot on the stage, -1 for none
	offset slide.Point
	rng    *rand.Rand
}

var _ hal.SlideLoader = (*Loader)(nil)

func newLoader(c *sim.Clock, n int, loadTime time.Duration, slides []*slide.Slide, rng *rand.Rand, nominal slide.Point) *Loader {
	l := &Loader{clock: c, loadTime: loadTime, nominal: nominal, slots: make([]*slide.Slide, n), loaded: -1, rng: rng}
	copy(l.slots, slides)
	return l
}

func (l *Loader) String() string { return "sim-loader" }

// Slots implements hal.SlideLoader.
func (l *Loader) Slots() int { return len(l.slots) }

// Occupied implements hal.SlideLoader.
func (l *Loader) Occupied(slot int) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slot < 0 || slot >= len(l.slots) {
		return false, fmt.Errorf("%s: slot %d outside 0..%d", l, slot, len(l.slots)-1)
	}
	return l.slots[slot] != nil, nil
}

// Load implements hal.SlideLoader.
func (l *Loader) Load(ctx context.Context, slot int) error {
	if ok, err := l.Occupied(slot); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%s: slot %d: %w", l, slot, hal.ErrNoSlide)
	}
	l.mu.Lock()
	if l.loaded >= 0 {
		l.mu.Unlock()
		return fmt.Errorf("%s: slot %d still on the stage", l, l.loaded)
	}
	l.mu.Unlock()
	if err := l.clock.Sleep(ctx, l.loadTime); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loaded = slot
	l.offset = slide.Point{X: (l.rng.Float64()*2 - 1) * 400, Y: (l.rng.Float64()*2 - 1) * 300}
	return nil
}

// Unload implements hal.SlideLoader.
func (l *Loader) Unload(ctx context.Context) error {
	l.mu.Lock()
	if l.loaded < 0 {
		l.mu.Unlock()
		return fmt.Errorf("%s: unload: %w", l, hal.ErrNoSlide)
	}
	l.mu.Unlock()
	if err := l.clock.Sleep(ctx, l.loadTime); err != nil {
		return err
	}
	l.mu.Lock()
	l.loaded = -1
	l.mu.Unlock()
	return nil
}

// Slide returns the slide in slot (nil if empty or out of range).
func (l *Loader) Slide(slot int) *slide.Slide {
	l.mu.Lock()
	defer l.mu.Unlock()
	if slot < 0 || slot >= len(l.slots) {
		return nil
	}
	return l.slots[slot]
}

// onStage is the slide under the objective, or nil.
func (l *Loader) onStage() *slide.Slide {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.loaded < 0 {
		return nil
	}
	return l.slots[l.loaded]
}

// origin is the stage position of the loaded slide's (0, 0) corner.
func (l *Loader) origin() slide.Point {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.slots[max(l.loaded, 0)]
	if s == nil || l.loaded < 0 {
		return slide.Point{}
	}
	cx, cy, _ := s.Spot()
	return slide.Point{X: l.nominal.X - cx + l.offset.X, Y: l.nominal.Y - cy + l.offset.Y}
}

// CellsTruth is the loaded slide's ground truth: its placed cells with
// their nucleus centres at stage positions (µm), or false with no slide
// loaded. Like FocusTruth it is for measuring the scanner.
func (w *World) CellsTruth() ([]slide.Cell, bool) {
	s := w.Loader.onStage()
	if s == nil {
		return nil, false
	}
	o := w.Loader.origin()
	cells := make([]slide.Cell, len(s.Cells))
	for i, c := range s.Cells {
		c.X, c.Y = c.X+o.X, c.Y+o.Y
		cells[i] = c
	}
	return cells, true
}

// SpotTruth is the stage position of the loaded slide's cell-spot centre
// and the spot's radius (µm), or false with no slide loaded. Like
// FocusTruth it is for measuring the scanner, which never sees it.
func (w *World) SpotTruth() (x, y, r float64, ok bool) {
	s := w.Loader.onStage()
	if s == nil {
		return 0, 0, 0, false
	}
	o := w.Loader.origin()
	cx, cy, rad := s.Spot()
	return cx + o.X, cy + o.Y, rad, true
}
