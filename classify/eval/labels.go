package eval

import (
	"encoding/csv"
	"fmt"
	"os"

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
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty file", path)
	}
	col := map[string]int{}
	for i, k := range recs[0] {
		col[k] = i
	}
	for _, k := range []string{"file", "class", "cell_id", "image_filename"} {
		if _, ok := col[k]; !ok {
			return nil, fmt.Errorf("%s: no column %q", path, k)
		}
	}
	out := make([]CellLabel, 0, len(recs)-1)
	for i, r := range recs[1:] {
		c, err := classify.ParseClass(r[col["class"]])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, i+2, err)
		}
		out = append(out, CellLabel{File: r[col["file"]], ID: r[col["cell_id"]], Field: r[col["image_filename"]], Class: c})
	}
	return out, nil
}
