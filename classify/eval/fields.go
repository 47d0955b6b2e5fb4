package eval

import (
	"context"
	"errors"
	"image"
	"io/fs"
	"path/filepath"

	"papscan/classify/internal/dataset"
)

// Field is one labelled image of a data set at the detection pixel size.
type Field struct {
	Name  string
	Image *image.RGBA
	// Points are the image's labelled points, mapped onto Image.
	Points []Point
}

// EachField loads dir/images/<name> for every name (absent files are
// skipped), resamples it from native to px µm/px (px <= 0 keeps it), maps
// the name's points of by onto it and calls fn. It returns how many images
// fn saw; fn's error, a read error or ctx's ends the walk.
func EachField(ctx context.Context, dir string, by map[string][]Point, names []string, native, px float64, fn func(Field) error) (int, error) {
	n := 0
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		img, err := dataset.LoadRGBA(filepath.Join(dir, "images", name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return n, err
		}
		img, k := prepare(img, native, px)
		pts := make([]Point, len(by[name]))
		for i, p := range by[name] {
			pts[i] = Point{X: (p.X+0.5)*k - 0.5, Y: (p.Y+0.5)*k - 0.5, Class: p.Class, Area: p.Area * k * k}
		}
		n++
		if err := fn(Field{Name: name, Image: img, Points: pts}); err != nil {
			return n, err
		}
	}
	return n, nil
}
