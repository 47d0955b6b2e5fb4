package scan_test

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"papscan/classify"
	config "papscan/firmware-config"
	"papscan/hal/sim/slide"
	"papscan/hal/sim/world"
	"papscan/robot"
	"papscan/scan"
)

// BenchmarkSlide scans one full-size slide (a 13 mm SurePath spot of
// synthetic cells) on the simulated robot with each shipped profile's
// machine and scan settings, and reports the scan's measures: scan
// efficiency (tile phase over its physical lower bound), autofocus
// operations per field and frames per autofocus, focus error against the
// simulator's truth, machine seconds and slides per hour (load to unload,
// one slide after another), the real time the capture waited for analysis,
// and the process's peak RSS. A slide takes minutes of host time, so it
// runs only with PAPSCAN_BENCH_SLIDE=1 (scripts/bench.sh sets it, one
// profile per process so the peak RSS is that slide's).
func BenchmarkSlide(b *testing.B) {
	for _, profile := range []string{"sim", "papscan-r2", "sim-fly", "papscan-r2-fly"} {
		b.Run(profile, func(b *testing.B) {
			if os.Getenv("PAPSCAN_BENCH_SLIDE") != "1" {
				b.Skip("set PAPSCAN_BENCH_SLIDE=1: one full slide takes minutes")
			}
			for range b.N {
				benchSlide(b, profile)
			}
		})
	}
}

func benchSlide(b *testing.B, profile string) {
	cfg, err := config.Profile(profile)
	if err != nil {
		b.Fatal(err)
	}
	sl := slide.Synthetic(slide.Spec{ID: "BENCH-0001", Seed: 11, Spot: slide.SurePath, Diagnosis: slide.HighGrade,
		FocusBaseUM: cfg.Scan.ZNominal.UM() + 4, SpotDiameterUM: cfg.Scan.SpotDiameter.UM()})
	w, err := world.NewWorld(cfg, []*slide.Slide{sl})
	if err != nil {
		b.Fatal(err)
	}
	// The simulated world has its own pins; the profile's names are kept.
	m, err := robot.BuildSim(cfg, w, w.Camera, w.Clock)
	if err != nil {
		b.Fatal(err)
	}
	model, err := classify.DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	c := cfg.Classify
	o := scan.Options{
		RobotID: "bench", SpotCenter: scan.Point{X: cfg.Scan.SpotCenterX.UM(), Y: cfg.Scan.SpotCenterY.UM()},
		SpotDiameter: cfg.Scan.SpotDiameter.UM(), TileOverlap: cfg.Scan.TileOverlap,
		FocusRange: cfg.Scan.FocusRange.UM(), FocusStep: cfg.Scan.FocusStep.UM(), FocusPoints: cfg.Scan.FocusPoints,
		ZNominal:    cfg.Scan.ZNominal.UM(),
		Detect:      classify.DetectOptions{PixelUM: cfg.Machine.Camera.PixelSize.UM(), MinAreaUM2: c.MinNucleusArea, MaxAreaUM2: c.MaxNucleusArea},
		Model:       model,
		Thresholds:  thresholds(cfg),
		Motion:      motionModel(cfg),
		Overview:    scan.OverviewGeometry{CenterX: cfg.Scan.OverviewCenterX.UM(), CenterY: cfg.Scan.OverviewCenterY.UM()},
		RefocusDrop: cfg.Scan.RefocusDrop, RefocusMax: cfg.Scan.RefocusMax,
		ZPlanes: cfg.Scan.ZPlanes, ZPlaneStep: cfg.Scan.ZPlaneStep.UM(),
		FocusTruth: w.FocusTruth,
		FocusPrior: cfg.Scan.FocusPrior,
		Fly: scan.FlyOptions{Enabled: cfg.Scan.Mode == config.ModeOnTheFly, FrameRate: cfg.Machine.Camera.FrameRate,
			Exposure: cfg.Machine.Camera.Exposure.D(), StrobePulse: cfg.Machine.Light.StrobePulse.D()},
	}
	o.Motion.XStepUM = 1 / cfg.Machine.Axes.X.MicrostepsPerUM
	if os.Getenv("PAPSCAN_BENCH_LOG") == "1" {
		o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	sc, err := scan.New(m.Machine, o)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := sc.Home(ctx); err != nil {
		b.Fatal(err)
	}
	r, err := sc.ScanSlot(ctx, "BENCH", 0)
	if err != nil {
		b.Fatal(err)
	}
	if !r.Complete() {
		b.Fatalf("slide incomplete: %s", r.Error)
	}
	t := r.Timing
	b.ReportMetric(r.Measures.ScanEfficiency, "scan_efficiency")
	b.ReportMetric(r.Measures.SlideEfficiency, "slide_efficiency")
	b.ReportMetric(r.Measures.SlideOverBound, "slide/bound")
	b.ReportMetric(r.Measures.SlideBoundSeconds, "bound_s")
	if r.Fly != nil {
		b.ReportMetric(r.Fly.BlurPx, "blur_px")
		b.ReportMetric(float64(r.Fly.Retakes), "retakes")
	}
	b.ReportMetric(r.Measures.AutofocusPerField, "af/field")
	b.ReportMetric(r.Measures.FramesPerAutofocus, "frames/af")
	b.ReportMetric(r.Measures.FocusErrorRMS, "focus_err_um")
	b.ReportMetric(world.DepthOfFieldUM(cfg.Machine.Camera.Objective.NA)/4, "dof/4_um")
	b.ReportMetric(float64(r.TilesPlanned), "tiles")
	b.ReportMetric(t.Machine.Seconds(), "machine_s")
	b.ReportMetric(3600/t.Machine.Seconds(), "slides/h")
	b.ReportMetric(t.Load.Seconds(), "load_s")
	b.ReportMetric(t.Spot.Seconds(), "overview_s")
	b.ReportMetric(t.Focus.Seconds(), "focusmap_s")
	b.ReportMetric(t.TilePhase.Seconds(), "tilephase_s")
	b.ReportMetric(t.Refocus.Seconds(), "refocus_s")
	b.ReportMetric((t.Motion - t.Settle).Seconds(), "motion_s")
	b.ReportMetric(t.Settle.Seconds(), "settle_s")
	b.ReportMetric(t.Exposure.Seconds(), "exposure_s")
	b.ReportMetric(t.AnalysisWait.Seconds(), "analysis_wait_wall_s")
	b.ReportMetric(t.Wall.Seconds(), "wall_s")
	b.ReportMetric(peakRSSMB(), "peak_rss_MB")
}

// peakRSSMB is the process's peak resident set (VmHWM), MB; 0 if unknown.
func peakRSSMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
