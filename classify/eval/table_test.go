package eval

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadPointsErrors: a bad value is reported with the file, its line and
// its column; non-finite numbers are refused.
func TestReadPointsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ csv, want string }{
		{"image,x,y\na.png,1,2\na.png,abc,2\n", "line 3: column x"},
		{"image,x,y\na.png,1,NaN\n", `line 2: column y: "NaN" is not a finite number`},
		{"image,x,y,area_px\na.png,1,2,+Inf\n", "line 2: column area_px"},
		{"image,x\na.png,1\n", `no column "y"`},
		{"image,x,y,class\na.png,1,2,HSIL\nb.png,3,4,CIN9\n", "line 3: column class"},
		{"image,x,y\na.png,1\n", "wrong number of fields"},
		{"", "empty file"},
	} {
		p := filepath.Join(dir, "n.csv")
		if err := os.WriteFile(p, []byte(tc.csv), 0o644); err != nil {
			t.Fatal(err)
		}
		cls := ""
		if strings.Contains(tc.csv, "class") {
			cls = "class"
		}
		_, _, err := ReadPoints(p, "image", "x", "y", cls)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: err %v, want the path and %q", tc.csv, err, tc.want)
		}
	}
}

// FuzzReadPoints: any file gives points with finite coordinates or an
// error, never a panic.
func FuzzReadPoints(f *testing.F) {
	f.Add([]byte("image,x,y,area_px,class\na.png,1.5,2,30,HSIL\n"))
	f.Add([]byte("image,x,y\n\"a\nb\",1,2\n"))
	f.Add([]byte("x,y,image\n1e308,-1e308,z\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "n.csv")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cls := range []string{"", "class"} {
			by, _, err := ReadPoints(p, "image", "x", "y", cls)
			if err != nil {
				continue
			}
			for _, ps := range by {
				for _, q := range ps {
					for _, v := range []float64{q.X, q.Y, q.Area} {
						if math.IsNaN(v) || math.IsInf(v, 0) {
							t.Fatalf("non-finite point %+v", q)
						}
					}
				}
			}
		}
		_, _ = ReadCellLabels(p) // must not panic either
	})
}
