// Package virtualslide decides what goes on a virtual Pap smear slide built
// from real CRIC Cervix fields, without drawing anything: the catalogue of
// fields (both data folders, their pixel size and labelled nuclei), the
// seeded recipe of a slide (which fields, under which of the eight dihedral
// flips), and the cut-out of a field (its cells and clusters separated from
// the glass by optical density, with a feathered alpha, at CutoutPixelUM).
//
// It is a leaf: it imports only the standard library, so the simulator
// (hal/sim/slide, which renders the recipe on glass) and the slide-level
// evaluation (classify/eval, which scores the same recipe from per-field
// results) share one composition.
//
// Usage:
//
//	cat, err := virtualslide.LoadCatalog(dataDir)
//	r, err := virtualslide.NewRecipe(cat, virtualslide.Options{Kind: virtualslide.HighGrade, Seed: 7, Uses: 200})
//	for _, u := range r.Uses {
//		c, err := virtualslide.LoadCutout(dataDir, cat[u.Field]) // cells on glass, alpha, kept nuclei
//		_ = c.Image(u.Flip)                                       // what the slide shows of this use
//	}
//
// A field's kept content is every connected piece of stained material that
// does not touch the field's border (pieces cut by the border would put a
// straight cut edge on the slide), so some labelled nuclei of a field are
// not placed; Cutout.Nuclei lists those that are.
package virtualslide
