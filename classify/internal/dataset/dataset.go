// Package dataset locates the shared development data (CRIC, ISBI 2014) and
// loads images from it. Tests use it to skip cleanly when the data is absent.
package dataset

import (
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
)

// Dir returns the data directory: $PAPSCAN_DATA if set, else the first
// "shared/data" directory found beside the current directory or one of its
// parents (the repo lives at X/main and the data at X/shared/data).
// It returns "" when nothing is found.
func Dir() string {
	if d := os.Getenv("PAPSCAN_DATA"); d != "" {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return d
		}
		return ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for dir := wd; ; {
		cand := filepath.Join(dir, "shared", "data")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// LoadRGBA decodes a PNG (RGB, RGBA, grey 8 or 16 bit) into an *image.RGBA.
// Grey images become R=G=B.
func LoadRGBA(path string) (*image.RGBA, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m, ok := img.(*image.RGBA); ok {
		return m, nil
	}
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out, nil
}
