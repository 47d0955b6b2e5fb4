package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadCellCentres(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "labels.csv")
	if err := os.WriteFile(p, []byte("file,cell_id,center_x_in_stored_image,center_y_in_stored_image\na.png,7,583,390\nb.png,8,12.5,40\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCellCentres(p)
	if err != nil {
		t.Fatal(err)
	}
	if c["7"] != (Point{X: 583, Y: 390}) || c["8"] != (Point{X: 12.5, Y: 40}) {
		t.Fatalf("centres %v", c)
	}
	if err := os.WriteFile(p, []byte("cell_id,center_x_in_stored_image,center_y_in_stored_image\n7,x,390\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCellCentres(p); err == nil || !strings.Contains(err.Error(), "center_x_in_stored_image") {
		t.Fatalf("bad number: %v", err)
	}
	if err := os.WriteFile(p, []byte("cell_id,center_x_in_stored_image\n7,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCellCentres(p); err == nil || !strings.Contains(err.Error(), "center_y_in_stored_image") {
		t.Fatalf("missing column: %v", err)
	}
}

// TestFieldOfCrop: a crop point maps onto the full-size field unchanged in
// scale and onto a more-fields image at half scale (pixel centres).
func TestFieldOfCrop(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"cric/fields/images", "cric/more-fields/images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for f, d := range map[string]string{"full.png": "cric/fields/images", "half.png": "cric/more-fields/images"} {
		if err := os.WriteFile(filepath.Join(dir, d, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := Point{X: 600, Y: 400}
	path, px, x, y, ok := FieldOfCrop(dir, "full.png", c, 50, 60)
	if !ok || px != CRICPixelUM || x != 600 || y != 410 || filepath.Base(path) != "full.png" {
		t.Fatalf("full: %s %v %v %v %v", path, px, x, y, ok)
	}
	path, px, x, y, ok = FieldOfCrop(dir, "half.png", c, 50, 60)
	if !ok || px != 2*CRICPixelUM || x != 299.75 || y != 204.75 || !strings.Contains(path, "more-fields") {
		t.Fatalf("half: %s %v %v %v %v", path, px, x, y, ok)
	}
	if _, _, _, _, ok := FieldOfCrop(dir, "none.png", c, 50, 60); ok {
		t.Fatal("absent field found")
	}
}

// FuzzReadCellCentres: any file gives centres or an error, never a panic.
func FuzzReadCellCentres(f *testing.F) {
	f.Add([]byte("cell_id,center_x_in_stored_image,center_y_in_stored_image\n7,583,390\n"))
	f.Add([]byte("cell_id,center_x_in_stored_image,center_y_in_stored_image\n7,NaN,1\n"))
	f.Add([]byte("a,b\n\"x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "labels.csv")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := ReadCellCentres(p)
		if err == nil {
			for id, pt := range c {
				if pt.X != pt.X || pt.Y != pt.Y {
					t.Fatalf("%s: NaN centre accepted", id)
				}
			}
		}
	})
}
