package eval

import (
	"math/rand"

	"papscan/classify"
)

// This file is the slide recipe: which analysed fields go on a virtual
// slide. It is kept apart from the scoring (slides.go) so that another
// recipe (the simulator's) can replace it.

// Grade is the truth of a composed slide.
type Grade int

// Slide grades.
const (
	Negative Grade = iota
	LowGrade
	HighGrade
	numGrades
)

var gradeNames = [numGrades]string{"NILM", "LOW_GRADE", "HIGH_GRADE"}

func (g Grade) String() string { return gradeNames[g] }

// FieldGrade is the slide grade a field gives when it is a slide's
// abnormal field: its worst labelled class's grade (Negative for a
// NILM-only field).
func FieldGrade(f *SlideField) Grade {
	switch {
	case f.Worst.HighGrade():
		return HighGrade
	case f.Worst.LowGrade():
		return LowGrade
	}
	return Negative
}

// Part is one field, in one orientation, placed on a slide. Member is the
// field's position in the pool it was drawn from: a bootstrap pool can hold
// a field twice, and the two are then different specimens. Negative parts
// carry only the field's SlideField.NegativePart (all of a NILM-only
// field; the NILM-labelled cells far from abnormal labels of another).
type Part struct {
	Member, Field, Orient int
	Negative              bool
}

// Recipe is one composed slide.
type Recipe struct {
	Grade Grade
	Parts []Part
}

// ComposeOptions size the composed slides.
type ComposeOptions struct {
	// Cells is the number of cells (detections) a slide's negative fields
	// add up to, at least (default 4000); a pool too small for it gives
	// smaller slides.
	Cells int `json:"cells"`
	// MaxUses bounds how many times one field appears on a slide, each
	// time in another orientation (default 1, at most Flips). The
	// orientations of a field are the same cells: a field used four times
	// counts its suspicious cells four times, which no real slide does.
	MaxUses int `json:"max_uses"`
	// MixedNegatives adds to the negative material of every slide the
	// negative parts of the fields with abnormal labels
	// (SlideField.NegativePart: their NILM-labelled cells far from
	// abnormal labels); otherwise it comes from the NILM-only fields alone.
	MixedNegatives bool `json:"mixed_negatives"`
}

func (o ComposeOptions) withDefaults() ComposeOptions {
	if o.Cells <= 0 {
		o.Cells = 4000
	}
	if o.MaxUses <= 0 {
		o.MaxUses = 1
	}
	o.MaxUses = min(o.MaxUses, Flips)
	return o
}

// Compose builds n slides of grade g from the fields of pool (indices into
// fields, a field may appear twice): negative parts (NILM-only fields, and
// with MixedNegatives the NILM-labelled cells of the other fields) in
// random orientations, at most MaxUses per field, until the slide holds
// Cells cells; an abnormal slide then gets exactly one field of its grade
// (in a random orientation, whole), the abnormal fields taken in turn so
// that each is used about equally, and none of that field's negative part.
// It returns nil when the pool lacks negative material or fields of grade
// g.
func Compose(fields []SlideField, pool []int, g Grade, n int, o ComposeOptions, rng *rand.Rand) []Recipe {
	return compose(pool, g, n, o, rng, func(fi int) Grade { return FieldGrade(&fields[fi]) },
		func(fi, or int) int { return len(fields[fi].NegativePart(or)) })
}

// compose is Compose with the fields' grades and negative parts' cell
// counts given (the scorer keeps them).
func compose(pool []int, g Grade, n int, o ComposeOptions, rng *rand.Rand, grade func(fi int) Grade, negCells func(fi, or int) int) []Recipe {
	o = o.withDefaults()
	var ab []int // pool members
	var inst []Part
	for m, fi := range pool {
		fg := grade(fi)
		if fg != Negative && fg == g {
			ab = append(ab, m)
		}
		if fg != Negative && !o.MixedNegatives {
			continue
		}
		for or := range Flips {
			if negCells(fi, or) > 0 {
				inst = append(inst, Part{Member: m, Field: fi, Orient: or, Negative: true})
			}
		}
	}
	if len(inst) == 0 || (g != Negative && len(ab) == 0) {
		return nil
	}
	rng.Shuffle(len(ab), func(i, j int) { ab[i], ab[j] = ab[j], ab[i] })
	out := make([]Recipe, n)
	uses := make(map[int]int)
	for s := range out {
		r := Recipe{Grade: g}
		rng.Shuffle(len(inst), func(i, j int) { inst[i], inst[j] = inst[j], inst[i] })
		clear(uses)
		abm := -1
		if g != Negative {
			abm = ab[s%len(ab)]
		}
		cells := 0
		for _, p := range inst {
			if cells >= o.Cells {
				break
			}
			if p.Member == abm || uses[p.Member] >= o.MaxUses {
				continue
			}
			uses[p.Member]++
			cells += negCells(p.Field, p.Orient)
			r.Parts = append(r.Parts, p)
		}
		if g != Negative {
			r.Parts = append(r.Parts, Part{Member: abm, Field: pool[abm], Orient: rng.Intn(Flips)})
		}
		out[s] = r
	}
	return out
}

// abnormalLabel reports whether a cell covers a labelled abnormal point.
func abnormalLabel(c *SlideCell) bool { return c.Label > int8(classify.NILM) }
