package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"time"

	"periph.io/x/conn/v3/physic"

	"papscan/classify"
	"papscan/hal"
)

// Machine is the hardware a Scanner drives, as hal interfaces.
type Machine = hal.Machine

// Options configure a Scanner. Lengths are micrometres.
type Options struct {
	RobotID      string
	SpotCenter   Point   // nominal cell-spot centre, stage coordinates
	SpotDiameter float64 // nominal cell-spot diameter
	TileOverlap  float64 // fraction of a field shared with its neighbour
	FocusRange   float64 // half range of the first autofocus sweep
	FocusStep    float64 // coarse autofocus step
	FocusPoints  int     // autofocus points for the focus map
	ZNominal     float64 // expected focus before anything is measured
	// RefocusDrop: a tile whose sharpness falls below this fraction of the
	// running median (with as much tissue as usual) is refocused and
	// captured again; 0 disables it. RefocusMax bounds it per slide.
	RefocusDrop float64
	RefocusMax  int
	// ZPlanes > 1 captures an odd z-stack of that many planes ZPlaneStep
	// apart around the mapped focus for every tile and merges them, per
	// pixel by local contrast, before analysis (thick clusters).
	ZPlanes    int
	ZPlaneStep float64
	// Overview is the calibration of Machine.Overview, if there is one.
	Overview OverviewGeometry
	// Motion is the machine's motion model (from its configuration); it
	// orders the waits so the axes settle in parallel and gives the
	// physical lower bound of a tile plan. Zero: no efficiency figure.
	Motion MotionModel
	// Fly selects and configures on-the-fly scanning (onthefly.go).
	Fly FlyOptions
	// FocusPrior makes each slide's focus map start from the previous
	// slide's surface: its first point is a bracket around that surface
	// instead of a sweep over the whole FocusRange (slides of one
	// magazine sit on the same holder).
	FocusPrior bool
	// SelfTest configures the self-test around each magazine.
	SelfTest SelfTestOptions
	// StateDir, if set, is where progress is journalled so an interrupted
	// slide is found after a restart (see RunMagazine).
	StateDir string
	// FocusTruth, if set, returns the true focus at a stage position. Only
	// a simulator knows it; the scanner uses it solely to measure its own
	// focus error (Report.Focus.ErrorRMS).
	FocusTruth func(x, y float64) (z float64, ok bool)
	// CellsSeen, if set, is told each analysed tile's core centre (stage
	// µm) and the cells counted in it, with their stage positions: a
	// simulator's measure of cell recall against its ground truth. It is
	// called from the analysis goroutines at once and must not keep cells.
	CellsSeen  func(coreX, coreY float64, cells []classify.Cell)
	Workers    int // analysis goroutines; 0 = GOMAXPROCS
	Detect     classify.DetectOptions
	Model      *classify.Model
	Thresholds classify.Thresholds
	Logger     *slog.Logger
	// Progress, if set, is called from the scanning goroutine as the slide
	// advances. It must not block.
	Progress func(Progress)
	// BeforeSlide, if set, is called by Magazine before it loads each slot
	// it is about to scan (occupied, not already done). It may block (a
	// pause between slides, waiting for storage); an error stops the
	// magazine before that slot, which stays Pending.
	BeforeSlide func(ctx context.Context, slot int) error
	// SelfTestDone, if set, is called by Magazine as soon as its self-test
	// "before" or "after" the magazine has a result (also in
	// MagazineResult), so a display can show it when it happens.
	SelfTestDone func(when string, st *SelfTestResult)
}

// OverviewGeometry calibrates the overview camera: its image centre shows
// the point that stage position (CenterX, CenterY) µm puts under the
// objective; the camera's PixelSize is the slide size of a pixel.
type OverviewGeometry struct {
	CenterX, CenterY float64
}

// Progress reports how far a slide has come.
type Progress struct {
	SlideID string
	Phase   string // load, label, spot, focus, scan, unload, done
	Done    int
	Total   int
}

// Scanner scans slides on one machine. It is used from one goroutine.
type Scanner struct {
	m   Machine
	o   Options
	log *slog.Logger
	// prior is the last slide's focus map (Options.FocusPrior).
	prior *FocusMap
	// widths are the widths² of recent fine focus fits (noteWidth).
	widths []float64
}

// New checks the options and returns a Scanner.
func New(m Machine, o Options) (*Scanner, error) {
	var errs []error
	if m.Stage.X == nil || m.Stage.Y == nil || m.Focus == nil || m.Camera == nil || m.Loader == nil || m.Clock == nil {
		errs = append(errs, errors.New("scan: machine is missing a device (stage X/Y, focus, camera, loader and clock are required)"))
	}
	if o.Model == nil {
		errs = append(errs, errors.New("scan: no classifier model"))
	}
	if !(o.SpotDiameter > 0) {
		errs = append(errs, fmt.Errorf("scan: spot diameter must be > 0, got %g µm", o.SpotDiameter))
	}
	if !(o.FocusRange > 0) || !(o.FocusStep > 0) || o.FocusStep > o.FocusRange {
		errs = append(errs, fmt.Errorf("scan: need 0 < focus step (%g µm) <= focus range (%g µm)", o.FocusStep, o.FocusRange))
	}
	if o.FocusPoints < 1 {
		errs = append(errs, fmt.Errorf("scan: focus points must be >= 1, got %d", o.FocusPoints))
	}
	if o.ZPlanes < 0 || (o.ZPlanes > 1 && (o.ZPlanes%2 == 0 || !(o.ZPlaneStep > 0))) {
		errs = append(errs, fmt.Errorf("scan: z planes must be 1 or odd with a step > 0, got %d planes %g µm apart", o.ZPlanes, o.ZPlaneStep))
	}
	if !(o.RefocusDrop >= 0 && o.RefocusDrop < 1) || o.RefocusMax < 0 {
		errs = append(errs, fmt.Errorf("scan: refocus drop must be in [0, 1) and refocus max >= 0, got %g and %d", o.RefocusDrop, o.RefocusMax))
	}
	if o.Fly.Enabled && (!(o.Fly.FrameRate > 0) || o.ZPlanes > 1 || o.Fly.StrobePulse < 0) {
		errs = append(errs, fmt.Errorf("scan: on-the-fly needs a frame rate > 0 (got %g), one z plane (got %d) and a strobe pulse >= 0", o.Fly.FrameRate, o.ZPlanes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.ZPlanes == 0 {
		o.ZPlanes = 1
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Detect.PixelUM == 0 {
		o.Detect.PixelUM = um(m.Camera.PixelSize())
	}
	return &Scanner{m: m, o: o, log: o.Logger}, nil
}

// Home homes the focus (away from the slide first) and then the stage.
func (s *Scanner) Home(ctx context.Context) error {
	if err := s.m.Focus.Home(ctx); err != nil {
		return fmt.Errorf("home focus: %w", err)
	}
	if err := s.m.Stage.Home(ctx); err != nil {
		return fmt.Errorf("home stage: %w", err)
	}
	return nil
}

// Halt stops all motion at once.
func (s *Scanner) Halt() error {
	return errors.Join(s.m.Stage.Halt(), s.m.Focus.Halt())
}

func (s *Scanner) progress(p Progress) {
	if s.o.Progress != nil {
		s.o.Progress(p)
	}
}

// ScanSlot loads the slide in slot of the magazine, reads its label, scans
// it and unloads it. It always returns a Report for a slide that was
// loaded; the report is INCOMPLETE unless every planned tile was imaged and
// analysed. The slide is named by its label; an unreadable label names it
// UNREADABLE-<magazine>-S<slot> and flags it, never a guess. The error is
// non-nil when the machine failed (a fault the caller must handle before
// the next slide) or ctx ended.
func (s *Scanner) ScanSlot(ctx context.Context, magazine string, slot int) (*Report, error) {
	return s.scanSlot(ctx, magazine, slot, nil)
}

func (s *Scanner) scanSlot(ctx context.Context, magazine string, slot int, j *journal) (*Report, error) {
	r := newReport(s.o.RobotID, SlideID(magazine, slot), slot, s.m.Clock.Now())
	r.Magazine = magazine
	s.progress(Progress{SlideID: r.SlideID, Phase: "load"})
	t0 := s.m.Clock.Now()
	if err := s.m.Loader.Load(ctx, slot); err != nil {
		return nil, fmt.Errorf("load slot %d: %w", slot, err)
	}
	r.Timing.Load += s.m.Clock.Now().Sub(t0)
	defer r.finish(s.m.Clock, s.o.Motion)
	scanErr := s.scanLoaded(ctx, r, j)
	if scanErr != nil {
		r.Error = scanErr.Error()
		if !errors.Is(scanErr, ErrSlide) {
			_ = s.Halt() // a slide problem leaves the machine as it is
		}
	}
	s.progress(Progress{SlideID: r.SlideID, Phase: "unload"})
	// Unload even after a scan error so the slide goes back to its slot;
	// use a fresh context if ctx is what ended, but never after a fault.
	if scanErr == nil || errors.Is(scanErr, ErrSlide) || errors.Is(scanErr, context.Canceled) || errors.Is(scanErr, context.DeadlineExceeded) {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		t0 := s.m.Clock.Now()
		err := s.m.Loader.Unload(uctx)
		r.Timing.Load += s.m.Clock.Now().Sub(t0)
		cancel()
		if err != nil {
			scanErr = errors.Join(scanErr, fmt.Errorf("unload slot %d: %w", slot, err))
		}
	}
	s.progress(Progress{SlideID: r.SlideID, Phase: "done", Done: r.TilesAnalysed, Total: r.TilesPlanned})
	return r, scanErr
}

// scanLoaded runs every step on the slide on the stage and fills r.
func (s *Scanner) scanLoaded(ctx context.Context, r *Report, j *journal) error {
	summary := classify.NewSlideSummary(s.o.Thresholds, s.o.Model)
	defer func() { r.Result = summary.Result(r.Complete()) }()

	if s.m.Light != nil {
		if err := s.m.Light.SetBrightness(1); err != nil {
			return fmt.Errorf("illumination: %w", err)
		}
		defer s.m.Light.SetBrightness(0)
	}
	fw, fh := s.fieldUM()

	// 1. Overview: the label names the slide, the spot is found.
	s.progress(Progress{SlideID: r.SlideID, Phase: "label"})
	t0 := s.m.Clock.Now()
	spot, haveSpot, err := s.overview(ctx, r)
	r.Timing.Spot += s.m.Clock.Now().Sub(t0)
	if err != nil {
		return err
	}
	if j != nil {
		j.start(r)
	}

	// 2. Without an overview, probe for the spot with the main camera.
	if !haveSpot {
		s.progress(Progress{SlideID: r.SlideID, Phase: "spot"})
		t0 = s.m.Clock.Now()
		spot, err = s.findSpot(ctx)
		r.Timing.Spot += s.m.Clock.Now().Sub(t0)
		if err != nil {
			return err
		}
	}
	r.Spot = spot

	// 3. Plan tiles.
	plan, err := PlanTiles(Point{spot.CenterX, spot.CenterY}, spot.Diameter/2, fw, fh, s.o.TileOverlap)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrSlide, err)
	}
	r.TilesPlanned = len(plan.Tiles)
	if j != nil {
		j.planned(r)
	}

	// 4. Focus map.
	t0 = s.m.Clock.Now()
	fm, err := s.focusMap(ctx, r, Point{spot.CenterX, spot.CenterY}, spot.Diameter/2)
	r.Timing.Focus += s.m.Clock.Now().Sub(t0)
	if errors.Is(err, ErrNoFocusPeak) {
		return fmt.Errorf("%w: %w", ErrSlide, err)
	}
	if err != nil {
		return err
	}

	// 5. Capture tiles while workers analyse the previous ones.
	return s.captureTiles(ctx, r, plan, fm, summary, j)
}

// fieldUM is the camera's field of view in µm.
func (s *Scanner) fieldUM() (w, h float64) {
	pw, ph := s.m.Camera.Size()
	px := um(s.m.Camera.PixelSize())
	return float64(pw) * px, float64(ph) * px
}

// starter is an axis whose move can be started and waited for separately;
// hal.AxisFocus is one, so XY and Z moves can overlap.
type starter interface {
	Start(target physic.Distance) error
	Wait(ctx context.Context) error
	Position() (physic.Distance, error)
	Halt() error
}

// maxOverlap is the longest expected move for which XY and Z are moved at
// the same time; well under any axis's command timeout.
const maxOverlap = 250 * time.Millisecond

// moveXYZ moves the stage to (x, y) and the focus to z together. Only the
// axes whose target differs move, and they are waited for in the order
// they are expected to arrive (from the motion model). A Tic axis
// (hal/ticaxis) settles from its arrival whenever it is waited for; the
// order matters for drivers that settle only once waited for (a STEP/DIR
// focus), whose settle then overlaps the others' travel instead of
// following it. The time is accounted as motion.
func (s *Scanner) moveXYZ(ctx context.Context, r *Report, x, y, z float64) error {
	t0 := s.m.Clock.Now()
	defer func() { r.Timing.Motion += s.m.Clock.Now().Sub(t0) }()
	type mv struct {
		a      starter
		target float64
		eta    time.Duration
	}
	var moves []mv
	add := func(a starter, target float64, m AxisModel) {
		if a == nil {
			return
		}
		p, err := a.Position()
		d := math.Inf(1)
		if err == nil {
			d = math.Abs(um(p) - target)
		}
		if d < 0.0005 { // already there (to the nanometre rounding)
			return
		}
		moves = append(moves, mv{a, target, m.MoveTime(d) + m.Settle})
	}
	add(s.m.Stage.X, x, s.o.Motion.X)
	add(s.m.Stage.Y, y, s.o.Motion.Y)
	zax, zok := s.m.Focus.(starter)
	if zok {
		add(zax, z, s.o.Motion.Z)
	}
	slices.SortStableFunc(moves, func(a, b mv) int { return int(a.eta - b.eta) })
	if len(moves) > 0 && moves[len(moves)-1].eta > maxOverlap {
		// A long move: one axis at a time, so no axis holds a move
		// unattended (its command-timeout dead-man is fed only while it
		// is waited for, or by its stage group). The focus first: a
		// swept autofocus bracket leaves it on a last short move that
		// nobody waits for (sweepUp).
		if err := s.m.Focus.SetZ(ctx, dist(z)); err != nil {
			return err
		}
		if err := s.m.Stage.MoveTo(ctx, dist(x), dist(y)); err != nil {
			return err
		}
		r.moves++
		return nil
	}
	for i, m := range moves {
		if err := m.a.Start(dist(m.target)); err != nil {
			for _, o := range moves[:i] {
				_ = o.a.Halt()
			}
			return err
		}
	}
	for i, m := range moves {
		if err := m.a.Wait(ctx); err != nil {
			for _, o := range moves[i+1:] {
				_ = o.a.Halt()
			}
			return err
		}
	}
	if len(moves) > 0 {
		r.moves++
	}
	if !zok {
		return s.m.Focus.SetZ(ctx, dist(z))
	}
	return nil
}

// moveTo moves the stage to (x, y), accounting the time as motion.
func (s *Scanner) moveTo(ctx context.Context, r *Report, x, y float64) error {
	t0 := s.m.Clock.Now()
	err := s.m.Stage.MoveTo(ctx, dist(x), dist(y))
	r.Timing.Motion += s.m.Clock.Now().Sub(t0)
	return err
}

func (s *Scanner) setZ(ctx context.Context, r *Report, z float64) error {
	t0 := s.m.Clock.Now()
	err := s.m.Focus.SetZ(ctx, dist(z))
	r.Timing.Motion += s.m.Clock.Now().Sub(t0)
	return err
}

func (s *Scanner) capture(ctx context.Context, r *Report, dst *image.RGBA) (*image.RGBA, error) {
	t0 := s.m.Clock.Now()
	img, err := s.m.Camera.Capture(ctx, dst)
	r.Timing.Capture += s.m.Clock.Now().Sub(t0)
	r.Frames++
	return img, err
}
