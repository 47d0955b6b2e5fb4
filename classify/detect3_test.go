package classify

import (
	"image"
	"math"
	"testing"
)

// paint sets every pixel of img inside shape to rgb, with ±4 noise that
// depends on the position only (reproducible tiles).
func paint(img *image.RGBA, shape func(x, y float64) bool, rgb [3]uint8) {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if !shape(float64(x), float64(y)) {
				continue
			}
			n := float64((x*7919+y*104729)%9) - 4
			i := img.PixOffset(x, y)
			img.Pix[i] = clamp8(float64(rgb[0]) + n)
			img.Pix[i+1] = clamp8(float64(rgb[1]) + n)
			img.Pix[i+2] = clamp8(float64(rgb[2]) + n)
		}
	}
}

func near(ns []Nucleus, x, y, tol float64) *Nucleus {
	for i := range ns {
		if math.Hypot(ns[i].X-x, ns[i].Y-y) <= tol {
			return &ns[i]
		}
	}
	return nil
}

// foldTile: two normal cells; a pale streak of folded cytoplasm lying on
// an overlap of cytoplasm in the first, and a pale arc (the rim of an
// overlapping cell) around the nucleus of the second.
func foldTile(streak, arc [3]uint8) *image.RGBA {
	img := synthTile(640, 480, []blob{{x: 160, y: 260, rx: 10, ry: 10}, {x: 460, y: 240, rx: 14, ry: 14}}, 21)
	paint(img, func(x, y float64) bool { return x >= 110 && x < 210 && y >= 190 && y < 222 }, [3]uint8{165, 180, 200})
	paint(img, func(x, y float64) bool { return x >= 120 && x < 200 && y >= 203 && y < 209 }, streak)
	paint(img, func(x, y float64) bool {
		r := math.Hypot(x-460, y-240)
		return r >= 30 && r < 34 && y < 240
	}, arc)
	return img
}

// darkTile: a large dark lobed (irregular) nucleus and a dark spindle
// nucleus (keratinising SCC), each in its cytoplasm.
func darkTile() *image.RGBA {
	img := synthTile(640, 480, []blob{{x: 170, y: 240, rx: 20, ry: 20}, {x: 470, y: 240, rx: 20, ry: 8}}, 22)
	paint(img, func(x, y float64) bool {
		return math.Hypot(x-165, y-245) < 20 || math.Hypot(x-192, y-222) < 13 || math.Hypot(x-190, y-268) < 11 || math.Hypot(x-140, y-215) < 9
	}, [3]uint8{60, 45, 110})
	paint(img, func(x, y float64) bool {
		u, v := (x-470)/44, (y-240)/7
		return u*u+v*v <= 1
	}, [3]uint8{70, 55, 120})
	return img
}

// TestDetectRejectsFolds: a faint streak of folded cytoplasm and a faint
// arc (the rim of an overlapping cell) pass the threshold and the ring
// contrast test but are not nuclei; the fold test drops both (each by its
// own branch: the streak is elongated, the arc fills little of its box,
// both are flat) and keeps the two nuclei.
func TestDetectRejectsFolds(t *testing.T) {
	img := foldTile([3]uint8{140, 140, 180}, [3]uint8{120, 120, 170})
	nuclei := [][2]float64{{160, 260}, {460, 240}}
	folds := [][2]float64{{160, 206}, {460, 219}}
	off := NewDetector(DetectOptions{PixelUM: 0.25, FoldRingOD: -1}).Detect(img)
	if len(off) != 4 {
		t.Fatalf("fold test off: %d objects, want 4 (2 nuclei, streak, arc): %+v", len(off), off)
	}
	streak, arc := near(off, folds[0][0], folds[0][1], 3), near(off, folds[1][0], folds[1][1], 3)
	if streak == nil || arc == nil {
		t.Fatalf("fold test off: streak or arc not found: %+v", off)
	}
	// The synthetic folds exercise the intended branches.
	if streak.RingContrast >= 0.2 || streak.Elongation <= 3.8 {
		t.Errorf("streak: ring %.3f elongation %.2f, want < 0.2 and > 3.8", streak.RingContrast, streak.Elongation)
	}
	if arc.RingContrast >= 0.2 || arc.Fill >= 0.25 {
		t.Errorf("arc: ring %.3f fill %.2f, want < 0.2 and < 0.25", arc.RingContrast, arc.Fill)
	}
	for _, o := range []DetectOptions{
		{PixelUM: 0.25},
		{PixelUM: 0.25, FlatCoreOD: -1},                      // streak and arc branches alone
		{PixelUM: 0.25, FoldElongation: 100, FoldFill: 0.01}, // flat branch alone
	} {
		ns := NewDetector(o).Detect(img)
		if len(ns) != 2 {
			t.Errorf("%+v: %d objects, want the 2 nuclei: %+v", o, len(ns), ns)
		}
		for _, c := range nuclei {
			if near(ns, c[0], c[1], 3) == nil {
				t.Errorf("%+v: nucleus at (%.0f,%.0f) lost", o, c[0], c[1])
			}
		}
	}
}

// TestDetectKeepsDarkIrregularNuclei: a large, lobed, hyperchromatic nucleus
// and a dark spindle nucleus (keratinising SCC) are irregular or elongated
// like folds but stand out from their cytoplasm: the fold test keeps them.
func TestDetectKeepsDarkIrregularNuclei(t *testing.T) {
	img := darkTile()
	ns := NewDetector(DetectOptions{PixelUM: 0.25}).Detect(img)
	lobed, spindle := near(ns, 173, 238, 4), near(ns, 470, 240, 3)
	if lobed == nil || spindle == nil {
		t.Fatalf("lobed or spindle nucleus lost: %+v", ns)
	}
	if lobed.Circularity >= flatCircularity || lobed.AreaUM2 < 100 {
		t.Errorf("lobed nucleus: circularity %.2f area %.0f µm², want irregular (< %.1f) and large", lobed.Circularity, lobed.AreaUM2, flatCircularity)
	}
	if spindle.Elongation <= 3.8 {
		t.Errorf("spindle nucleus: elongation %.2f, want > 3.8", spindle.Elongation)
	}
	off := NewDetector(DetectOptions{PixelUM: 0.25, FoldRingOD: -1}).Detect(img)
	if len(off) != len(ns) {
		t.Errorf("fold test changed the count of dark nuclei: %d on, %d off", len(ns), len(off))
	}
}

// TestDetectTrimsAttachedFold: a faint fold of cytoplasm touching a
// nucleus merges with it into one component whose centre lies off the
// nucleus; the trim keeps the nucleus's compact core and drops the fold. A
// paler (but clearly nuclear) abnormal nucleus merged with a darker one is
// not trimmed away: the pair stays one detection covering both.
func TestDetectTrimsAttachedFold(t *testing.T) {
	img := synthTile(640, 480, []blob{{x: 160, y: 260, rx: 10, ry: 10}, {x: 460, y: 240, rx: 12, ry: 12}}, 23)
	paint(img, func(x, y float64) bool {
		return x >= 150 && x < 230 && y >= 240 && y < 280 && math.Hypot(x-160, y-260) > 10
	}, [3]uint8{165, 180, 200})
	paint(img, func(x, y float64) bool { return x >= 168 && x < 210 && y >= 252 && y < 262 }, [3]uint8{140, 140, 180})
	paint(img, func(x, y float64) bool { return math.Hypot(x-482, y-240) < 11 && math.Hypot(x-460, y-240) > 12 }, [3]uint8{120, 100, 160})
	on := NewDetector(DetectOptions{PixelUM: 0.25}).Detect(img)
	off := NewDetector(DetectOptions{PixelUM: 0.25, FoldRingOD: -1}).Detect(img)
	if len(on) != 2 || len(off) != 2 {
		t.Fatalf("want 2 detections with and without the fold test, got %d and %d: %+v / %+v", len(on), len(off), on, off)
	}
	if n := near(off, 160, 260, 5); n != nil {
		t.Fatalf("fold test off: the merged nucleus+fold should sit off the nucleus, got (%.0f,%.0f)", n.X, n.Y)
	}
	n := near(on, 160, 260, 2)
	if n == nil {
		t.Fatalf("trim: no detection within 2 px of the nucleus at (160,260): %+v", on)
	}
	if want := math.Pi * 10 * 10 * 0.0625; n.AreaUM2 < 0.7*want || n.AreaUM2 > 1.3*want {
		t.Errorf("trimmed nucleus area %.1f µm², want about %.1f", n.AreaUM2, want)
	}
	for _, ns := range [][]Nucleus{on, off} {
		pair := near(ns, 470, 240, 6)
		if pair == nil || !image.Pt(460, 240).In(pair.Box) || !image.Pt(482, 240).In(pair.Box) {
			t.Errorf("merged dark+pale nuclei: want one detection covering both centres, got %+v", ns)
		}
	}
}
