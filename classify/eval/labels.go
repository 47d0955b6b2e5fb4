package eval

import (
	"fmt"
	"path/filepath"

	"papscan/classify"
)

// CellLabel is one row of cric/cells/labels.csv.
type CellLabel struct {
	File  string // crop path relative to cric/cells
	ID    string
	Field string // source field (image_filename)
	Class classify.Class
}

// ReadCellLabels reads a CRIC labels.csv (columns file, class, cell_id and
// image_filename at least).
func ReadCellLabels(path string) ([]CellLabel, error) {
	t, err := readTable(path, "file", "class", "cell_id", "image_filename")
	if err != nil {
		return nil, err
	}
	out := make([]CellLabel, 0, len(t.rows))
	for i, r := range t.rows {
		c, err := classify.ParseClass(t.get(r, "class"))
		if err != nil {
			return nil, fmt.Errorf("%s: %s: column class: %w", path, t.line(i), err)
		}
		out = append(out, CellLabel{File: t.get(r, "file"), ID: t.get(r, "cell_id"), Field: t.get(r, "image_filename"), Class: c})
	}
	return out, nil
}

// ReadPointsColumn reads one more column of a nuclei CSV per image, in
// file order (the order of ReadPoints' points), and the image names.
func ReadPointsColumn(path, imgCol, col string) (map[string][]string, []string, error) {
	t, err := readTable(path, imgCol, col)
	if err != nil {
		return nil, nil, err
	}
	by := map[string][]string{}
	var names []string
	for _, r := range t.rows {
		img := t.get(r, imgCol)
		if _, ok := by[img]; !ok {
			names = append(names, img)
		}
		by[img] = append(by[img], t.get(r, col))
	}
	return by, names, nil
}

// ReadCellCentres reads the crop centres of a CRIC labels.csv
// (center_x_in_stored_image, center_y_in_stored_image: pixel coordinates
// in the stored 1280-px field) by cell_id.
func ReadCellCentres(path string) (map[string]Point, error) {
	t, err := readTable(path, "cell_id", "center_x_in_stored_image", "center_y_in_stored_image")
	if err != nil {
		return nil, err
	}
	out := make(map[string]Point, len(t.rows))
	for i, r := range t.rows {
		x, err := t.num(i, "center_x_in_stored_image")
		if err != nil {
			return nil, err
		}
		y, err := t.num(i, "center_y_in_stored_image")
		if err != nil {
			return nil, err
		}
		out[t.get(r, "cell_id")] = Point{X: x, Y: y}
	}
	return out, nil
}

// CRICCropSide is the side (px) of the crops of cric/cells.
const CRICCropSide = 100

// FieldOfCrop returns where the labelled CRIC field name lives under
// dataDir (cric/fields at CRICPixelUM or cric/more-fields at twice that)
// and maps a point (cx, cy) of its crop (pixel coordinates in the 100-px
// crop centred on centre, a point of the stored 1280-px field) to that
// image's pixel coordinates. ok is false when neither folder has it.
func FieldOfCrop(dataDir, name string, centre Point, cx, cy float64) (path string, pixelUM, x, y float64, ok bool) {
	fx := centre.X - CRICCropSide/2 + cx
	fy := centre.Y - CRICCropSide/2 + cy
	p := filepath.Join(dataDir, "cric", "fields", "images", name)
	if exists(p) {
		return p, CRICPixelUM, fx, fy, true
	}
	p = filepath.Join(dataDir, "cric", "more-fields", "images", name)
	if exists(p) {
		return p, 2 * CRICPixelUM, (fx+0.5)/2 - 0.5, (fy+0.5)/2 - 0.5, true
	}
	return "", 0, 0, 0, false
}
