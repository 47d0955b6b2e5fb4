package eval

import (
	"context"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

func TestParseManifestErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{`, "manifest"},
		{`{"name":"a","pixel_um":0.25,"classes":{"x":"normal"},"extra":1}`, "extra"},
		{`{"pixel_um":0.25,"classes":{"x":"normal"}}`, "name"},
		{`{"name":"a/b","pixel_um":0.25,"classes":{"x":"normal"}}`, "name"},
		{`{"name":"a","pixel_um":0,"classes":{"x":"normal"}}`, "pixel_um"},
		{`{"name":"a","pixel_um":0.25}`, "classes"},
		{`{"name":"a","pixel_um":0.25,"classes":{"x":"bad"}}`, `"x"`},
	} {
		if _, err := ParseManifest([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.in, err, c.want)
		}
	}
	m, err := ParseManifest([]byte(`{"name":"a","pixel_um":0.25,"classes":{"x":"normal"}}`))
	if err != nil || m.Columns.File != "file" || m.Columns.Class != "class" || m.Columns.Group != "group" {
		t.Fatalf("defaults: %+v %v", m, err)
	}
}

func FuzzParseManifest(f *testing.F) {
	b, err := builtinManifests.ReadFile("manifests/sipakmed.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"name":"a","pixel_um":0.25,"classes":{"x":"normal"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if m.Name == "" || m.PixelUM < 0.05 || len(m.Classes) == 0 {
			t.Fatalf("accepted %+v", m)
		}
	})
}

func TestFillPadding(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	// A grey ring enclosing one white pixel: the enclosed pixel is not
	// padding.
	for y := 2; y <= 4; y++ {
		for x := 2; x <= 4; x++ {
			if x != 3 || y != 3 {
				img.SetRGBA(x, y, color.RGBA{100, 100, 100, 255})
			}
		}
	}
	n := FillPadding(img, [3]uint8{255, 255, 255}, [3]uint8{200, 210, 230})
	if n != 64-9 {
		t.Fatalf("filled %d, want %d", n, 64-9)
	}
	if c := img.RGBAAt(3, 3); c.R != 255 {
		t.Errorf("enclosed pixel changed to %v", c)
	}
	if c := img.RGBAAt(0, 7); c.R != 200 || c.G != 210 || c.B != 230 {
		t.Errorf("border pixel %v", c)
	}
}

// TestCellSetTiny evaluates a two-image labelled-cell directory built here
// with its own manifest: the classes are mapped, padding is counted and the
// metrics are filled.
func TestCellSetTiny(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "cells", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	man := `{"name":"tiny","pixel_um":0.25,"columns":{"class":"kind"},"classes":{"good":"normal","bad":"high","other":"excluded"},
"padding":{"rgb":[255,255,255],"flag_column":"pad"},"glass_rgb":[240,240,245]}`
	if err := os.WriteFile(filepath.Join(dir, ManifestFile), []byte(man), 0o644); err != nil {
		t.Fatal(err)
	}
	csv := "file,kind,group,pad\n"
	for i, r := range []float64{10, 10, 22, 22, 10} {
		img := image.NewRGBA(image.Rect(0, 0, 100, 100))
		for y := range 100 {
			for x := range 100 {
				c := color.RGBA{255, 255, 255, 255}
				d2 := float64((x-50)*(x-50) + (y-50)*(y-50))
				if d2 <= 9*r*r/4 {
					c = color.RGBA{175, 195, 210, 255}
				}
				if d2 <= r*r/4 {
					c = color.RGBA{70, 60, 120, 255}
				}
				img.SetRGBA(x, y, c)
			}
		}
		name := filepath.Join("x", string(rune('a'+i))+".png")
		writePNG(t, filepath.Join(dir, "cells", name), img)
		kind := map[int]string{0: "good", 1: "good", 2: "bad", 3: "bad", 4: "other"}[i]
		csv += name + "," + kind + ",g" + string(rune('0'+i)) + ",1\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "cells", "labels.csv"), []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := FindCellDirs(dir); len(got) != 1 || got[0] != dir {
		t.Fatalf("FindCellDirs = %v", got)
	}
	// A data directory holding the set through a symbolic link finds it.
	parent := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(parent, "tiny")); err != nil {
		t.Fatal(err)
	}
	if got := FindCellDirs(parent); len(got) != 1 || got[0] != filepath.Join(parent, "tiny") {
		t.Fatalf("FindCellDirs(parent) = %v", got)
	}
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	r, err := CellSet(context.Background(), Options{DataDir: dir, Model: m, Threshold: 0.5}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "tiny" || r.Cells != 4 || r.Groups != 4 || r.ByGrade[GradeExcluded] != 1 || r.ByGrade[GradeHigh] != 2 || r.FinalModel+r.Skipped != 4 {
		t.Fatalf("result %+v", r)
	}
	for _, mode := range PaddingModes {
		if r.Padding[mode] == nil {
			t.Fatalf("no %s metrics", mode)
		}
	}
	// A class the manifest does not map is refused, naming it.
	if err := os.WriteFile(filepath.Join(dir, "cells", "labels.csv"), []byte(csv+"x/a.png,weird,g9,0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := CellSet(context.Background(), Options{DataDir: dir, Model: m}, dir); err == nil || !strings.Contains(err.Error(), "weird") {
		t.Fatalf("unmapped class: %v", err)
	}
}

// TestSIPaKMeDManifest reads the shared SIPaKMeD half with the shipped
// manifest (skipped without the data).
func TestSIPaKMeDManifest(t *testing.T) {
	data := dataset.Dir()
	if data == "" {
		t.Skip("shared data not found")
	}
	dir := filepath.Join(data, "sipakmed")
	if !exists(dir) {
		t.Skip("no sipakmed")
	}
	m, src, err := FindManifest(dir)
	if err != nil || !strings.HasPrefix(src, "builtin:") {
		t.Fatalf("manifest %v from %q", err, src)
	}
	cells, err := ReadCellDir(dir, m)
	if err != nil {
		t.Fatal(err)
	}
	by := map[CellGrade]int{}
	for _, c := range cells {
		by[c.Grade]++
	}
	if len(cells) < 2000 || by[GradeNormal] < 800 || by[GradeLow] < 400 || by[GradeHigh] < 400 {
		t.Fatalf("%d cells, by grade %v", len(cells), by)
	}
	if got := FindCellDirs(data); len(got) != 1 || got[0] != dir {
		t.Errorf("FindCellDirs(%s) = %v", data, got)
	}
}

// TestHeldOutCoversFields checks that the embedded model scores every CRIC
// field (cric/fields and cric/more-fields) by a fold that held it out, as
// the slide-level evaluation assumes (skipped without the data).
func TestHeldOutCoversFields(t *testing.T) {
	data := dataset.Dir()
	if data == "" {
		t.Skip("shared data not found")
	}
	m, err := classify.DefaultModel()
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"fields", "more-fields"} {
		p := filepath.Join(data, "cric", dir, "nuclei.csv")
		if !exists(p) {
			continue
		}
		_, names, err := ReadPoints(p, "image_filename", "x_img", "y_img", "")
		if err != nil {
			t.Fatal(err)
		}
		var in classify.Input
		for _, name := range names {
			if !m.TrainedOn(name) {
				t.Errorf("%s/%s: no fold held it out", dir, name)
				continue
			}
			if _, fold := m.PredictHeldOutInput(name, &in); fold < 0 {
				t.Errorf("%s/%s: scored by the final model", dir, name)
			}
		}
	}
}
