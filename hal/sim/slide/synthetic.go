package slide

import (
	"math"
	"math/rand/v2"
)

// vec is an offset in µm from a shape's centre.
type vec struct{ x, y float32 }

const (
	maxCytoVerts = 10
	nucVerts     = 16
)

// shape is how one synthetic cell is drawn. Colours are transmittances in
// 8.8 fixed point (256 = fully transparent), applied multiplicatively to the
// light, as a stain absorbs it.
type shape struct {
	cx, cy float64 // cytoplasm centre, slide µm
	extent float64 // largest vertex distance from (cx, cy), µm

	ncyto uint8
	cyto  [maxCytoVerts]vec
	cytoT [3]uint16 // cytoplasm (including its rim)
	rimT  uint16    // the rim is cytoT*rimT; the inside is brightened back

	nuc   [nucVerts]vec
	nucT  [4][3]uint16 // chromatin texture levels
	halo  float32      // koilocytic halo radius / nucleus radius (0: none)
	nucCX float32      // nucleus centre offset from (cx, cy)
	nucCY float32
}

// Synthetic builds a slide whose spot holds synthetic Pap-stained squamous
// cells at spec.CellsPerMM2 (a 13 mm spot holds about 20,000 at the default
// density, well over the 5,000 Bethesda asks for) and, unless the diagnosis
// is Negative, spec.Abnormal abnormal cells of the diagnosis's classes.
func Synthetic(spec Spec) *Slide {
	s := newSlide(spec)
	spec = s.Spec
	rng := rand.New(rand.NewPCG(uint64(spec.Seed), 0xce115))
	area := math.Pi * s.spotR * s.spotR / 1e6 // mm²
	n := int(area * spec.CellsPerMM2)
	abnormal := 0
	if classes := spec.Diagnosis.classes(); len(classes) > 0 {
		abnormal = spec.Abnormal
		if abnormal <= 0 {
			abnormal = 10 + rng.IntN(31)
		}
	}
	s.shapes = make([]shape, 0, n+abnormal)
	s.Cells = make([]Cell, 0, n+abnormal)
	place := func() (float64, float64) {
		r := s.spotR * math.Sqrt(rng.Float64())
		a := 2 * math.Pi * rng.Float64()
		return spec.SpotCenter.X + r*math.Cos(a), spec.SpotCenter.Y + r*math.Sin(a)
	}
	add := func(c Class) {
		x, y := place()
		sh, cell := makeCell(rng, c, x, y)
		s.shapes = append(s.shapes, sh)
		s.Cells = append(s.Cells, cell)
	}
	for range n {
		add(NILM)
	}
	classes := spec.Diagnosis.classes()
	for range abnormal {
		add(classes[rng.IntN(len(classes))])
	}
	d := 2 * s.spotR
	s.grid = buildGrid(s.shapes, spec.SpotCenter.X-s.spotR, spec.SpotCenter.Y-s.spotR, d, d, 200)
	return s
}

// cellLook holds the size and stain ranges of a kind of cell (µm, and
// transmittances 0..1 for R, G, B).
type cellLook struct {
	cellD, cellD2    float64 // cytoplasm diameter range
	aspect           float64 // max elongation of the cytoplasm
	nucD, nucD2      float64 // nucleus diameter range
	nucIrr           float64 // contour irregularity
	nucAspect        float64
	cyto             [3]float64
	nuc              [3]float64
	haloLo, haloHi   float64 // halo radius / nucleus radius (0: none)
	verts, vertsMore int     // cytoplasm polygon vertex count range
}

func lookFor(rng *rand.Rand, c Class) cellLook {
	// Papanicolaou stain transmittances (R, G, B).
	eosinophilic := [3]float64{0.98, 0.80, 0.86}
	cyanophilic := [3]float64{0.80, 0.90, 0.93}
	parabasal := [3]float64{0.70, 0.84, 0.90}
	orangeophilic := [3]float64{0.97, 0.70, 0.55}
	switch c {
	case ASCUS:
		return cellLook{cellD: 38, cellD2: 50, aspect: 1.2, nucD: 11, nucD2: 14, nucIrr: 0.05, nucAspect: 1.2,
			cyto: cyanophilic, nuc: [3]float64{0.36, 0.31, 0.56}, verts: 5, vertsMore: 3}
	case LSIL:
		return cellLook{cellD: 42, cellD2: 58, aspect: 1.2, nucD: 14, nucD2: 18, nucIrr: 0.08, nucAspect: 1.3,
			cyto: cyanophilic, nuc: [3]float64{0.28, 0.24, 0.50}, haloLo: 1.9, haloHi: 2.6, verts: 5, vertsMore: 3}
	case ASCH:
		return cellLook{cellD: 17, cellD2: 25, aspect: 1.15, nucD: 10, nucD2: 13, nucIrr: 0.07, nucAspect: 1.2,
			cyto: parabasal, nuc: [3]float64{0.26, 0.22, 0.48}, verts: 8, vertsMore: 2}
	case HSIL:
		return cellLook{cellD: 15, cellD2: 22, aspect: 1.2, nucD: 11, nucD2: 15, nucIrr: 0.13, nucAspect: 1.3,
			cyto: parabasal, nuc: [3]float64{0.20, 0.16, 0.42}, verts: 8, vertsMore: 2}
	case SCC:
		return cellLook{cellD: 30, cellD2: 60, aspect: 3, nucD: 12, nucD2: 20, nucIrr: 0.22, nucAspect: 1.8,
			cyto: orangeophilic, nuc: [3]float64{0.15, 0.12, 0.32}, verts: 6, vertsMore: 3}
	}
	switch p := rng.Float64(); {
	case p < 0.40: // superficial: pink, small pyknotic nucleus
		return cellLook{cellD: 45, cellD2: 60, aspect: 1.3, nucD: 5, nucD2: 6.5, nucIrr: 0.03, nucAspect: 1.1,
			cyto: eosinophilic, nuc: [3]float64{0.27, 0.23, 0.46}, verts: 5, vertsMore: 3}
	case p < 0.95: // intermediate: cyan, vesicular nucleus
		return cellLook{cellD: 40, cellD2: 55, aspect: 1.3, nucD: 7, nucD2: 9, nucIrr: 0.04, nucAspect: 1.15,
			cyto: cyanophilic, nuc: [3]float64{0.42, 0.38, 0.62}, verts: 5, vertsMore: 3}
	default: // parabasal: small round cell, low N/C still
		return cellLook{cellD: 18, cellD2: 26, aspect: 1.1, nucD: 8, nucD2: 10, nucIrr: 0.03, nucAspect: 1.1,
			cyto: parabasal, nuc: [3]float64{0.40, 0.36, 0.60}, verts: 8, vertsMore: 2}
	}
}

func fixed(t float64) uint16 {
	if t < 0 {
		t = 0
	}
	return uint16(math.Round(t * 256))
}

// makeCell draws a cell of class c with its cytoplasm centred at (x, y).
func makeCell(rng *rand.Rand, c Class, x, y float64) (shape, Cell) {
	lk := lookFor(rng, c)
	u := func(lo, hi float64) float64 { return lo + (hi-lo)*rng.Float64() }
	sh := shape{cx: x, cy: y}

	// Cytoplasm: an irregular polygon, elongated and rotated.
	cellD := u(lk.cellD, lk.cellD2)
	R := cellD / 2
	asp := u(1, lk.aspect)
	rot := u(0, 2*math.Pi)
	sr, cr := math.Sincos(rot)
	nv := lk.verts + rng.IntN(lk.vertsMore)
	sh.ncyto = uint8(nv)
	phase := u(0, 2*math.Pi)
	for k := range nv {
		a := phase + 2*math.Pi*(float64(k)+u(-0.25, 0.25))/float64(nv)
		r := R * u(0.85, 1.1)
		px, py := r*math.Cos(a)*asp, r*math.Sin(a)/asp
		v := vec{float32(px*cr - py*sr), float32(px*sr + py*cr)}
		sh.cyto[k] = v
		sh.extent = math.Max(sh.extent, math.Hypot(float64(v.x), float64(v.y)))
	}
	jit := func(t [3]float64, d float64) [3]uint16 {
		var o [3]uint16
		for i := range t {
			o[i] = fixed(math.Min(1, t[i]+u(-d, d)))
		}
		return o
	}
	sh.cytoT = jit(lk.cyto, 0.03)
	sh.rimT = fixed(u(0.88, 0.94))

	// Nucleus: a smooth irregular ellipse near the cytoplasm centre.
	nucD := u(lk.nucD, lk.nucD2)
	nr := nucD / 2
	off := u(0, 0.12) * R
	oa := u(0, 2*math.Pi)
	sh.nucCX, sh.nucCY = float32(off*math.Cos(oa)), float32(off*math.Sin(oa))
	nasp := u(1, lk.nucAspect)
	nrot := u(0, 2*math.Pi)
	ns, nc := math.Sincos(nrot)
	h2, h3 := u(-1, 1)*lk.nucIrr, u(-1, 1)*lk.nucIrr
	p2, p3 := u(0, 2*math.Pi), u(0, 2*math.Pi)
	for k := range nucVerts {
		a := 2 * math.Pi * float64(k) / nucVerts
		r := nr * (1 + h2*math.Sin(2*a+p2) + h3*math.Sin(3*a+p3) + u(-0.5, 0.5)*lk.nucIrr)
		px, py := r*math.Cos(a)*math.Sqrt(nasp), r*math.Sin(a)/math.Sqrt(nasp)
		sh.nuc[k] = vec{float32(px*nc-py*ns) + sh.nucCX, float32(px*ns+py*nc) + sh.nucCY}
		sh.extent = math.Max(sh.extent, math.Hypot(float64(sh.nuc[k].x), float64(sh.nuc[k].y)))
	}
	base := jit(lk.nuc, 0.03)
	for l, k := range [4]float64{0.8, 0.93, 1.07, 1.2} {
		for ch := range 3 {
			sh.nucT[l][ch] = fixed(math.Pow(float64(base[ch])/256, k))
		}
	}
	if lk.haloHi > 0 {
		sh.halo = float32(u(lk.haloLo, lk.haloHi))
		sh.extent = math.Max(sh.extent, off+1.4*nr*float64(sh.halo))
	}
	return sh, Cell{
		X: x + float64(sh.nucCX), Y: y + float64(sh.nucCY), Class: c,
		NucleusDiameter: nucD, CellDiameter: cellD,
	}
}
