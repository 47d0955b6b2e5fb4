package scan

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWriteFilesImages: the images a renderer gives are written beside
// result.json under their names and listed in Files.Images; a name that
// is not one plain file name is refused before anything is written.
func TestWriteFilesImages(t *testing.T) {
	dir := t.TempDir()
	r := &Report{SlideID: "C1", ResultID: "00112233445566778899aabbccddeeff"}
	enc := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	for _, name := range []string{"", "../x.png", "a/b.png", ".tmp-x.png", "result.json", "x"} {
		if _, err := r.WriteFiles(dir, ImageFile{Name: name, Encode: enc("x")}); err == nil {
			t.Errorf("image name %q accepted", name)
		}
	}
	if _, err := r.WriteFiles(dir, ImageFile{Name: "overview.png"}); err == nil {
		t.Error("image without an encoder accepted")
	}
	if _, err := os.Stat(filepath.Join(dir, "slides")); !os.IsNotExist(err) {
		t.Fatalf("a refused call wrote into the state directory: %v", err)
	}
	fs, err := r.WriteFiles(dir, ImageFile{Name: "overview.png", Encode: enc("ov")}, ImageFile{Name: "gallery.png", Encode: enc("gal")})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(fs.Dir, "overview.png"), filepath.Join(fs.Dir, "gallery.png")}
	if !slices.Equal(fs.Images, want) {
		t.Errorf("Files.Images = %q, want %q", fs.Images, want)
	}
	for p, body := range map[string]string{want[0]: "ov", want[1]: "gal"} {
		if b, err := os.ReadFile(p); err != nil || string(b) != body {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if _, err := os.Stat(fs.Result); err != nil {
		t.Error(err)
	}
}
