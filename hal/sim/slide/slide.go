package slide

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
)

// Slide geometry, µm.
const (
	WidthUM      = 75000.0 // along x
	HeightUM     = 25000.0 // along y
	LabelWidthUM = 20000.0 // the label covers x in [0, LabelWidthUM)
)

// Defaults used when a Spec leaves a field zero.
const (
	DefaultCellsPerMM2    = 150.0 // synthetic squamous cells per mm² of spot
	DefaultFocusAmplitude = 20.0  // µm, typical focus excursion across the spot
)

// SpotKind is the liquid-based preparation, which fixes the spot diameter.
type SpotKind uint8

// Spot kinds.
const (
	SurePath SpotKind = iota // 13 mm spot
	ThinPrep                 // 20 mm spot
)

// DiameterUM is the spot diameter in µm.
func (k SpotKind) DiameterUM() float64 {
	if k == ThinPrep {
		return 20000
	}
	return 13000
}

// String implements fmt.Stringer.
func (k SpotKind) String() string {
	if k == ThinPrep {
		return "ThinPrep"
	}
	return "SurePath"
}

// Point is a slide position in µm.
type Point struct{ X, Y float64 }

// Spec describes a slide to build. Zero fields take defaults.
type Spec struct {
	ID string // printed on the label and encoded in its barcode
	// Label is the symbology of the label's machine-readable code.
	Label LabelCode
	Seed  int64 // everything random about the slide derives from it
	Spot  SpotKind
	// SpotCenter is the centre of the cell spot; zero means (40 mm, 12.5 mm).
	SpotCenter Point
	// SpotDiameterUM overrides the spot kind's diameter when > 0 (small
	// spots make fast tests).
	SpotDiameterUM float64
	// Diagnosis is the slide-level truth; it decides which abnormal cells
	// (or, for FromCRIC, which abnormal fields) the slide carries.
	Diagnosis Diagnosis
	// CellsPerMM2 is the density of synthetic squamous cells in the spot
	// (Synthetic only); zero means DefaultCellsPerMM2.
	CellsPerMM2 float64
	// Abnormal is the number of abnormal cells (Synthetic; zero means a seeded
	// count in 10..40) or of abnormal fields (FromCRIC, each used once; zero
	// means 1) on a slide whose Diagnosis is not Negative.
	Abnormal int
	// FocusBaseUM is the focus height at the spot centre (µm, focus-stage
	// scale).
	FocusBaseUM float64
	// FocusAmplitudeUM scales the tilt, bow and waviness of the focal
	// surface; zero means DefaultFocusAmplitude, negative means a flat
	// surface at FocusBaseUM.
	FocusAmplitudeUM float64
}

func (s Spec) withDefaults() Spec {
	if s.SpotCenter == (Point{}) {
		s.SpotCenter = Point{40000, 12500}
	}
	if s.CellsPerMM2 <= 0 {
		s.CellsPerMM2 = DefaultCellsPerMM2
	}
	if s.FocusAmplitudeUM == 0 {
		s.FocusAmplitudeUM = DefaultFocusAmplitude
	}
	return s
}

// Cell is the ground truth of one cell. X, Y is the nucleus centre.
type Cell struct {
	X, Y            float64 // nucleus centre, slide µm
	Class           Class
	NucleusDiameter float64 // µm (mean diameter)
	CellDiameter    float64 // µm, cytoplasm; 0 when unknown (CRIC)
	// Field is the CRIC field image the cell comes from ("" for synthetic
	// cells).
	Field string
}

// Slide is a built virtual slide. It is immutable and safe for concurrent use.
type Slide struct {
	Spec  Spec
	Cells []Cell // ground truth, in no particular order

	spotR float64
	glass [3]uint8 // bright field through clean glass
	focus focusSurface
	dust  []dust

	// Synthetic specimen: one shape per cell in shapes, indexed by a grid
	// of buckets keyed by the shape's centre.
	shapes []shape
	grid   grid

	// CRIC specimen.
	cric *cricSpecimen

	labelOnce sync.Once
	label     *labelRaster
}

// Spot returns the spot centre and radius in µm.
func (s *Slide) Spot() (cx, cy, r float64) {
	return s.Spec.SpotCenter.X, s.Spec.SpotCenter.Y, s.spotR
}

// InSpot reports whether slide point (x, y) lies in the cell spot.
func (s *Slide) InSpot(x, y float64) bool {
	dx, dy := x-s.Spec.SpotCenter.X, y-s.Spec.SpotCenter.Y
	return dx*dx+dy*dy <= s.spotR*s.spotR
}

// FocusZ is the focus-stage height (µm) at which slide point (x, y) is in
// focus: a tilted plane plus a quadratic bowl plus a small waviness, seeded
// by the Spec, with an excursion of tens of µm across the spot.
func (s *Slide) FocusZ(x, y float64) float64 { return s.focus.at(x, y) }

// Worst is the most severe class among the slide's cells (NILM if none).
func (s *Slide) Worst() Class {
	w := NILM
	for i := range s.Cells {
		if s.Cells[i].Class > w {
			w = s.Cells[i].Class
		}
	}
	return w
}

// Count returns the number of ground-truth cells of each class, indexed by
// Class.
func (s *Slide) Count() map[Class]int {
	m := make(map[Class]int)
	for i := range s.Cells {
		m[s.Cells[i].Class]++
	}
	return m
}

// String implements fmt.Stringer.
func (s *Slide) String() string {
	kind := "synthetic"
	if s.cric != nil {
		kind = "CRIC"
	}
	return fmt.Sprintf("slide %q (%s, %s spot, %s, %d cells)", s.Spec.ID, kind, s.Spec.Spot, s.Spec.Diagnosis, len(s.Cells))
}

func newSlide(spec Spec) *Slide {
	spec = spec.withDefaults()
	d := spec.Spot.DiameterUM()
	if spec.SpotDiameterUM > 0 {
		d = spec.SpotDiameterUM
	}
	s := &Slide{Spec: spec, spotR: d / 2, glass: [3]uint8{GlassR, GlassG, GlassB}}
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0x5eed51de))
	s.focus = newFocusSurface(rng, spec)
	s.dust = makeDust(rng, s)
	return s
}

// focusSurface is z = base + tilt + bowl + waviness, in µm, with x, y
// measured in mm from the spot centre.
type focusSurface struct {
	cx, cy, base         float64
	ax, ay, kxx, kyy     float64
	wamp, wkx, wky, wphx float64
	wphy                 float64
}

func newFocusSurface(rng *rand.Rand, spec Spec) focusSurface {
	f := focusSurface{cx: spec.SpotCenter.X, cy: spec.SpotCenter.Y, base: spec.FocusBaseUM}
	a := spec.FocusAmplitudeUM
	if a < 0 {
		return f
	}
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }
	sign := func() float64 {
		if rng.IntN(2) == 0 {
			return -1
		}
		return 1
	}
	// Per mm: a 20 µm amplitude gives ~±10 µm of tilt across a 13 mm spot,
	// ~5-13 µm of bowl at its rim and ~1.5 µm of waviness.
	f.ax = sign() * u(0.4, 1.5) * a / 20
	f.ay = sign() * u(0.4, 1.5) * a / 20
	f.kxx = u(0.1, 0.3) * a / 20
	f.kyy = u(0.1, 0.3) * a / 20
	f.wamp = u(1, 2) * a / 20
	f.wkx = 2 * math.Pi / u(3, 6)
	f.wky = 2 * math.Pi / u(3, 6)
	f.wphx = u(0, 2*math.Pi)
	f.wphy = u(0, 2*math.Pi)
	return f
}

func (f *focusSurface) at(x, y float64) float64 {
	dx, dy := (x-f.cx)/1000, (y-f.cy)/1000
	return f.base + f.ax*dx + f.ay*dy + f.kxx*dx*dx + f.kyy*dy*dy +
		f.wamp*math.Sin(f.wkx*dx+f.wphx)*math.Sin(f.wky*dy+f.wphy)
}

// dust is a speck on the glass: a grey disc.
type dust struct {
	x, y, r float64
	t       uint16 // transmittance, 8.8 fixed point
}

func makeDust(rng *rand.Rand, s *Slide) []dust {
	n := 60 + rng.IntN(60)
	d := make([]dust, 0, n)
	for range n {
		x := LabelWidthUM + rng.Float64()*(WidthUM-LabelWidthUM)
		y := rng.Float64() * HeightUM
		d = append(d, dust{x: x, y: y, r: 2 + 10*rng.Float64()*rng.Float64(), t: uint16(120 + rng.IntN(100))})
	}
	return d
}

// grid buckets shape indices by the shape's centre.
type grid struct {
	x0, y0, cell float64
	nx, ny       int
	start        []int32 // len nx*ny+1, CSR offsets into idx
	idx          []int32
	maxR         float64 // largest shape extent from its centre, µm
}

func buildGrid(shapes []shape, x0, y0, w, h, cell float64) grid {
	return buildGridOf(len(shapes), func(i int) (float64, float64, float64) {
		return shapes[i].cx, shapes[i].cy, shapes[i].extent
	}, x0, y0, w, h, cell)
}

// buildGridOf buckets n items whose centre and extent at gives.
func buildGridOf(n int, at func(i int) (cx, cy, extent float64), x0, y0, w, h, cell float64) grid {
	g := grid{x0: x0, y0: y0, cell: cell, nx: int(w/cell) + 1, ny: int(h/cell) + 1}
	counts := make([]int32, g.nx*g.ny+1)
	key := func(i int) int {
		cx, cy, _ := at(i)
		ix := clampInt(int((cx-x0)/cell), 0, g.nx-1)
		iy := clampInt(int((cy-y0)/cell), 0, g.ny-1)
		return iy*g.nx + ix
	}
	for i := range n {
		counts[key(i)+1]++
		if _, _, e := at(i); e > g.maxR {
			g.maxR = e
		}
	}
	for i := 1; i < len(counts); i++ {
		counts[i] += counts[i-1]
	}
	g.start = counts
	g.idx = make([]int32, n)
	fill := make([]int32, g.nx*g.ny)
	for i := range n {
		k := key(i)
		g.idx[g.start[k]+fill[k]] = int32(i)
		fill[k]++
	}
	return g
}

// visit calls fn for every shape whose centre lies within maxR of the
// rectangle [x0,x1]x[y0,y1].
func (g *grid) visit(x0, y0, x1, y1 float64, fn func(i int32)) {
	if g.nx == 0 {
		return
	}
	ix0 := clampInt(int(math.Floor((x0-g.maxR-g.x0)/g.cell)), 0, g.nx-1)
	ix1 := clampInt(int(math.Floor((x1+g.maxR-g.x0)/g.cell)), 0, g.nx-1)
	iy0 := clampInt(int(math.Floor((y0-g.maxR-g.y0)/g.cell)), 0, g.ny-1)
	iy1 := clampInt(int(math.Floor((y1+g.maxR-g.y0)/g.cell)), 0, g.ny-1)
	if x1+g.maxR < g.x0 || y1+g.maxR < g.y0 || x0-g.maxR > g.x0+float64(g.nx)*g.cell || y0-g.maxR > g.y0+float64(g.ny)*g.cell {
		return
	}
	for iy := iy0; iy <= iy1; iy++ {
		for ix := ix0; ix <= ix1; ix++ {
			k := iy*g.nx + ix
			for _, i := range g.idx[g.start[k]:g.start[k+1]] {
				fn(i)
			}
		}
	}
}

func clampInt(v, lo, hi int) int {
	if v < lo {
		return lo
	}
	if v > hi {
		return hi
	}
	return v
}
