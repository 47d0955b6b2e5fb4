package scan

import (
	"context"
	"math"
	"testing"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/sim/slide"
	"papscan/hal/sim/world"
)

// TestOverviewLabelAndSpot loads slides with each label symbology (and a
// smeared one) in the simulated world and checks what the overview gives:
// the slide named by its label or flagged unreadable, and the spot where
// the loader really seated it.
func TestOverviewLabelAndSpot(t *testing.T) {
	cfg := config.Default()
	codes := []slide.LabelCode{slide.LabelCode128, slide.LabelDataMatrix, slide.LabelQR, slide.LabelDamaged}
	ids := []string{"C26-00101", "C26-00102-DM", "LBC.2026.103", "C26-00104"}
	var slides []*slide.Slide
	for i, c := range codes {
		slides = append(slides, slide.Synthetic(slide.Spec{ID: ids[i], Seed: int64(7 + i), Label: c,
			SpotDiameterUM: cfg.Scan.SpotDiameter.UM(), CellsPerMM2: 40}))
	}
	w, err := world.NewWorld(cfg, slides)
	if err != nil {
		t.Fatal(err)
	}
	s := &Scanner{
		m: hal.Machine{Overview: camera.New(w.Overview, cfg.Scan.OverviewPixelSize.D()), Loader: w.Loader, Clock: w.Clock},
		o: Options{SpotCenter: Point{cfg.Scan.SpotCenterX.UM(), cfg.Scan.SpotCenterY.UM()}, SpotDiameter: cfg.Scan.SpotDiameter.UM(),
			Overview: OverviewGeometry{cfg.Scan.OverviewCenterX.UM(), cfg.Scan.OverviewCenterY.UM()}},
		log: discardLogger(),
	}
	ctx := context.Background()
	for slot := range codes {
		if err := w.Loader.Load(ctx, slot); err != nil {
			t.Fatal(err)
		}
		r := newReport("t", SlideID("M7", slot), slot, w.Clock.Now())
		r.Magazine = "M7"
		spot, ok, err := s.overview(ctx, r)
		if err != nil || !ok {
			t.Fatalf("slot %d: overview: %v %v", slot, ok, err)
		}
		if codes[slot] == slide.LabelDamaged {
			if r.Label.Read || r.SlideID != "UNREADABLE-M7-S03" || len(r.Flags) == 0 || r.Flags[0] != FlagLabelUnreadable {
				t.Errorf("smeared label: %+v, slide %q, flags %v", r.Label, r.SlideID, r.Flags)
			}
		} else if !r.Label.Read || r.SlideID != ids[slot] || r.Label.Format != codes[slot].String() {
			t.Errorf("slot %d (%s): label %+v, slide %q", slot, codes[slot], r.Label, r.SlideID)
		}
		x, y, rad, _ := w.SpotTruth()
		if !spot.Found || math.Hypot(spot.CenterX-x, spot.CenterY-y) > 150 || math.Abs(spot.Diameter/2-rad) > 300 || spot.Diameter/2 < rad {
			t.Errorf("slot %d: spot %+v, truth (%.0f, %.0f) r %.0f", slot, spot, x, y, rad)
		}
		if err := w.Loader.Unload(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
