package scan_test

import (
	"context"
	"errors"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/sim/slide"
	"papscan/hal/sim/world"
	"papscan/scan"
)

// flyTweak configures the rig for on-the-fly scanning with a 2 µs strobe
// (0.07 px of blur, as sim-fly): at 10 µs (0.35 px) the cell model called
// 30-55 % fewer high-grade cells than stop-and-go on the same CRIC slides.
func flyTweak(cfg *config.Config) {
	cfg.Scan.Mode = config.ModeOnTheFly
	cfg.Machine.Light.StrobePulse = config.Duration(2 * time.Microsecond)
	cfg.Machine.Camera.FrameTimeout = config.Duration(400 * time.Millisecond)
}

// newFlyRig is a rig scanning on the fly; more tweaks may follow.
func newFlyRig(t *testing.T, more func(*config.Config), diagnoses ...slide.Diagnosis) *simRig {
	t.Helper()
	specs := make([]slide.Spec, len(diagnoses))
	for i, d := range diagnoses {
		specs[i] = slide.Spec{ID: scan.SlideID("F", i), Diagnosis: d}
	}
	return newFlyRigSpecs(t, more, specs...)
}

// newFlyRigSpecs is newFlyRig with the slides' specs.
func newFlyRigSpecs(t *testing.T, more func(*config.Config), specs ...slide.Spec) *simRig {
	t.Helper()
	return newFlyRigFrom(t, more, func(sp slide.Spec) (*slide.Slide, error) { return slide.Synthetic(sp), nil }, specs...)
}

// newFlyRigFrom is newFlyRigSpecs with the slides built by build.
func newFlyRigFrom(t *testing.T, more func(*config.Config), build func(slide.Spec) (*slide.Slide, error), specs ...slide.Spec) *simRig {
	t.Helper()
	rig := newRigFrom(t, func(cfg *config.Config) {
		flyTweak(cfg)
		if more != nil {
			more(cfg)
		}
	}, build, specs...)
	o := rig.options
	o.Fly = scan.FlyOptions{Enabled: true, FrameRate: rig.cfg.Machine.Camera.FrameRate,
		Exposure: rig.cfg.Machine.Camera.Exposure.D(), StrobePulse: rig.cfg.Machine.Light.StrobePulse.D()}
	o.Motion.XStepUM = 1 / rig.cfg.Machine.Axes.X.MicrostepsPerUM
	sc, err := scan.New(rig.machine, o)
	if err != nil {
		t.Fatal(err)
	}
	rig.scanner, rig.options = sc, o
	return rig
}

// TestOnTheFlySlide scans a slide on the fly: complete, every tile imaged
// once on the fly, blur within 0.5 px, focus within DOF/4, and faster
// than the same slide stop-and-go.
func TestOnTheFlySlide(t *testing.T) {
	skipWholeSlideInShort(t)
	ctx := context.Background()
	rig := newFlyRig(t, nil, slide.HighGrade)
	busy0 := time.Duration(-1) // I²C wire time when the tile phase began
	rig.onProgress = func(p scan.Progress) {
		if p.Phase == "scan" && busy0 < 0 {
			busy0 = rig.world.Bus.Busy()
		}
	}
	if err := rig.scanner.Home(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := rig.scanner.ScanSlot(ctx, "F", 0)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	t.Logf("I²C wire time: %.3fs in the tile phase, %.3fs in all", (rig.world.Bus.Busy() - busy0).Seconds(), rig.world.Bus.Busy().Seconds())
	if !r.Complete() || r.TilesMissing != 0 {
		t.Fatalf("incomplete: %d/%d tiles, error %q", r.TilesAnalysed, r.TilesPlanned, r.Error)
	}
	f := r.Fly
	if f == nil {
		t.Fatal("no on-the-fly figures")
	}
	t.Logf("registered %d frames, largest disagreement %.2f px", f.Registered, f.RegMaxPx)
	if f.Registered < r.TilesPlanned/3 || f.RegMaxPx > 2 {
		t.Errorf("registered %d of %d frames, largest disagreement %.2f px", f.Registered, r.TilesPlanned, f.RegMaxPx)
	}
	t.Logf("tiles %d rows %d retakes %d dropped %d dark %d off %d blur %.3f px speed %.0f µm/s tic diff %.1f µm max off %.1f µm; tile phase %.2fs bound %.2fs; focus rms %.2f µm; machine %.1fs",
		r.TilesPlanned, f.Rows, f.Retakes, f.Dropped, f.Dark, f.OffPlace, f.BlurPx, f.SpeedUMPS, f.TicDiffUM, f.MaxOffUM,
		r.Measures.TilePhaseSeconds, r.Measures.LowerBoundSeconds, r.Focus.ErrorRMS, r.Timing.Machine.Seconds())
	if f.BlurPx > 0.5 {
		t.Errorf("planned blur %.2f px", f.BlurPx)
	}
	if _, dy, _ := rig.world.Camera.LastMotion(); math.Abs(dy) > 0.5 {
		t.Errorf("last frame blurred %.2f px along y", dy)
	}
	if f.Retakes > r.TilesPlanned/20 {
		t.Errorf("%d of %d tiles re-taken", f.Retakes, r.TilesPlanned)
	}
	dof := 0.55 / (rig.cfg.Machine.Camera.Objective.NA * rig.cfg.Machine.Camera.Objective.NA)
	if r.Focus.ErrorRMS > dof/4 {
		t.Errorf("focus error %.2f µm RMS > DOF/4 = %.2f", r.Focus.ErrorRMS, dof/4)
	}
	// The 1.25x holds on a 13 mm slide (README). On this one
	// rows are four frames (133 ms), and each row change costs ~30 ms of
	// I²C on top of the stage's travel (the drivers' checks before every
	// move and their arrival polls, ~2.7 ms per poll at 100 kHz): 0.18 s
	// over 6 rows, 0.10x of the bound.
	if r.Measures.ScanEfficiency > 1.35 {
		t.Errorf("tile phase %.2fs is %.2fx its bound", r.Measures.TilePhaseSeconds, r.Measures.ScanEfficiency)
	}
}

// TestOnTheFlyFocusTracking scans a slide on the fly with the focus
// tracked from the frames (FocusDither): the slide is complete, the strips
// neighbouring frames share give estimates, and the focus stays within
// half the depth of field.
func TestOnTheFlyFocusTracking(t *testing.T) {
	skipWholeSlideInShort(t)
	ctx := context.Background()
	rig := newFlyRig(t, nil, slide.Negative)
	na := rig.cfg.Machine.Camera.Objective.NA
	dof := 0.55 / (na * na)
	o := rig.options
	o.Fly.FocusDither = dof / 10
	sc, err := scan.New(rig.machine, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Home(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := sc.ScanSlot(ctx, "F", 0)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if !r.Complete() || r.TilesMissing != 0 {
		t.Fatalf("incomplete: %d/%d tiles, error %q", r.TilesAnalysed, r.TilesPlanned, r.Error)
	}
	f := r.Fly
	t.Logf("tracked %d pairs, %d skipped, dither %.2f µm; focus error %.2f µm RMS", f.Tracked, f.TrackSkipped, f.DitherUM, r.Focus.ErrorRMS)
	if f.Tracked == 0 || f.DitherUM != dof/10 {
		t.Errorf("tracked %d pairs with a dither of %.2f µm", f.Tracked, f.DitherUM)
	}
	if r.Focus.ErrorRMS > dof/2 {
		t.Errorf("focus error %.2f µm RMS > DOF/2 = %.2f", r.Focus.ErrorRMS, dof/2)
	}
}

// TestOnTheFlyStrobeFault: a strobe that never fires is a light fault,
// and the slide is INCOMPLETE, never a dark slide called NILM; with YUYV
// frames and with MJPEG frames (checked as their decode arrives).
func TestOnTheFlyStrobeFault(t *testing.T) {
	skipWholeSlideInShort(t)
	for _, pf := range []string{"YUYV", "MJPEG"} {
		t.Run(pf, func(t *testing.T) { testOnTheFlyStrobeFault(t, pf) })
	}
}

func testOnTheFlyStrobeFault(t *testing.T, pixFmt string) {
	ctx := context.Background()
	rig := newFlyRig(t, func(cfg *config.Config) { cfg.Machine.Camera.PixelFormat = pixFmt }, slide.Negative)
	if err := rig.scanner.Home(ctx); err != nil {
		t.Fatal(err)
	}
	lamp := rig.world.StrobeLamp()
	if lamp == nil {
		t.Fatal("no strobe lamp in the world")
	}
	rig.onProgress = func(p scan.Progress) {
		if p.Phase == "scan" && p.Total > 0 {
			lamp.Break()
		}
	}
	r, err := rig.scanner.ScanSlot(ctx, "F", 0)
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultLight {
		t.Fatalf("err = %v, want a light fault", err)
	}
	if r == nil || r.Complete() || r.Verdict != "INCOMPLETE" {
		t.Fatalf("report %+v: want INCOMPLETE", r)
	}
	if !errors.Is(err, hal.ErrFault) {
		t.Errorf("%v is no hal.ErrFault", err)
	}
}

// TestOnTheFlyDroppedFrame: a frame that never comes is taken again,
// stopped; no tile is missing; with YUYV frames and with MJPEG frames
// (decoded off the capture goroutine).
func TestOnTheFlyDroppedFrame(t *testing.T) {
	skipWholeSlideInShort(t)
	for _, pf := range []string{"YUYV", "MJPEG"} {
		t.Run(pf, func(t *testing.T) { testOnTheFlyDroppedFrame(t, pf) })
	}
}

func testOnTheFlyDroppedFrame(t *testing.T, pixFmt string) {
	ctx := context.Background()
	rig := newFlyRig(t, func(cfg *config.Config) { cfg.Machine.Camera.PixelFormat = pixFmt }, slide.HighGrade)
	if err := rig.scanner.Home(ctx); err != nil {
		t.Fatal(err)
	}
	dropped := false
	rig.onProgress = func(p scan.Progress) {
		if p.Phase == "scan" && p.Done == 5 && !dropped {
			dropped = true
			rig.world.Camera.DropFrames(1)
		}
	}
	r, err := rig.scanner.ScanSlot(ctx, "F", 0)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if !dropped {
		t.Fatal("no frame was dropped")
	}
	if !r.Complete() || r.TilesMissing != 0 || r.TilesAnalysed != r.TilesPlanned {
		t.Fatalf("incomplete: %d/%d tiles analysed, %d missing", r.TilesAnalysed, r.TilesPlanned, r.TilesMissing)
	}
	if r.Fly.AsyncDecode != (pixFmt == "MJPEG") {
		t.Errorf("frames decoded off the capture goroutine: %v with %s", r.Fly.AsyncDecode, pixFmt)
	}
	if r.Fly.Dropped < 1 || r.Fly.Retakes < 1 {
		t.Errorf("dropped %d, re-taken %d: want the lost frame taken again", r.Fly.Dropped, r.Fly.Retakes)
	}
}

// TestOnTheFlyStalledStage: a stage that skips steps in the middle of a
// row (its counted position no longer true) is caught by registering the
// frames' overlap: a motion fault, the slide INCOMPLETE, never tiles
// placed where they were not.
func TestOnTheFlyStalledStage(t *testing.T) {
	skipWholeSlideInShort(t)
	ctx := context.Background()
	rig := newFlyRig(t, nil, slide.HighGrade)
	if err := rig.scanner.Home(ctx); err != nil {
		t.Fatal(err)
	}
	stalled := false
	rig.onProgress = func(p scan.Progress) {
		if p.Phase == "scan" && p.Done == 2 && !stalled {
			stalled = true
			rig.world.X.StallSteps(2) // 10 µm (20 px) at 0.2 microsteps/µm
		}
	}
	r, err := rig.scanner.ScanSlot(ctx, "F", 0)
	if !stalled {
		t.Fatal("the stage never stalled")
	}
	f := hal.FaultOf(err)
	if f == nil || f.Code != hal.FaultMotion {
		t.Fatalf("err = %v, want a motion fault", err)
	}
	if r == nil || r.Complete() || r.Verdict != "INCOMPLETE" {
		t.Fatalf("report verdict %v complete %v: want INCOMPLETE", r.Verdict, r.Complete())
	}
}

// TestOnTheFlySameCells: on the same virtual slides, an on-the-fly scan
// finds the same cells as a stop-and-go scan: the cells counted within
// 1 %, the recall against the slide's ground truth (the nuclei it placed,
// matched within their radius, at least 4 µm) within 1 point, the
// high-grade cells within 1 % or one cell or their counting noise
// (2√(a+b), or what a second stop-and-go scan with another simulator
// seed differs by), and the same verdict unless that second scan's
// differs too (a slide on the rule's edge).
// Slides: a synthetic high-grade slide and, with the shared data, the
// first three slides of the simulated magazine (CRIC fields, negative,
// low and high grade, seed 1) on a 3 mm spot (PAPSCAN_SAMECELLS_SPOT_UM
// and PAPSCAN_SAMECELLS_ONLY select others for a measurement).
func TestOnTheFlySameCells(t *testing.T) {
	skipWholeSlideInShort(t)
	// A 3 mm spot (~1,000 cells): on the 2 mm test spot 1 % is four cells.
	spotUM := 3000.0
	if v, err := strconv.ParseFloat(os.Getenv("PAPSCAN_SAMECELLS_SPOT_UM"), 64); err == nil && v > 0 {
		spotUM = v // a measurement on a larger spot (13000: the magazine's)
	}
	type slideCase struct {
		name  string
		spec  slide.Spec
		build func(slide.Spec) (*slide.Slide, error)
	}
	synth := func(sp slide.Spec) (*slide.Slide, error) { return slide.Synthetic(sp), nil }
	cases := []slideCase{{"synthetic-high", slide.Spec{ID: scan.SlideID("F", 0), Diagnosis: slide.HighGrade}, synth}}
	if data := sharedData(); data != "" {
		if lib, err := slide.NewLibrary(data); err == nil {
			for i, sp := range world.SlideSpecs(3, 1, slide.SurePath, "M0001") {
				// The magazine's own spec and focus height, as papscan
				// sim builds them (the rig's defaults for synthetic
				// slides do not apply), on the test's spot.
				sp.FocusBaseUM = config.Default().Scan.ZNominal.UM() + float64(i%5-2)*4
				cases = append(cases, slideCase{"cric-" + sp.ID + "-" + sp.Diagnosis.String(), sp, func(slide.Spec) (*slide.Slide, error) {
					sp.SpotDiameterUM = spotUM
					return lib.Slide(sp)
				}})
			}
		} else {
			t.Logf("no CRIC slides: %v", err)
		}
	}
	if only := os.Getenv("PAPSCAN_SAMECELLS_ONLY"); only != "" {
		cases = slices.DeleteFunc(cases, func(c slideCase) bool { return !strings.Contains(c.name, only) })
	}
	spot := func(cfg *config.Config) {
		cfg.Scan.SpotDiameter = config.Distance(spotUM * 1000)
		if spotUM > 5000 {
			cfg.Scan.FocusPoints = config.Default().Scan.FocusPoints
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := c.spec
			spec.ID = scan.SlideID("F", 0)
			spec.SpotDiameterUM = spotUM
			scanOne := func(rig *simRig) (*scan.Report, cellRecall) {
				t.Helper()
				ctx := context.Background()
				o := rig.options
				o.SpotDiameter = spotUM
				sc, err := scan.New(rig.machine, o)
				if err != nil {
					t.Fatal(err)
				}
				rig.scanner, rig.options = sc, o
				w := watchCells(rig)
				if err := rig.scanner.Home(ctx); err != nil {
					t.Fatal(err)
				}
				r, err := rig.scanner.ScanSlot(ctx, "F", 0)
				if err != nil || !r.Complete() {
					t.Fatalf("scan: %v (complete %v)", err, r != nil && r.Complete())
				}
				return r, w.measure()
			}
			stop, sr := scanOne(newRigFrom(t, spot, c.build, spec))
			fly, fr := scanOne(newFlyRigFrom(t, spot, c.build, spec))
			// The same slide stop-and-go again with another simulator
			// seed (sensor noise, the stage's power-up position): how
			// much two scans differ by chance alone.
			again, ar := scanOne(newRigFrom(t, func(cfg *config.Config) {
				spot(cfg)
				cfg.Sim.Seed += 1000
			}, c.build, spec))
			for _, m := range []struct {
				mode string
				r    *scan.Report
				c    cellRecall
			}{{"stop-and-go", stop, sr}, {"on the fly", fly, fr}, {"stop-and-go again (another seed)", again, ar}} {
				t.Logf("%s: %d tiles, %d cells (%d high grade, %d low grade), %s, %.1fs; truth %d nuclei in the cores, found %d (recall %.2f %%, median offset %.2f µm), high grade %d, found and called high %d; %d counted cells on no nucleus",
					m.mode, m.r.TilesAnalysed, m.r.Result.Cells, m.r.Result.HighGradeCells, m.r.Result.LowGradeCells, m.r.Verdict, m.r.Timing.Machine.Seconds(),
					m.c.Truth, m.c.Found, 100*m.c.recall(), m.c.MedianOffUM, m.c.TruthHigh, m.c.FoundHigh, m.c.Spurious)
			}
			t.Logf("focus error RMS: stop-and-go %.2f µm, on the fly %.2f µm, again %.2f µm", stop.Focus.ErrorRMS, fly.Focus.ErrorRMS, again.Focus.ErrorRMS)
			type loss struct {
				core [2]int
				s, f coreRecall
			}
			var losses []loss
			for k, v := range sr.PerCore {
				losses = append(losses, loss{k, v, fr.PerCore[k]})
			}
			slices.SortFunc(losses, func(a, b loss) int { return (b.s.found - b.f.found) - (a.s.found - a.f.found) })
			for _, l := range losses[:min(3, len(losses))] {
				n := float64(max(l.s.truth, 1))
				t.Logf("core at %v µm: %d nuclei, found %d stop-and-go (mean offset %.1f, %.1f µm), %d on the fly (%.1f, %.1f µm)", l.core, l.s.truth,
					l.s.found, l.s.dx/n, l.s.dy/n, l.f.found, l.f.dx/n, l.f.dy/n)
			}
			// Within 1 %, or within what the second stop-and-go scan
			// differs by (chance alone: on a 3 mm spot one nucleus is
			// 0.2 % of the cores' truth, and two stop-and-go scans of one
			// slide differ by up to ~1.5 % in recall and cells).
			relChance := math.Abs(float64(again.Result.Cells-stop.Result.Cells)) / float64(stop.Result.Cells)
			if d := math.Abs(float64(fly.Result.Cells-stop.Result.Cells)) / float64(stop.Result.Cells); d > max(0.01, relChance) {
				t.Errorf("cells differ by %.1f %% (stop-and-go again: %.1f %%)", 100*d, 100*relChance)
			}
			if sr.Truth == 0 || sr.Truth != fr.Truth {
				t.Errorf("ground truth in the cores: %d stop-and-go, %d on the fly (same plan, want equal and > 0)", sr.Truth, fr.Truth)
			}
			if d := math.Abs(fr.recall() - sr.recall()); d > max(0.01, math.Abs(ar.recall()-sr.recall())) {
				t.Errorf("recall %.2f %% on the fly, %.2f %% stop-and-go (%.2f %% again)", 100*fr.recall(), 100*sr.recall(), 100*ar.recall())
			}
			// High-grade cells are few (tens on a 3 mm spot) and many lie
			// near the model's threshold, so two scans of one slide differ
			// by chance (the sensor's noise): within 1 % or one cell, or
			// within two standard deviations of the difference of two
			// counts, 2√(a+b), or what the second stop-and-go scan
			// differs by. (The simulator's old bilinear motion blur, σ 0.42 px
			// for a 0.35 px path, lost 30-55 % of them.)
			withinChance := func(f, s, a int) bool {
				return abs(f-s) <= max(1, s/100, abs(a-s), int(2*math.Sqrt(float64(f+s))))
			}
			if !withinChance(fly.Result.HighGradeCells, stop.Result.HighGradeCells, again.Result.HighGradeCells) {
				t.Errorf("high-grade cells %d on the fly, %d stop-and-go (%d again)", fly.Result.HighGradeCells, stop.Result.HighGradeCells, again.Result.HighGradeCells)
			}
			// The verdict is the same, unless the slide sits on the rule's
			// edge: a second stop-and-go scan does not agree either, or
			// the counts the rule decides on (cells at its levels) differ
			// by no more than chance, as above (a 3 mm spot of the
			// high-grade slide has ~10 cells at the rule's level and its
			// verdict turns on one or two of them).
			rs, rf, ra := stop.Result, fly.Result, again.Result
			t.Logf("cells at the rule's levels (high grade, abnormal): stop-and-go %d, %d; on the fly %d, %d; again %d, %d",
				rs.SlideHighGradeCells, rs.SlideAbnormalCells, rf.SlideHighGradeCells, rf.SlideAbnormalCells, ra.SlideHighGradeCells, ra.SlideAbnormalCells)
			edge := withinChance(rf.SlideHighGradeCells, rs.SlideHighGradeCells, ra.SlideHighGradeCells) &&
				withinChance(rf.SlideAbnormalCells, rs.SlideAbnormalCells, ra.SlideAbnormalCells)
			if fly.Verdict != stop.Verdict && again.Verdict == stop.Verdict && !edge {
				t.Errorf("verdict %s on the fly, %s stop-and-go (and again)", fly.Verdict, stop.Verdict)
			}
			if fly.Timing.TilePhase >= stop.Timing.TilePhase {
				t.Errorf("tile phase %v on the fly, %v stop-and-go", fly.Timing.TilePhase, stop.Timing.TilePhase)
			}
		})
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
