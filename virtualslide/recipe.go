package virtualslide

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Kind is the slide-level truth a recipe builds.
type Kind uint8

// Slide kinds.
const (
	Negative  Kind = iota // NILM-only fields
	LowGrade              // plus abnormal field(s) whose worst class is ASC-US or LSIL
	HighGrade             // plus abnormal field(s) whose worst class is ASC-H, HSIL or SCC
)

// String implements fmt.Stringer.
func (k Kind) String() string {
	switch k {
	case Negative:
		return "NILM"
	case LowGrade:
		return "low-grade"
	case HighGrade:
		return "high-grade"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Flip is one of the eight symmetries of the square applied to a field:
// bit 0 mirrors x, bit 1 mirrors y, bit 2 then swaps the axes (a
// transpose). Flip 0 is the identity; 3 is a 180° rotation.
type Flip uint8

// NumFlips is the number of distinct flips.
const NumFlips = 8

// Size is the size of a w x h image under the flip.
func (f Flip) Size(w, h int) (int, int) {
	if f&4 != 0 {
		return h, w
	}
	return w, h
}

// Point maps the point (x, y) of a w x h image (continuous pixel
// coordinates, 0..w) to the flipped image.
func (f Flip) Point(x, y float64, w, h int) (float64, float64) {
	if f&1 != 0 {
		x = float64(w) - x
	}
	if f&2 != 0 {
		y = float64(h) - y
	}
	if f&4 != 0 {
		x, y = y, x
	}
	return x, y
}

// Pixel maps pixel (i, j) of the flipped image back to the pixel of the
// w x h source it shows.
func (f Flip) Pixel(i, j, w, h int) (int, int) {
	if f&4 != 0 {
		i, j = j, i
	}
	if f&1 != 0 {
		i = w - 1 - i
	}
	if f&2 != 0 {
		j = h - 1 - j
	}
	return i, j
}

// Use is one placement of a field on a slide.
type Use struct {
	Field    int  // index into the catalogue
	Flip     Flip // symmetry applied to the whole field
	Abnormal bool // the field carries the slide's abnormal content
}

// Recipe is the composition of one slide: which fields it carries, under
// which flips. The same recipe gives the same slide in the simulator and in
// the slide-level evaluation.
type Recipe struct {
	Kind Kind
	Uses []Use
}

// Count returns how many times the recipe uses field i.
func (r Recipe) Count(i int) int {
	n := 0
	for _, u := range r.Uses {
		if u.Field == i {
			n++
		}
	}
	return n
}

// Recipe defaults.
const (
	// DefaultMaxUsesPerField bounds how often one NILM field appears on a
	// slide (each time under a flip, the eight flips taken in turn): a
	// realistic cell count for a 13 mm spot needs the fields more than
	// once, and each copy of a field shows the same cells.
	DefaultMaxUsesPerField = 12
	// DefaultAbnormalMin and DefaultAbnormalMax are the labelled abnormal
	// nuclei an abnormal field preferably has.
	DefaultAbnormalMin = 5
	DefaultAbnormalMax = 15
)

// DefaultUsesPerMM2 is the number of NILM field placements per mm² of
// cell spot the simulator asks for (before the per-field bound): the fields'
// kept material then covers about a fifth of a small spot.
const DefaultUsesPerMM2 = 4.7

// UsesForSpot is the Options.Uses the simulator asks for on a round spot of
// the given diameter (µm): 624 for a 13 mm SurePath spot, which the per-field
// bound caps at 12 uses of each NILM-only field.
func UsesForSpot(diameterUM float64) int {
	return max(1, int(math.Round(math.Pi*diameterUM*diameterUM/4/1e6*DefaultUsesPerMM2)))
}

// Options choose a recipe.
type Options struct {
	Kind Kind
	Seed int64
	// Uses is the number of NILM field placements (the slide's normal
	// background); it is capped at MaxUsesPerField times the number of
	// NILM-only fields allowed.
	Uses int
	// MaxUsesPerField bounds the uses of one NILM field; zero means
	// DefaultMaxUsesPerField.
	MaxUsesPerField int
	// AbnormalFields is the number of distinct abnormal fields on a
	// LowGrade or HighGrade slide (each used once); zero means 1. A slide
	// gets at most as many as the catalogue holds for its grade.
	AbnormalFields int
	// Worst, when not NILM, restricts abnormal fields to those whose most
	// severe class is Worst (failing that, those that carry it); it must
	// have the Kind's grade.
	Worst Class
	// Allow, when set, restricts the fields used (e.g. to the fields a
	// fold's model never saw).
	Allow func(*Field) bool
}

// NewRecipe chooses a slide's fields from the catalogue. The background is
// the NILM-only fields, each used at most MaxUsesPerField times and spread
// evenly (every allowed NILM-only field is used before any is used twice;
// a field's uses take distinct flips while there are flips left). A
// LowGrade or HighGrade slide adds AbnormalFields fields whose worst
// labelled class has that grade, each used once, preferring fields with
// DefaultAbnormalMin..DefaultAbnormalMax labelled abnormal nuclei. The
// choice is deterministic for a given catalogue and Options.
func NewRecipe(cat []Field, o Options) (Recipe, error) {
	if o.Kind > HighGrade {
		return Recipe{}, fmt.Errorf("virtualslide: kind %v", o.Kind)
	}
	if o.Uses < 0 || o.MaxUsesPerField < 0 || o.AbnormalFields < 0 {
		return Recipe{}, fmt.Errorf("virtualslide: negative Uses, MaxUsesPerField or AbnormalFields")
	}
	if o.MaxUsesPerField == 0 {
		o.MaxUsesPerField = DefaultMaxUsesPerField
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x5e1ec7))
	allowed := func(f *Field) bool { return o.Allow == nil || o.Allow(f) }
	var normal []int
	for i := range cat {
		if cat[i].Worst == NILM && allowed(&cat[i]) {
			normal = append(normal, i)
		}
	}
	if len(normal) == 0 {
		return Recipe{}, fmt.Errorf("virtualslide: no NILM-only field allowed")
	}
	r := Recipe{Kind: o.Kind}
	n := min(o.Uses, o.MaxUsesPerField*len(normal))
	// Rounds: every round uses every NILM field once, in a fresh order;
	// field k's flips are a seeded permutation taken in turn.
	flips := make([][NumFlips]Flip, len(normal))
	for k := range flips {
		for i, p := range rng.Perm(NumFlips) {
			flips[k][i] = Flip(p)
		}
	}
	for round := 0; len(r.Uses) < n; round++ {
		for _, k := range rng.Perm(len(normal)) {
			if len(r.Uses) == n {
				break
			}
			r.Uses = append(r.Uses, Use{Field: normal[k], Flip: flips[k][round%NumFlips]})
		}
	}
	if o.Kind == Negative {
		return r, nil
	}
	if o.Worst != NILM && o.Worst.Grade() != o.Kind {
		return Recipe{}, fmt.Errorf("virtualslide: worst class %v is not %v", o.Worst, o.Kind)
	}
	cands := abnormalCandidates(cat, o, allowed)
	if len(cands) == 0 {
		return Recipe{}, fmt.Errorf("virtualslide: no allowed field for a %v slide", o.Kind)
	}
	m := min(max(o.AbnormalFields, 1), len(cands))
	for _, k := range rng.Perm(len(cands))[:m] {
		u := Use{Field: cands[k], Flip: Flip(rng.IntN(NumFlips)), Abnormal: true}
		// Put it among the background at a seeded position.
		at := rng.IntN(len(r.Uses) + 1)
		r.Uses = append(r.Uses[:at], append([]Use{u}, r.Uses[at:]...)...)
	}
	return r, nil
}

// abnormalCandidates returns the allowed fields fit to carry a slide's
// abnormal content, preferring those with a moderate number of labelled
// abnormal nuclei.
func abnormalCandidates(cat []Field, o Options, allowed func(*Field) bool) []int {
	fit := func(f *Field, strict bool) bool {
		if !allowed(f) || f.Worst == NILM {
			return false
		}
		if o.Worst != NILM {
			if strict {
				return f.Worst == o.Worst
			}
			for _, p := range f.Nuclei {
				if p.Class == o.Worst {
					return true
				}
			}
			return false
		}
		return f.Worst.Grade() == o.Kind
	}
	var all, pref []int
	for _, strict := range []bool{true, false} {
		for i := range cat {
			f := &cat[i]
			if !fit(f, strict) {
				continue
			}
			all = append(all, i)
			if a := len(f.Nuclei) - f.Count(Negative); a >= DefaultAbnormalMin && a <= DefaultAbnormalMax {
				pref = append(pref, i)
			}
		}
		if len(all) > 0 {
			break
		}
	}
	if len(pref) > 0 {
		return pref
	}
	return all
}
