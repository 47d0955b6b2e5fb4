package classify

import (
	"image"
	"math"
	"testing"
)

// paleClumpedTile: two ordinary dark nuclei (they set the tile's
// threshold) and, in a third cell, a large pale nucleus whose chromatin
// clumps are the only pixels dense enough for the nuclear mask, each far
// smaller than MinAreaUM2 (an enlarged low-grade or HSIL nucleus with fine
// chromatin).
func paleClumpedTile() *image.RGBA {
	img := synthTile(640, 480, []blob{{x: 120, y: 120, rx: 12, ry: 12}, {x: 520, y: 360, rx: 12, ry: 12}, {x: 320, y: 240, rx: 24, ry: 24}}, 31)
	// Repaint the third cell's nucleus pale, then its clumps dark.
	paint(img, func(x, y float64) bool { return math.Hypot(x-320, y-240) <= 25 }, [3]uint8{190, 205, 215})
	paint(img, func(x, y float64) bool { return math.Hypot(x-320, y-240) <= 24 }, [3]uint8{150, 140, 180})
	for k := 0; k < 7; k++ {
		a := 2 * math.Pi * float64(k) / 7
		cx, cy := 320+13*math.Cos(a), 240+13*math.Sin(a)
		if k == 0 {
			cx, cy = 320, 240
		}
		paint(img, func(x, y float64) bool { return math.Hypot(x-cx, y-cy) <= 3 }, [3]uint8{95, 75, 140})
	}
	return img
}

// TestDetectRescuesFragmentedNucleus: without the rescue the pale nucleus
// is lost (its clumps are each too small); with it one detection at its
// centre covers the clumps and stays within the nucleus (the half-maximum
// level of the clumps over their surroundings is above the pale body, so
// the region holds the clumps and what joins them), and the two ordinary
// nuclei are unchanged.
func TestDetectRescuesFragmentedNucleus(t *testing.T) {
	img := paleClumpedTile()
	off := NewDetector(DetectOptions{PixelUM: 0.25, FragmentGapUM: -1, NoObjectFilter: true}).Detect(img)
	if n := near(off, 320, 240, 20); n != nil {
		t.Fatalf("rescue off: the pale nucleus should be lost, got %+v", *n)
	}
	on := NewDetector(DetectOptions{PixelUM: 0.25, NoObjectFilter: true}).Detect(img)
	if len(on) != len(off)+1 {
		t.Fatalf("rescue on: want %d detections, got %d: %+v", len(off)+1, len(on), on)
	}
	n := near(on, 320, 240, 3)
	if n == nil {
		t.Fatalf("rescue on: no detection within 3 px of the pale nucleus: %+v", on)
	}
	clumps := image.Rect(320-16, 240-16, 320+17, 240+17)
	if !n.Box.In(image.Rect(320-25, 240-25, 320+26, 240+26)) || !n.Box.Overlaps(clumps) || n.Box.Dx() < 26 || n.Box.Dy() < 26 {
		t.Errorf("rescued nucleus box %v: want it across the clumps (%v) and inside the nucleus", n.Box, clumps)
	}
	if n.AreaUM2 < 12 {
		t.Errorf("rescued nucleus area %.1f µm², want at least MinAreaUM2", n.AreaUM2)
	}
	for _, p := range [][2]float64{{120, 120}, {520, 360}} {
		if near(on, p[0], p[1], 2) == nil || near(off, p[0], p[1], 2) == nil {
			t.Errorf("ordinary nucleus at %v lost", p)
		}
	}
}

// TestDetectRescueLeaves: fragments that do not make a nucleus stay out:
// a scatter of specks over a wide patch of cytoplasm (the regrown region
// leaks into the cytoplasm) and a single speck too small to group.
func TestDetectRescueLeaves(t *testing.T) {
	img := synthTile(640, 480, []blob{{x: 120, y: 120, rx: 12, ry: 12}, {x: 520, y: 360, rx: 12, ry: 12}, {x: 320, y: 240, rx: 30, ry: 30}}, 32)
	paint(img, func(x, y float64) bool { return math.Hypot(x-320, y-240) <= 31 }, [3]uint8{190, 205, 215})
	for _, p := range [][2]float64{{300, 230}, {340, 250}, {320, 215}, {60, 400}} {
		paint(img, func(x, y float64) bool { return math.Hypot(x-p[0], y-p[1]) <= 2 }, [3]uint8{95, 75, 140})
	}
	on := NewDetector(DetectOptions{PixelUM: 0.25, NoObjectFilter: true}).Detect(img)
	off := NewDetector(DetectOptions{PixelUM: 0.25, FragmentGapUM: -1, NoObjectFilter: true}).Detect(img)
	if len(on) != len(off) {
		t.Errorf("specks on cytoplasm became nuclei: %d detections with the rescue, %d without: %+v", len(on), len(off), on)
	}
}

// FuzzDetect: any tile (size, pixel size and content from the fuzzer; the
// content repeated to fill it) is detected without a panic, and every
// nucleus lies inside the tile with a box inside the tile. Blobs of every
// density and gap exercise the fragment rescue's grouping and regrowing.
func FuzzDetect(f *testing.F) {
	f.Add(uint8(64), uint8(48), uint8(2), []byte{200, 210, 220, 60, 50, 120, 150, 140, 180})
	f.Add(uint8(1), uint8(1), uint8(0), []byte{0})
	f.Add(uint8(200), uint8(3), uint8(4), []byte{255, 0, 128, 7})
	f.Fuzz(func(t *testing.T, w, h, pxSel uint8, data []byte) {
		if w == 0 || h == 0 || len(data) == 0 {
			return
		}
		img := image.NewRGBA(image.Rect(3, 5, 3+int(w), 5+int(h)))
		for i := 0; i < len(img.Pix); i += 4 {
			k := (i / 4 * 3) % len(data)
			img.Pix[i] = data[k]
			img.Pix[i+1] = data[(k+1)%len(data)]
			img.Pix[i+2] = data[(k+2)%len(data)]
			img.Pix[i+3] = 255
		}
		px := []float64{0.25, 0.5, 1, 0.1, 2}[int(pxSel)%5]
		for _, gap := range []float64{0, 10} {
			for _, n := range NewDetector(DetectOptions{PixelUM: px, FragmentGapUM: gap}).Detect(img) {
				if !n.Box.In(img.Bounds()) || n.Box.Empty() || !image.Pt(int(math.Floor(n.X)), int(math.Floor(n.Y))).In(img.Bounds()) {
					t.Fatalf("nucleus outside the tile %v: %+v", img.Bounds(), n)
				}
			}
		}
	})
}
