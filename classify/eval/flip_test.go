package eval

import (
	"image"
	"image/color"
	"testing"

	"papscan/virtualslide"
)

// TestFlipMatchesSimulator: orientation o of a field is the image the
// simulator shows under virtualslide.Flip(o), pixel for pixel, so a slide
// composed from the analysis of orientation o holds the cells a rendered
// slide shows.
func TestFlipMatchesSimulator(t *testing.T) {
	const w, h = 5, 3
	img := image.NewRGBA(image.Rect(10, 20, 10+w, 20+h))
	for y := range h {
		for x := range w {
			img.Set(10+x, 20+y, color.RGBA{uint8(x), uint8(y), 0, 255})
		}
	}
	for o := range Flips {
		f := virtualslide.Flip(o)
		got := flip(img, o&1 != 0, o&2 != 0, o&4 != 0)
		fw, fh := f.Size(w, h)
		if b := got.Bounds(); b.Dx() != fw || b.Dy() != fh {
			t.Fatalf("orientation %d: %v, want %dx%d", o, b, fw, fh)
		}
		for j := range fh {
			for i := range fw {
				si, sj := f.Pixel(i, j, w, h)
				c := got.RGBAAt(got.Bounds().Min.X+i, got.Bounds().Min.Y+j)
				if int(c.R) != si || int(c.G) != sj {
					t.Fatalf("orientation %d pixel (%d, %d) shows (%d, %d), want (%d, %d)", o, i, j, c.R, c.G, si, sj)
				}
			}
		}
	}
}
