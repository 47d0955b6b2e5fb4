package eval

import (
	"fmt"

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
