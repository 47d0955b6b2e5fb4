package eval

import (
	"context"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"
)

// TestFieldGlass: every field image of both CRIC folders gets its glass
// colour by name; a field covered by a dark sheet has none.
func TestFieldGlass(t *testing.T) {
	dir := t.TempDir()
	write := func(set, name string, glass color.RGBA) {
		t.Helper()
		img := image.NewRGBA(image.Rect(0, 0, 80, 60))
		for y := range 60 {
			for x := range 80 {
				c := glass
				if x > 20 && x < 50 && y > 10 && y < 40 {
					c = color.RGBA{90, 70, 140, 255} // a nucleus-dark blob
				}
				img.SetRGBA(x, y, c)
			}
		}
		writePNG(t, filepath.Join(dir, "cric", set, "images", name), img)
	}
	write("fields", "a.png", color.RGBA{248, 250, 228, 255})
	write("more-fields", "b.png", color.RGBA{240, 240, 240, 255})
	write("more-fields", "dark.png", color.RGBA{120, 110, 150, 255})
	got, err := FieldGlass(context.Background(), dir, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["dark.png"]; ok || len(got) != 2 {
		t.Fatalf("glass of %d fields %v, want a.png and b.png only", len(got), got)
	}
	for name, want := range map[string][3]float64{"a.png": {248, 250, 228}, "b.png": {240, 240, 240}} {
		for c := range 3 {
			if math.Abs(got[name][c]-want[c]) > 1 {
				t.Errorf("%s: glass %v, want %v", name, got[name], want)
			}
		}
	}
}
