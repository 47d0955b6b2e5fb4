package slide

import (
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// CRICPixelUM is the assumed specimen size of one pixel of the stored CRIC
// field images (originals 1376x1020 through a 40x objective, resized to
// 1280 px wide). 0.25 µm per pixel makes the median detected normal nucleus
// about 37 µm², as real intermediate-cell nuclei are; the classifier is
// trained at the same scale. It is an assumption, not a calibration shipped
// with the data.
const CRICPixelUM = 0.25

// cricField is one CRIC field image and its labelled nuclei (pixels).
type cricField struct {
	name   string
	path   string
	w, h   int
	nuclei []cricNucleus
	worst  Class
	has    [numClasses]bool
}

type cricNucleus struct {
	x, y  float64
	class Class
}

// cricTile places a field on the slide; flipX and flipY together are a 180°
// rotation.
type cricTile struct {
	field        int16 // -1: no field (outside the spot)
	flipX, flipY bool
}

type cricSpecimen struct {
	fields         []cricField
	tileW, tileH   float64 // µm
	tilePW, tilePH int     // pixels of a field used per tile
	x0, y0         float64 // top-left of the tile grid, µm
	nx, ny         int
	tiles          []cricTile
	cache          *fieldCache
}

// FromCRIC builds a slide whose spot is tiled with real CRIC Cervix field
// images (dataDir/cric/fields/images/*.png, annotations in
// dataDir/cric/fields/nuclei.csv). Fields whose labels are all NILM cover
// the spot (in seeded order with random flips and 180° rotations); unless
// the diagnosis is Negative, spec.Abnormal (default 4) randomly placed tiles
// take fields carrying the diagnosis's abnormal classes. The labelled nuclei
// of every placed tile become the ground truth Cells; they are not
// exhaustive (CRIC labels only some normal nuclei). Images are decoded on
// first use and kept as 3-byte RGB in a cache sized to the distinct fields
// used.
func FromCRIC(dataDir string, spec Spec) (*Slide, error) {
	dir := filepath.Join(dataDir, "cric", "fields")
	fields, err := loadCRICFields(dir)
	if err != nil {
		return nil, err
	}
	s := newSlide(spec)
	spec = s.Spec
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0xc41c))

	var normal, abnormal []int
	want := spec.Diagnosis.classes()
	for i, f := range fields {
		if f.worst == NILM {
			normal = append(normal, i)
		}
	}
	if len(normal) == 0 {
		return nil, fmt.Errorf("slide: no NILM-only field in %s", dir)
	}
	if len(want) > 0 {
		abnormal = pickAbnormalFields(fields, spec.Diagnosis)
		if len(abnormal) == 0 {
			return nil, fmt.Errorf("slide: no CRIC field in %s matches diagnosis %s", dir, spec.Diagnosis)
		}
	}

	c := &cricSpecimen{fields: fields, tilePW: math.MaxInt, tilePH: math.MaxInt}
	for _, f := range fields {
		c.tilePW, c.tilePH = min(c.tilePW, f.w), min(c.tilePH, f.h)
	}
	c.tileW, c.tileH = float64(c.tilePW)*CRICPixelUM, float64(c.tilePH)*CRICPixelUM
	cx, cy, r := s.Spot()
	c.nx, c.ny = int(math.Ceil(2*r/c.tileW)), int(math.Ceil(2*r/c.tileH))
	c.x0 = cx - float64(c.nx)*c.tileW/2
	c.y0 = cy - float64(c.ny)*c.tileH/2
	c.tiles = make([]cricTile, c.nx*c.ny)
	var inside []int // tiles lying wholly inside the spot
	for ty := range c.ny {
		for tx := range c.nx {
			k := ty*c.nx + tx
			c.tiles[k] = cricTile{field: -1}
			// Nearest point of the tile to the spot centre, and farthest.
			ax, ay := c.x0+float64(tx)*c.tileW, c.y0+float64(ty)*c.tileH
			bx, by := ax+c.tileW, ay+c.tileH
			nxp, nyp := math.Max(ax, math.Min(cx, bx)), math.Max(ay, math.Min(cy, by))
			if math.Hypot(nxp-cx, nyp-cy) > r {
				continue
			}
			fx, fy := math.Max(math.Abs(ax-cx), math.Abs(bx-cx)), math.Max(math.Abs(ay-cy), math.Abs(by-cy))
			if math.Hypot(fx, fy) <= r {
				inside = append(inside, k)
			}
			c.tiles[k] = cricTile{field: int16(normal[rng.IntN(len(normal))]), flipX: rng.IntN(2) == 1, flipY: rng.IntN(2) == 1}
		}
	}
	if len(abnormal) > 0 {
		n := spec.Abnormal
		if n <= 0 {
			n = 4
		}
		n = min(n, len(inside))
		rng.Shuffle(len(inside), func(i, j int) { inside[i], inside[j] = inside[j], inside[i] })
		for i, k := range inside[:n] {
			c.tiles[k].field = int16(abnormal[(i+rng.IntN(len(abnormal)))%len(abnormal)])
		}
	}

	used := make(map[int16]bool)
	for k, t := range c.tiles {
		if t.field < 0 {
			continue
		}
		used[t.field] = true
		f := &fields[t.field]
		ox, oy := c.x0+float64(k%c.nx)*c.tileW, c.y0+float64(k/c.nx)*c.tileH
		for _, n := range f.nuclei {
			if n.x >= float64(c.tilePW) || n.y >= float64(c.tilePH) {
				continue
			}
			u, v := n.x, n.y
			if t.flipX {
				u = float64(c.tilePW) - u
			}
			if t.flipY {
				v = float64(c.tilePH) - v
			}
			x, y := ox+u*CRICPixelUM, oy+v*CRICPixelUM
			if !s.InSpot(x, y) {
				continue
			}
			s.Cells = append(s.Cells, Cell{X: x, Y: y, Class: n.class, NucleusDiameter: cricNucleusUM(n.class), Field: f.name})
		}
	}
	c.cache = &fieldCache{cap: len(used) + 1}
	s.cric = c
	return s, nil
}

// cricNucleusUM is a typical nucleus diameter for the class (the CRIC
// annotations are points, not outlines).
func cricNucleusUM(c Class) float64 {
	switch c {
	case NILM:
		return 8
	case ASCUS:
		return 11
	case LSIL:
		return 14
	}
	return 12
}

// pickAbnormalFields returns the fields suited to diagnosis d: for a grade,
// fields whose worst class has that grade; for one class, fields whose worst
// class is it (or, failing that, fields that carry it).
func pickAbnormalFields(fields []cricField, d Diagnosis) []int {
	var out []int
	switch d {
	case LowGrade, HighGrade:
		for i, f := range fields {
			if f.worst != NILM && f.worst.Grade() == d {
				out = append(out, i)
			}
		}
		return out
	}
	c := d.classes()[0]
	for i, f := range fields {
		if f.worst == c {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		for i, f := range fields {
			if f.has[c] {
				out = append(out, i)
			}
		}
	}
	return out
}

func loadCRICFields(dir string) ([]cricField, error) {
	fh, err := os.Open(filepath.Join(dir, "nuclei.csv"))
	if err != nil {
		return nil, fmt.Errorf("slide: CRIC annotations: %w", err)
	}
	defer fh.Close()
	r := csv.NewReader(fh)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("slide: CRIC annotations %s: %w", fh.Name(), err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	for _, h := range []string{"image_filename", "bethesda_system", "x_img", "y_img"} {
		if _, ok := col[h]; !ok {
			return nil, fmt.Errorf("slide: CRIC annotations %s: no column %q", fh.Name(), h)
		}
	}
	byName := map[string]int{}
	var fields []cricField
	for line := 2; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("slide: CRIC annotations %s: %w", fh.Name(), err)
		}
		name := rec[col["image_filename"]]
		cls, err := ParseClass(rec[col["bethesda_system"]])
		if err != nil {
			return nil, fmt.Errorf("slide: %s line %d: %w", fh.Name(), line, err)
		}
		x, errx := strconv.ParseFloat(rec[col["x_img"]], 64)
		y, erry := strconv.ParseFloat(rec[col["y_img"]], 64)
		if errx != nil || erry != nil {
			return nil, fmt.Errorf("slide: %s line %d: bad coordinates %q, %q", fh.Name(), line, rec[col["x_img"]], rec[col["y_img"]])
		}
		i, ok := byName[name]
		if !ok {
			i = len(fields)
			byName[name] = i
			fields = append(fields, cricField{name: name, path: filepath.Join(dir, "images", name)})
		}
		f := &fields[i]
		f.nuclei = append(f.nuclei, cricNucleus{x: x, y: y, class: cls})
		f.worst = max(f.worst, cls)
		f.has[cls] = true
	}
	// Keep the fields whose image is present, in a stable order.
	var out []cricField
	for _, f := range fields {
		img, err := os.Open(f.path)
		if err != nil {
			continue
		}
		cfg, err := png.DecodeConfig(img)
		img.Close()
		if err != nil {
			return nil, fmt.Errorf("slide: CRIC field %s: %w", f.path, err)
		}
		f.w, f.h = cfg.Width, cfg.Height
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("slide: no CRIC field images in %s", filepath.Join(dir, "images"))
	}
	slices.SortFunc(out, func(a, b cricField) int {
		if a.name < b.name {
			return -1
		}
		if a.name > b.name {
			return 1
		}
		return 0
	})
	return out, nil
}

// fieldCache keeps decoded fields as packed RGB, least recently used out.
type fieldCache struct {
	mu      sync.Mutex
	cap     int
	tick    uint64
	entries []cacheEntry
	err     error // first decode error
}

type cacheEntry struct {
	field int
	pix   []byte // w*h*3 RGB
	used  uint64
}

// get returns the RGB pixels of field i (nil if it cannot be decoded).
func (c *cricSpecimen) get(i int) []byte {
	fc := c.cache
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.tick++
	for k := range fc.entries {
		if fc.entries[k].field == i {
			fc.entries[k].used = fc.tick
			return fc.entries[k].pix
		}
	}
	pix, err := decodeRGB(c.fields[i].path)
	if err != nil {
		if fc.err == nil {
			fc.err = err
		}
		return nil
	}
	e := cacheEntry{field: i, pix: pix, used: fc.tick}
	if len(fc.entries) < fc.cap {
		fc.entries = append(fc.entries, e)
	} else {
		old := 0
		for k := range fc.entries {
			if fc.entries[k].used < fc.entries[old].used {
				old = k
			}
		}
		fc.entries[old] = e
	}
	return pix
}

// Err reports the first error met decoding a CRIC field image while
// rendering (such tiles render as plain grey), or nil.
func (s *Slide) Err() error {
	if s.cric == nil {
		return nil
	}
	s.cric.cache.mu.Lock()
	defer s.cric.cache.mu.Unlock()
	return s.cric.cache.err
}

func decodeRGB(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("slide: CRIC field: %w", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("slide: CRIC field %s: %w", path, err)
	}
	b := img.Bounds()
	out := make([]byte, 0, b.Dx()*b.Dy()*3)
	switch m := img.(type) {
	case *image.RGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:b.Dx()*4]
			for i := 0; i < len(row); i += 4 {
				out = append(out, row[i], row[i+1], row[i+2])
			}
		}
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := m.Pix[m.PixOffset(b.Min.X, y):][:b.Dx()*4]
			for i := 0; i < len(row); i += 4 {
				out = append(out, row[i], row[i+1], row[i+2])
			}
		}
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bb, _ := img.At(x, y).RGBA()
				out = append(out, uint8(r>>8), uint8(g>>8), uint8(bb>>8))
			}
		}
	}
	return out, nil
}

// drawCRIC samples the tiled fields (nearest neighbour) inside the spot.
func (r *Renderer) drawCRIC(s *Slide, v *view) {
	c := s.cric
	if cap(r.colT) < v.w {
		r.colT = make([]int32, v.w)
		r.colU = make([]int32, v.w)
	}
	colT, colU := r.colT[:v.w], r.colU[:v.w]
	tx0, tx1 := c.nx, -1
	for i := range v.w {
		x := v.x0 + (float64(i)+0.5)*v.p - c.x0
		t := int(math.Floor(x / c.tileW))
		if t < 0 || t >= c.nx {
			colT[i] = -1
			continue
		}
		colT[i] = int32(t)
		colU[i] = int32(min(c.tilePW-1, int((x-float64(t)*c.tileW)/CRICPixelUM)))
		tx0, tx1 = min(tx0, t), max(tx1, t)
	}
	if tx1 < 0 {
		return
	}
	if len(r.pix) < len(c.fields) {
		r.pix = make([][]byte, len(c.fields))
	}
	clear(r.pix)
	scx, scy, sr := s.Spot()
	for j := range v.h {
		y := v.y0 + (float64(j)+0.5)*v.p
		dy := y - scy
		if dy*dy > sr*sr {
			continue
		}
		ty := int(math.Floor((y - c.y0) / c.tileH))
		if ty < 0 || ty >= c.ny {
			continue
		}
		vv := min(c.tilePH-1, int((y-c.y0-float64(ty)*c.tileH)/CRICPixelUM))
		half := math.Sqrt(sr*sr - dy*dy)
		ia := max(0, int(math.Ceil(v.px(scx-half)-0.5)))
		ib := min(v.w, int(math.Ceil(v.px(scx+half)-0.5)))
		row := v.pix[j*v.stride:]
		tiles := c.tiles[ty*c.nx : (ty+1)*c.nx]
		for i := ia; i < ib; i++ {
			tx := colT[i]
			if tx < 0 {
				continue
			}
			t := tiles[tx]
			if t.field < 0 {
				continue
			}
			src := r.pix[t.field]
			if src == nil {
				if src = c.get(int(t.field)); src == nil {
					continue
				}
				r.pix[t.field] = src
			}
			u, sv := int(colU[i]), vv
			if t.flipX {
				u = c.tilePW - 1 - u
			}
			if t.flipY {
				sv = c.tilePH - 1 - sv
			}
			so := (sv*c.fields[t.field].w + u) * 3
			o := i * 4
			row[o], row[o+1], row[o+2] = src[so], src[so+1], src[so+2]
		}
	}
	clear(r.pix)
}
