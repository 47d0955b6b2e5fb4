package virtualslide

import (
	"encoding/csv"
	"errors"
	"fmt"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Class is a labelled nucleus's Bethesda class, in order of severity (the
// same order as the simulator's slide.Class).
type Class uint8

// Bethesda classes.
const (
	NILM Class = iota
	ASCUS
	LSIL
	ASCH
	HSIL
	SCC
)

// String returns the Bethesda abbreviation.
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

var classNames = [...]string{"NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC"}

// Grade is the triage grade of the class.
func (c Class) Grade() Kind {
	switch c {
	case NILM:
		return Negative
	case ASCUS, LSIL:
		return LowGrade
	}
	return HighGrade
}

// ParseClass parses a Bethesda class name as String prints it, or as the
// CRIC collection spells it ("Negative for intraepithelial lesion").
func ParseClass(s string) (Class, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "NILM", "NEGATIVE FOR INTRAEPITHELIAL LESION", "NEGATIVE":
		return NILM, nil
	case "ASC-US", "ASCUS":
		return ASCUS, nil
	case "LSIL":
		return LSIL, nil
	case "ASC-H", "ASCH":
		return ASCH, nil
	case "HSIL":
		return HSIL, nil
	case "SCC":
		return SCC, nil
	}
	return NILM, fmt.Errorf("unknown Bethesda class %q", s)
}

// Folders are the CRIC folders of the data directory the catalogue reads,
// with their pixel size (µm per stored pixel).
var folders = [...]struct {
	dir     string
	pixelUM float64
}{
	{"cric/fields", 0.25},
	{"cric/more-fields", 0.5},
}

// Nucleus is a labelled nucleus point of a field, in the stored image's
// pixels.
type Nucleus struct {
	X, Y  float64
	Class Class
}

// Field is one CRIC field image of the data directory.
type Field struct {
	// Name is the image file name (unique across folders).
	Name string
	// Folder is the folder under the data directory: "cric/fields" or
	// "cric/more-fields".
	Folder string
	// PixelUM is the specimen size of one stored pixel: 0.25 (cric/fields)
	// or 0.5 (cric/more-fields).
	PixelUM float64
	W, H    int // stored image size, pixels
	Nuclei  []Nucleus
	Worst   Class // most severe labelled class
}

// Path is the image file of the field under dataDir.
func (f *Field) Path(dataDir string) string {
	return filepath.Join(dataDir, filepath.FromSlash(f.Folder), "images", f.Name)
}

// Count returns how many labelled nuclei of grade k the field has.
func (f *Field) Count(k Kind) int {
	n := 0
	for _, p := range f.Nuclei {
		if p.Class.Grade() == k {
			n++
		}
	}
	return n
}

// LoadCatalog reads the fields of both CRIC folders under dataDir
// (cric/fields at 0.25 µm/px and cric/more-fields at 0.5 µm/px): their
// labelled nuclei (nuclei.csv) and image sizes. A folder that is absent is
// skipped, as is an annotated field whose image is missing; no field at all
// is an error. Fields are sorted by folder, then name, so indices are stable
// for a given data directory.
func LoadCatalog(dataDir string) ([]Field, error) {
	var out []Field
	for _, fo := range folders {
		dir := filepath.Join(dataDir, filepath.FromSlash(fo.dir))
		fs, err := loadFolder(dir, fo.dir, fo.pixelUM)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, fs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("virtualslide: no CRIC field images under %s", dataDir)
	}
	return out, nil
}

func loadFolder(dir, folder string, pixelUM float64) ([]Field, error) {
	fh, err := os.Open(filepath.Join(dir, "nuclei.csv"))
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	fields, err := parseNuclei(fh, fh.Name())
	if err != nil {
		return nil, err
	}
	var out []Field
	for _, f := range fields {
		f.Folder, f.PixelUM = folder, pixelUM
		img, err := os.Open(filepath.Join(dir, "images", f.Name))
		if err != nil {
			continue
		}
		cfg, err := png.DecodeConfig(img)
		img.Close()
		if err != nil {
			return nil, fmt.Errorf("virtualslide: CRIC field %s: %w", img.Name(), err)
		}
		f.W, f.H = cfg.Width, cfg.Height
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// parseNuclei reads a CRIC nuclei.csv (columns image_filename,
// bethesda_system, x_img, y_img) into fields in order of first appearance.
func parseNuclei(r io.Reader, name string) ([]Field, error) {
	cr := csv.NewReader(r)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("virtualslide: %s: %w", name, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	need := []string{"image_filename", "bethesda_system", "x_img", "y_img"}
	for _, h := range need {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("virtualslide: %s: no column %q", name, h)
		}
	}
	width := 0
	for _, h := range need {
		width = max(width, col[h]+1)
	}
	byName := map[string]int{}
	var fields []Field
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("virtualslide: %s: %w", name, err)
		}
		if len(rec) < width {
			return nil, fmt.Errorf("virtualslide: %s line %d: %d columns, want %d", name, line, len(rec), width)
		}
		fn := rec[col["image_filename"]]
		if fn == "" || strings.ContainsAny(fn, `/\`) || fn == "." || fn == ".." {
			return nil, fmt.Errorf("virtualslide: %s line %d: bad image_filename %q", name, line, fn)
		}
		cls, err := ParseClass(rec[col["bethesda_system"]])
		if err != nil {
			return nil, fmt.Errorf("virtualslide: %s line %d: bethesda_system: %w", name, line, err)
		}
		x, errx := strconv.ParseFloat(rec[col["x_img"]], 64)
		y, erry := strconv.ParseFloat(rec[col["y_img"]], 64)
		if errx != nil || erry != nil || !(x >= 0 && x < 1e6) || !(y >= 0 && y < 1e6) {
			return nil, fmt.Errorf("virtualslide: %s line %d: bad x_img, y_img %q, %q", name, line, rec[col["x_img"]], rec[col["y_img"]])
		}
		i, ok := byName[fn]
		if !ok {
			i = len(fields)
			byName[fn] = i
			fields = append(fields, Field{Name: fn})
		}
		f := &fields[i]
		f.Nuclei = append(f.Nuclei, Nucleus{X: x, Y: y, Class: cls})
		f.Worst = max(f.Worst, cls)
	}
	return fields, nil
}
