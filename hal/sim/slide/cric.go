package slide

import (
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"slices"
	"sync"

	"papscan/virtualslide"
)

// CRICPixelUM is the assumed specimen size of one pixel of the stored CRIC
// field images in cric/fields (originals 1376x1020 through a 40x objective,
// resized to 1280 px wide); cric/more-fields is stored at twice that. It is
// an assumption, not a calibration shipped with the data.
const CRICPixelUM = 0.25

// Library is the CRIC catalogue of a data directory (both CRIC folders)
// with the cut-outs of its fields, decoded on first use and shared by every
// slide built from it. It is safe for concurrent use.
type Library struct {
	dir string
	cat []virtualslide.Field

	mu   sync.Mutex
	cuts map[int]*virtualslide.Cutout
}

// NewLibrary reads the CRIC catalogue of dataDir (cric/fields and
// cric/more-fields).
func NewLibrary(dataDir string) (*Library, error) {
	cat, err := virtualslide.LoadCatalog(dataDir)
	if err != nil {
		return nil, fmt.Errorf("slide: %w", err)
	}
	return &Library{dir: dataDir, cat: cat, cuts: map[int]*virtualslide.Cutout{}}, nil
}

// Catalog returns the library's fields (do not modify).
func (l *Library) Catalog() []virtualslide.Field { return l.cat }

func (l *Library) cutout(i int) (*virtualslide.Cutout, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.cuts[i]; ok {
		return c, nil
	}
	c, err := virtualslide.LoadCutout(l.dir, &l.cat[i])
	if err != nil {
		return nil, fmt.Errorf("slide: %w", err)
	}
	l.cuts[i] = c
	return c, nil
}

// RecipeOptions are the recipe options a Spec stands for: its diagnosis's
// grade (and worst class for a one-class diagnosis), its seed, NILM uses in
// proportion to the spot's area (virtualslide.UsesForSpot) and spec.Abnormal
// abnormal fields (zero means one).
func RecipeOptions(spec Spec) virtualslide.Options {
	spec = spec.withDefaults()
	d := spec.Spot.DiameterUM()
	if spec.SpotDiameterUM > 0 {
		d = spec.SpotDiameterUM
	}
	o := virtualslide.Options{
		Kind:           virtualslide.Kind(spec.Diagnosis.Grade()),
		Seed:           spec.Seed,
		Uses:           virtualslide.UsesForSpot(d),
		AbnormalFields: max(spec.Abnormal, 0),
	}
	if cs := spec.Diagnosis.classes(); len(cs) == 1 {
		o.Worst = virtualslide.Class(cs[0])
	}
	return o
}

// cricSpecimen is the spot of a CRIC slide: pieces of real fields (cells,
// clusters, debris cut out with their own masks) scattered on glass.
type cricSpecimen struct {
	recipe virtualslide.Recipe
	cuts   []*virtualslide.Cutout // by catalogue index, nil if unused
	names  []string               // field names by catalogue index
	pieces []placedPiece
	grid   grid
}

// placedPiece is one piece of a field's cut-out on the slide, under the
// flip of its use.
type placedPiece struct {
	field  int32
	flip   virtualslide.Flip
	src    image.Rectangle // in the cut-out's pixels
	w, h   int             // flipped size, pixels
	x0, y0 float64         // slide position of the flipped piece's top-left, µm
}

func (p *placedPiece) centre() (float64, float64, float64) {
	hw, hh := float64(p.w)*virtualslide.CutoutPixelUM/2, float64(p.h)*virtualslide.CutoutPixelUM/2
	return p.x0 + hw, p.y0 + hh, math.Hypot(hw, hh)
}

// FromCRIC builds a slide from the real CRIC Cervix fields of dataDir; it is
// NewLibrary(dataDir) then Library.Slide(spec). Build several slides from
// one Library to decode each field once.
func FromCRIC(dataDir string, spec Spec) (*Slide, error) {
	l, err := NewLibrary(dataDir)
	if err != nil {
		return nil, err
	}
	return l.Slide(spec)
}

// Slide builds a slide from the library: the recipe of RecipeOptions(spec)
// chooses the fields (NILM-only fields, each used a bounded number of times
// under distinct flips, plus the abnormal field(s) of the diagnosis, each
// used once); the pieces of each used field's cut-out (virtualslide.Cutout:
// cells and clusters separated from the field's glass, feathered) are
// scattered at seeded positions in the spot without overlapping, all under
// the use's flip, like the monolayer of a liquid-based preparation. The
// labelled nuclei of the placed pieces are the ground truth Cells (not
// exhaustive: CRIC labels only some normal nuclei). The spot's glass takes
// the median colour of the used fields' own glass.
func (l *Library) Slide(spec Spec) (*Slide, error) {
	s := newSlide(spec)
	spec = s.Spec
	r, err := virtualslide.NewRecipe(l.cat, RecipeOptions(spec))
	if err != nil {
		return nil, fmt.Errorf("slide %s: %w", spec.ID, err)
	}
	c := &cricSpecimen{recipe: r, cuts: make([]*virtualslide.Cutout, len(l.cat)), names: make([]string, len(l.cat))}
	var glass [3][]float64
	for _, u := range r.Uses {
		if c.cuts[u.Field] != nil {
			continue
		}
		cut, err := l.cutout(u.Field)
		if err != nil {
			return nil, fmt.Errorf("slide %s: %w", spec.ID, err)
		}
		c.cuts[u.Field], c.names[u.Field] = cut, l.cat[u.Field].Name
		for ch := range 3 {
			glass[ch] = append(glass[ch], cut.Glass[ch])
		}
	}
	for ch := range 3 {
		slices.Sort(glass[ch])
		s.glass[ch] = uint8(math.Round(glass[ch][len(glass[ch])/2]))
	}
	c.place(s, rand.New(rand.NewPCG(uint64(spec.Seed), 0x91ace)))
	s.cric = c
	return s, nil
}

// occCellUM is the size of the occupancy cells that keep placed pieces
// from overlapping.
const occCellUM = 5.0

// place scatters the pieces of every use over the spot and records the
// ground truth of their labelled nuclei.
func (c *cricSpecimen) place(s *Slide, rng *rand.Rand) {
	cx, cy, r := s.Spot()
	n := int(math.Ceil(2 * r / occCellUM))
	occ := make([]bool, n*n)
	ox, oy := cx-r, cy-r
	const p = virtualslide.CutoutPixelUM
	var mask []bool
	// The abnormal fields first, so that they find room even on a small
	// spot; then the background in the recipe's order.
	uses := slices.Clone(c.recipe.Uses)
	slices.SortStableFunc(uses, func(a, b virtualslide.Use) int {
		switch {
		case a.Abnormal && !b.Abnormal:
			return -1
		case b.Abnormal && !a.Abnormal:
			return 1
		}
		return 0
	})
	for _, u := range uses {
		cut := c.cuts[u.Field]
		for k, src := range cut.Pieces {
			bw, bh := src.Dx(), src.Dy()
			w, h := u.Flip.Size(bw, bh)
			// The piece's own occupancy at occCellUM, flipped.
			mw, mh := int(math.Ceil(float64(w)*p/occCellUM)), int(math.Ceil(float64(h)*p/occCellUM))
			if mw >= n || mh >= n {
				continue
			}
			mask = slices.Grow(mask[:0], mw*mh)[:mw*mh]
			clear(mask)
			for j := range h {
				for i := range w {
					si, sj := u.Flip.Pixel(i, j, bw, bh)
					if cut.Factor[((src.Min.Y+sj)*cut.W+src.Min.X+si)*4+3] != 0 {
						mask[int(float64(j)*p/occCellUM)*mw+int(float64(i)*p/occCellUM)] = true
					}
				}
			}
			// Seeded tries for a free place wholly inside the spot.
			for range 40 {
				gx, gy := rng.IntN(n-mw+1), rng.IntN(n-mh+1)
				x0, y0 := ox+float64(gx)*occCellUM, oy+float64(gy)*occCellUM
				x1, y1 := x0+float64(w)*p, y0+float64(h)*p
				if !s.InSpot(x0, y0) || !s.InSpot(x1, y0) || !s.InSpot(x0, y1) || !s.InSpot(x1, y1) {
					continue
				}
				free := true
				for j := 0; j < mh && free; j++ {
					row := occ[(gy+j)*n+gx:]
					for i := range mw {
						if mask[j*mw+i] && row[i] {
							free = false
							break
						}
					}
				}
				if !free {
					continue
				}
				for j := range mh {
					row := occ[(gy+j)*n+gx:]
					for i := range mw {
						row[i] = row[i] || mask[j*mw+i]
					}
				}
				c.pieces = append(c.pieces, placedPiece{field: int32(u.Field), flip: u.Flip, src: src, w: w, h: h, x0: x0, y0: y0})
				for _, nu := range cut.Nuclei {
					if nu.Piece != k {
						continue
					}
					fx, fy := u.Flip.Point(nu.X-float64(src.Min.X), nu.Y-float64(src.Min.Y), bw, bh)
					s.Cells = append(s.Cells, Cell{
						X: x0 + fx*p, Y: y0 + fy*p, Class: Class(nu.Class),
						NucleusDiameter: cricNucleusUM(Class(nu.Class)), Field: c.names[u.Field],
					})
				}
				break
			}
		}
	}
	c.grid = buildGridOf(len(c.pieces), func(i int) (float64, float64, float64) { return c.pieces[i].centre() },
		ox, oy, 2*r, 2*r, 400)
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

// Recipe returns the composition of a CRIC slide (which fields, under which
// flips) and false for a synthetic slide.
func (s *Slide) Recipe() (virtualslide.Recipe, bool) {
	if s.cric == nil {
		return virtualslide.Recipe{}, false
	}
	return s.cric.recipe, true
}

// Placement is one piece of a field's cut-out placed on a CRIC slide.
type Placement struct {
	Field int               // index into the library's catalogue
	Flip  virtualslide.Flip // the flip of its use
	Src   image.Rectangle   // the piece in the cut-out's pixels (Cutout.Pieces)
	// X0, Y0 is the slide position (µm) of the flipped piece's top-left:
	// cut-out pixel (x, y) of the piece lies at X0 + fx·CutoutPixelUM,
	// Y0 + fy·CutoutPixelUM with fx, fy = Flip.Point(x − Src.Min.X,
	// y − Src.Min.Y, Src.Dx(), Src.Dy()).
	X0, Y0 float64
}

// Placements returns the pieces placed on a CRIC slide, in placement order
// (nil for a synthetic slide). A piece that found no free place in the spot
// is not among them.
func (s *Slide) Placements() []Placement {
	if s.cric == nil {
		return nil
	}
	out := make([]Placement, len(s.cric.pieces))
	for i, p := range s.cric.pieces {
		out[i] = Placement{Field: int(p.field), Flip: p.flip, Src: p.src, X0: p.x0, Y0: p.y0}
	}
	return out
}

// Cutout returns the cut-out of catalogue field i (decoded once and shared;
// do not modify).
func (l *Library) Cutout(i int) (*virtualslide.Cutout, error) {
	if i < 0 || i >= len(l.cat) {
		return nil, fmt.Errorf("slide: no catalogue field %d", i)
	}
	return l.cutout(i)
}

// Pieces returns the number of field pieces placed on a CRIC slide.
func (s *Slide) Pieces() int {
	if s.cric == nil {
		return 0
	}
	return len(s.cric.pieces)
}

// NearBoundary reports whether slide point (x, y) lies within rUM of a
// composition boundary inside material: a place where a placed piece's
// material fades out because the source field's frame cut it
// (virtualslide.Cutout.Cut). A synthetic slide has none.
func (s *Slide) NearBoundary(x, y, rUM float64) bool {
	c := s.cric
	if c == nil {
		return false
	}
	const p = virtualslide.CutoutPixelUM
	near := false
	c.grid.visit(x-rUM, y-rUM, x+rUM, y+rUM, func(i int32) {
		pc := &c.pieces[i]
		if near || x+rUM < pc.x0 || y+rUM < pc.y0 || x-rUM > pc.x0+float64(pc.w)*p || y-rUM > pc.y0+float64(pc.h)*p {
			return
		}
		bw, bh := pc.src.Dx(), pc.src.Dy()
		for _, q := range c.cuts[pc.field].Cut {
			if !q.In(pc.src) {
				continue
			}
			fx, fy := pc.flip.Point(float64(q.X-pc.src.Min.X)+0.5, float64(q.Y-pc.src.Min.Y)+0.5, bw, bh)
			if math.Hypot(pc.x0+fx*p-x, pc.y0+fy*p-y) <= rUM {
				near = true
				return
			}
		}
	})
	return near
}

// Err is kept for callers of the tiled CRIC slides; fields are now decoded
// when the slide is built, so it is always nil.
func (s *Slide) Err() error { return nil }

// drawCRIC multiplies the glass by the placed pieces (nearest neighbour
// from the cut-outs at virtualslide.CutoutPixelUM).
func (r *Renderer) drawCRIC(s *Slide, v *view) {
	c := s.cric
	const p = virtualslide.CutoutPixelUM
	x1, y1 := v.x0+float64(v.w)*v.p, v.y0+float64(v.h)*v.p
	if cap(r.colT) < v.w {
		r.colT = make([]int32, v.w)
	}
	cols := r.colT[:v.w]
	c.grid.visit(v.x0, v.y0, x1, y1, func(k int32) {
		pc := &c.pieces[k]
		px1, py1 := pc.x0+float64(pc.w)*p, pc.y0+float64(pc.h)*p
		if px1 <= v.x0 || py1 <= v.y0 || pc.x0 >= x1 || pc.y0 >= y1 {
			return
		}
		cut := c.cuts[pc.field]
		bw, bh := pc.src.Dx(), pc.src.Dy()
		i0 := max(0, int(math.Floor((pc.x0-v.x0)/v.p)))
		i1 := min(v.w, int(math.Ceil((px1-v.x0)/v.p)))
		j0 := max(0, int(math.Floor((pc.y0-v.y0)/v.p)))
		j1 := min(v.h, int(math.Ceil((py1-v.y0)/v.p)))
		for i := i0; i < i1; i++ {
			cols[i] = int32(math.Floor((v.x0 + (float64(i)+0.5)*v.p - pc.x0) / p))
		}
		for j := j0; j < j1; j++ {
			lj := int(math.Floor((v.y0 + (float64(j)+0.5)*v.p - pc.y0) / p))
			if lj < 0 || lj >= pc.h {
				continue
			}
			row := v.pix[j*v.stride:]
			for i := i0; i < i1; i++ {
				li := int(cols[i])
				if li < 0 || li >= pc.w {
					continue
				}
				si, sj := pc.flip.Pixel(li, lj, bw, bh)
				f := cut.Factor[((pc.src.Min.Y+sj)*cut.W+pc.src.Min.X+si)*4:]
				if f[3] == 0 {
					continue
				}
				o := i * 4
				row[o] = virtualslide.Apply(row[o], f[0])
				row[o+1] = virtualslide.Apply(row[o+1], f[1])
				row[o+2] = virtualslide.Apply(row[o+2], f[2])
			}
		}
	})
}
