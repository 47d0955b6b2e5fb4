package eval

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"strconv"
)

// table is a CSV file whose first row names the columns: the one reader of
// the data set's labels.csv and nuclei.csv files (eval and training).
type table struct {
	path string
	col  map[string]int
	rows [][]string
}

// readTable reads path and checks that every required column is present.
// An error opening the file is returned unwrapped, so os.IsNotExist works.
func readTable(path string, required ...string) (*table, error) {
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
	t := &table{path: path, col: map[string]int{}, rows: recs[1:]}
	for i, k := range recs[0] {
		t.col[k] = i
	}
	for _, k := range required {
		if _, ok := t.col[k]; !ok {
			return nil, fmt.Errorf("%s: no column %q", path, k)
		}
	}
	return t, nil
}

// get is column k of row r (a required column).
func (t *table) get(r []string, k string) string { return r[t.col[k]] }

// num is column k of row i (0: the first row after the header) as a
// finite number; the error names the file, line and column.
func (t *table) num(i int, k string) (float64, error) {
	v, err := strconv.ParseFloat(t.get(t.rows[i], k), 64)
	if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		err = fmt.Errorf("%q is not a finite number", t.get(t.rows[i], k))
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %s: column %s: %w", t.path, t.line(i), k, err)
	}
	return v, nil
}

// line names row i's line in the file (the header is line 1; csv records
// spanning several lines would shift it, the data sets have none).
func (t *table) line(i int) string { return "line " + strconv.Itoa(i+2) }
