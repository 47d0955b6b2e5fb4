package scan_test

import (
	"context"
	"errors"
	"math"
	"syscall"
	"testing"
	"time"

	"papscan/classify"
	config "papscan/firmware-config"
	"papscan/hal/sim/slide"
	"papscan/hal/sim/world"
	"papscan/robot"
	"papscan/scan"
)

// simRig is a simulated robot with small cell spots, so a whole slide scans
// in a few seconds.
type simRig struct {
	cfg     *config.Config
	world   *world.World
	scanner *scan.Scanner
	machine scan.Machine
	options scan.Options
	// onProgress, if set, sees the scanner's progress reports.
	onProgress func(scan.Progress)
	// onSelfTest, if set, sees the magazine's self-tests as they end.
	onSelfTest func(when string, st *scan.SelfTestResult)
	// onCells, if set, sees each analysed tile's counted cells (from the
	// analysis goroutines: Options.CellsSeen).
	onCells func(coreX, coreY float64, cells []classify.Cell)
}

const testSpotUM = 2000.0

// skipWholeSlideInShort skips a whole-slide simulation with -short: it
// takes tens of seconds natively and many minutes under qemu-user
// (scripts/qemu-user.sh). The planning and classification units it is
// built from have their own short tests.
func skipWholeSlideInShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("whole simulated slide scan: skipped with -short")
	}
}

func newRig(t *testing.T, diagnoses ...slide.Diagnosis) *simRig {
	t.Helper()
	specs := make([]slide.Spec, len(diagnoses))
	for i, d := range diagnoses {
		specs[i] = slide.Spec{ID: scan.SlideID("T", i), Diagnosis: d}
	}
	return newRigSpecs(t, nil, specs...)
}

// newRigSpecs builds a rig whose slides follow specs (seed, spot size,
// focus and abnormal count filled in when zero); tweak, if set, edits the
// configuration first.
func newRigSpecs(t *testing.T, tweak func(*config.Config), specs ...slide.Spec) *simRig {
	t.Helper()
	return newRigFrom(t, tweak, func(sp slide.Spec) (*slide.Slide, error) { return slide.Synthetic(sp), nil }, specs...)
}

// newRigFrom is newRigSpecs with the slides built by build (synthetic or
// tiled with real CRIC fields). The camera runs behind camera.Recovering,
// as on the robot.
func newRigFrom(t *testing.T, tweak func(*config.Config), build func(slide.Spec) (*slide.Slide, error), specs ...slide.Spec) *simRig {
	t.Helper()
	cfg := config.Default()
	cfg.Scan.SpotDiameter = config.Distance(testSpotUM * 1000)
	cfg.Classify.MinSquamousCells = 100
	cfg.Scan.FocusPoints = 9 // a 2 mm spot needs few
	cfg.Machine.Loader.Slots = max(cfg.Machine.Loader.Slots, len(specs))
	if tweak != nil {
		tweak(cfg)
	}
	var slides []*slide.Slide
	for i, sp := range specs {
		if sp.Seed == 0 {
			sp.Seed = int64(100 + i)
		}
		if sp.SpotDiameterUM == 0 {
			sp.SpotDiameterUM = testSpotUM
		}
		if sp.Abnormal == 0 {
			sp.Abnormal = 25
		}
		if sp.FocusBaseUM == 0 {
			sp.FocusBaseUM = cfg.Scan.ZNominal.UM() + 5
		}
		sl, err := build(sp)
		if err != nil {
			t.Fatal(err)
		}
		slides = append(slides, sl)
	}
	w, err := world.NewWorld(cfg, slides)
	if err != nil {
		t.Fatal(err)
	}
	frames, err := w.RecoveringCamera(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := robot.BuildSim(cfg, w, frames, w.Clock)
	if err != nil {
		t.Fatal(err)
	}
	model, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Classify
	rig := &simRig{cfg: cfg, world: w}
	opts := scan.Options{
		RobotID:      "test",
		SpotCenter:   scan.Point{X: cfg.Scan.SpotCenterX.UM(), Y: cfg.Scan.SpotCenterY.UM()},
		SpotDiameter: testSpotUM,
		TileOverlap:  cfg.Scan.TileOverlap,
		FocusRange:   cfg.Scan.FocusRange.UM(),
		FocusStep:    cfg.Scan.FocusStep.UM(),
		FocusPoints:  cfg.Scan.FocusPoints,
		ZNominal:     cfg.Scan.ZNominal.UM(),
		Detect:       classify.DetectOptions{PixelUM: cfg.Machine.Camera.PixelSize.UM(), MinAreaUM2: c.MinNucleusArea, MaxAreaUM2: c.MaxNucleusArea},
		Model:        model,
		Thresholds:   thresholds(cfg),
		Progress: func(p scan.Progress) {
			if rig.onProgress != nil {
				rig.onProgress(p)
			}
		},
		SelfTestDone: func(when string, st *scan.SelfTestResult) {
			if rig.onSelfTest != nil {
				rig.onSelfTest(when, st)
			}
		},
		CellsSeen: func(coreX, coreY float64, cells []classify.Cell) {
			if rig.onCells != nil {
				rig.onCells(coreX, coreY, cells)
			}
		},
		Motion:      motionModel(cfg),
		Overview:    scan.OverviewGeometry{CenterX: cfg.Scan.OverviewCenterX.UM(), CenterY: cfg.Scan.OverviewCenterY.UM()},
		SelfTest:    scan.SelfTestOptions{Reference: scan.Point{X: cfg.Scan.ReferenceX.UM(), Y: cfg.Scan.ReferenceY.UM()}, ReferenceZ: cfg.Scan.ReferenceZ.UM(), Tolerance: cfg.Scan.SelfTestTolerance.UM()},
		RefocusDrop: cfg.Scan.RefocusDrop,
		RefocusMax:  cfg.Scan.RefocusMax,
		ZPlanes:     cfg.Scan.ZPlanes,
		ZPlaneStep:  cfg.Scan.ZPlaneStep.UM(),
		StateDir:    rigStateDir(t, cfg),
		FocusTruth:  w.FocusTruth,
	}
	sc, err := scan.New(m.Machine, opts)
	if err != nil {
		t.Fatal(err)
	}
	rig.scanner = sc
	rig.machine = m.Machine
	rig.options = opts
	return rig
}

// thresholds are the configuration's classify thresholds as cmd/papscan
// passes them (the slide verdict is the embedded classify.SlideRule).
func thresholds(cfg *config.Config) classify.Thresholds {
	c := cfg.Classify
	return classify.Thresholds{HighGrade: c.HighGradeThreshold, LowGrade: c.LowGradeThreshold,
		MinSquamousCells: c.MinSquamousCells, GallerySize: c.GallerySize}
}

// rigStateDir is the state directory a test configured (agent.state_dir
// set by tweak), or none.
func rigStateDir(t *testing.T, cfg *config.Config) string {
	if cfg.Agent.StateDir == config.Default().Agent.StateDir {
		return ""
	}
	return cfg.Agent.StateDir
}

func motionModel(cfg *config.Config) scan.MotionModel {
	ax, cam := cfg.Machine.Axes, cfg.Machine.Camera
	axis := func(a config.Axis) scan.AxisModel {
		return scan.AxisModel{Speed: a.MaxSpeed.UMPerS(), Accel: a.Acceleration.UMPerS2(), Settle: a.Settle.D()}
	}
	return scan.MotionModel{X: axis(ax.X), Y: axis(ax.Y), Z: axis(ax.Z), Exposure: cam.Exposure.D(),
		FrameInterval: time.Duration(float64(time.Second) / cam.FrameRate)}
}

func TestScanSimulatedSlide(t *testing.T) {
	skipWholeSlideInShort(t)
	rig := newRig(t, slide.HighGrade)
	ctx := context.Background()
	if err := rig.scanner.Home(ctx); err != nil {
		t.Fatal(err)
	}
	// Check focus and spot against the truth while the slide is loaded:
	// capture the loader's placement through the report's coordinates.
	r, err := rig.scanner.ScanSlot(ctx, "T", 0)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if !r.Complete() || r.Verdict == "INCOMPLETE" || r.TilesPlanned < 4 {
		t.Fatalf("report incomplete: %d/%d tiles, verdict %s, error %q", r.TilesAnalysed, r.TilesPlanned, r.Verdict, r.Error)
	}
	if !r.Spot.Found {
		t.Fatal("cell spot not found")
	}
	if r.Result.Cells < 100 {
		t.Errorf("only %d cells counted on a slide holding %d", r.Result.Cells, len(rig.world.Loader.Slide(0).Cells))
	}
	t.Logf("verdict %s, %d cells (%d high, %d low), %d tiles, %d frames, focus fit rms %.2f µm, machine %.1fs",
		r.Verdict, r.Result.Cells, r.Result.HighGradeCells, r.Result.LowGradeCells, r.TilesPlanned, r.Frames, r.Focus.FitRMS, r.Timing.Machine.Seconds())
	if r.Timing.Machine <= 0 || r.Timing.Motion <= 0 {
		t.Errorf("no machine time accounted: %+v", r.Timing)
	}
}

// TestFocusAndSpotMatchTruth loads a slide, builds the focus map as the
// scanner does and compares it with the simulator's true focal surface.
func TestFocusAndSpotMatchTruth(t *testing.T) {
	skipWholeSlideInShort(t)
	rig := newRig(t, slide.Negative)
	ctx := context.Background()
	if err := rig.scanner.Home(ctx); err != nil {
		t.Fatal(err)
	}
	sl := rig.world.Loader.Slide(0)
	r, err := rig.scanner.ScanSlot(ctx, "T", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The loader seats each slide with a random offset; recover it from
	// the world for the comparison (scan never sees it).
	if len(r.Focus.Map) == 0 {
		t.Fatal("no focus points")
	}
	cx, cy, _ := sl.Spot()
	var ss float64
	for _, p := range r.Focus.Map {
		// Map the point back to slide coordinates with the spot found:
		// the scanner's spot centre corresponds to the slide's.
		sx := cx + (p.X - r.Spot.CenterX)
		sy := cy + (p.Y - r.Spot.CenterY)
		d := p.Z - sl.FocusZ(sx, sy)
		ss += d * d
	}
	rms := math.Sqrt(ss / float64(len(r.Focus.Map)))
	dof := world.DepthOfFieldUM(rig.cfg.Machine.Camera.Objective.NA)
	t.Logf("autofocus error vs true surface: rms %.2f µm over %d points (DOF %.1f µm); verdict %s, %d cells (%d high, %d low)", rms, len(r.Focus.Map), dof, r.Verdict, r.Result.Cells, r.Result.HighGradeCells, r.Result.LowGradeCells)
	if rms > dof/2 {
		t.Errorf("autofocus rms error %.2f µm exceeds half the depth of field (%.1f µm)", rms, dof/2)
	}
}

func TestCameraLostMidScanIsIncomplete(t *testing.T) {
	skipWholeSlideInShort(t)
	rig := newRig(t, slide.Negative, slide.HighGrade)
	ctx := context.Background()
	if err := rig.scanner.Home(ctx); err != nil {
		t.Fatal(err)
	}
	var reports []*scan.Report
	rig.onProgress = func(p scan.Progress) {
		if p.Phase == "scan" && p.Done == 3 {
			rig.world.Camera.Disconnect()
		}
	}
	err := rig.scanner.RunMagazine(ctx, "T", func(r *scan.Report) error {
		reports = append(reports, r)
		return nil
	})
	if !errors.Is(err, syscall.ENODEV) {
		t.Fatalf("RunMagazine error %v, want the camera's ENODEV", err)
	}
	if len(reports) != 1 {
		t.Fatalf("got %d reports, want 1 (the magazine stops at the fault)", len(reports))
	}
	r := reports[0]
	if r.Verdict != classify.VerdictIncomplete || r.Result.Verdict != classify.VerdictIncomplete || r.Complete() {
		t.Fatalf("slide that lost its camera reported %s (complete %v)", r.Verdict, r.Complete())
	}
	if r.Error == "" {
		t.Error("report does not say why it is incomplete")
	}
}
