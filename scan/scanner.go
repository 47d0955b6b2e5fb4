package scan

import (
	"context"
	"errors"
	"fmt"
	"image"
	"log/slog"
	"math"
	"runtime"
	"sync"
	"time"

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
	FocusRange   float64 // half range of the autofocus sweep
	FocusStep    float64 // coarse autofocus step
	FocusPoints  int     // autofocus points for the focus map
	ZNominal     float64 // expected focus before anything is measured
	Workers      int     // analysis goroutines; 0 = GOMAXPROCS
	Detect       classify.DetectOptions
	Model        *classify.Model
	Thresholds   classify.Thresholds
	Logger       *slog.Logger
	// Progress, if set, is called from the scanning goroutine as the slide
	// advances. It must not block.
	Progress func(Progress)
}

// Progress reports how far a slide has come.
type Progress struct {
	SlideID string
	Phase   string // load, spot, focus, scan, unload, done
	Done    int
	Total   int
}

// Scanner scans slides on one machine. It is used from one goroutine.
type Scanner struct {
	m   Machine
	o   Options
	log *slog.Logger
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
	if err := errors.Join(errs...); err != nil {
		return nil, err
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

// ScanSlot loads the slide in slot, scans it and unloads it. It always
// returns a Report for a slide that was loaded; the report is INCOMPLETE
// unless every planned tile was imaged and analysed. The error is non-nil
// when the machine failed (a fault the caller must handle before the next
// slide) or ctx ended.
func (s *Scanner) ScanSlot(ctx context.Context, slot int, slideID string) (*Report, error) {
	r := newReport(s.o.RobotID, slideID, slot, s.m.Clock.Now())
	s.progress(Progress{SlideID: slideID, Phase: "load"})
	if err := s.m.Loader.Load(ctx, slot); err != nil {
		return nil, fmt.Errorf("load slot %d: %w", slot, err)
	}
	defer r.finish(s.m.Clock)
	scanErr := s.scanLoaded(ctx, r)
	if scanErr != nil {
		r.Error = scanErr.Error()
		_ = s.Halt()
	}
	s.progress(Progress{SlideID: slideID, Phase: "unload"})
	// Unload even after a scan error so the slide goes back to its slot;
	// use a fresh context if ctx is what ended, but never after a fault.
	if scanErr == nil || errors.Is(scanErr, context.Canceled) || errors.Is(scanErr, context.DeadlineExceeded) {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		err := s.m.Loader.Unload(uctx)
		cancel()
		if err != nil {
			scanErr = errors.Join(scanErr, fmt.Errorf("unload slot %d: %w", slot, err))
		}
	}
	s.progress(Progress{SlideID: slideID, Phase: "done", Done: r.TilesAnalysed, Total: r.TilesPlanned})
	return r, scanErr
}

// scanLoaded runs every step on the slide on the stage and fills r.
func (s *Scanner) scanLoaded(ctx context.Context, r *Report) error {
	summary := classify.NewSlideSummary(s.o.Thresholds, s.o.Model)
	defer func() { r.Result = summary.Result(r.Complete()) }()

	if s.m.Light != nil {
		if err := s.m.Light.SetBrightness(1); err != nil {
			return fmt.Errorf("illumination: %w", err)
		}
		defer s.m.Light.SetBrightness(0)
	}
	fw, fh := s.fieldUM()

	// 1. Find the cell spot.
	s.progress(Progress{SlideID: r.SlideID, Phase: "spot"})
	t0 := s.m.Clock.Now()
	spot, err := s.findSpot(ctx)
	r.Timing.Spot += s.m.Clock.Now().Sub(t0)
	if err != nil {
		return err
	}
	r.Spot = spot

	// 2. Plan tiles.
	plan, err := PlanTiles(Point{spot.CenterX, spot.CenterY}, spot.Diameter/2, fw, fh, s.o.TileOverlap)
	if err != nil {
		return err
	}
	r.TilesPlanned = len(plan.Tiles)

	// 3. Focus map.
	t0 = s.m.Clock.Now()
	fm, err := s.focusMap(ctx, r, Point{spot.CenterX, spot.CenterY}, spot.Diameter/2)
	r.Timing.Focus += s.m.Clock.Now().Sub(t0)
	if err != nil {
		return err
	}

	// 4. Capture tiles while workers analyse the previous ones.
	return s.captureTiles(ctx, r, plan, fm, summary)
}

// fieldUM is the camera's field of view in µm.
func (s *Scanner) fieldUM() (w, h float64) {
	pw, ph := s.m.Camera.Size()
	px := um(s.m.Camera.PixelSize())
	return float64(pw) * px, float64(ph) * px
}

// capture moves to (x, y, z) and captures into dst, accounting the time.
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

// captureTiles images every planned tile and feeds the analysis workers
// through a bounded queue; frame buffers are recycled so memory stays flat.
func (s *Scanner) captureTiles(ctx context.Context, r *Report, plan TilePlan, fm *FocusMap, summary *classify.SlideSummary) error {
	type job struct {
		i    int
		x, y float64
		img  *image.RGBA
	}
	nbuf := s.o.Workers + 2
	free := make(chan *image.RGBA, nbuf)
	for i := 0; i < nbuf; i++ {
		free <- nil // allocated on first capture at the camera's size
	}
	jobs := make(chan job, s.o.Workers)
	ov := newOverview(plan, um(s.m.Camera.PixelSize()))
	r.overview = ov

	var wg sync.WaitGroup
	var mu sync.Mutex // guards r.TilesAnalysed
	fw, fh := s.fieldUM()
	for w := 0; w < s.o.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := classify.NewAnalyzer(s.o.Detect, s.o.Model)
			for j := range jobs {
				cells := a.Analyze(j.img)
				kept := cells[:0]
				for _, c := range cells {
					// Count each cell once: keep only nuclei in the tile's
					// core, the part not shared with a neighbouring tile.
					cx := j.x + (c.X-float64(j.img.Rect.Dx())/2)*s.o.Detect.PixelUM
					cy := j.y + (c.Y-float64(j.img.Rect.Dy())/2)*s.o.Detect.PixelUM
					if math.Abs(cx-j.x) > plan.StepX/2 || math.Abs(cy-j.y) > plan.StepY/2 {
						continue
					}
					c.StageX, c.StageY, c.Tile = cx, cy, j.i
					kept = append(kept, c)
				}
				summary.Add(kept)
				ov.paste(j.img, j.x-fw/2, j.y-fh/2)
				mu.Lock()
				r.TilesAnalysed++
				mu.Unlock()
				free <- j.img
			}
		}()
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()

	s.progress(Progress{SlideID: r.SlideID, Phase: "scan", Total: len(plan.Tiles)})
	for i, t := range plan.Tiles {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.moveTo(ctx, r, t.X, t.Y); err != nil {
			return fmt.Errorf("tile %d: %w", i, err)
		}
		if err := s.setZ(ctx, r, fm.Z(t.X, t.Y)); err != nil {
			return fmt.Errorf("tile %d: %w", i, err)
		}
		var buf *image.RGBA
		select {
		case buf = <-free:
		case <-ctx.Done():
			return ctx.Err()
		}
		img, err := s.capture(ctx, r, buf)
		if errors.Is(err, hal.ErrTimeout) {
			// A dropped frame: one more try at the same place.
			s.log.Warn("frame timeout, retrying", "slide", r.SlideID, "tile", i)
			img, err = s.capture(ctx, r, img)
		}
		if err != nil {
			free <- img
			r.TilesMissing++
			return fmt.Errorf("tile %d: capture: %w", i, err)
		}
		r.TilesCaptured++
		select {
		case jobs <- job{i, t.X, t.Y, img}:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.progress(Progress{SlideID: r.SlideID, Phase: "scan", Done: i + 1, Total: len(plan.Tiles)})
	}
	return nil
}
