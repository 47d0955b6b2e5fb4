// Package slide is the virtual Pap smear slide of the simulator: a 75x25 mm
// glass slide with a printed label (slide ID as text and as a Code 128
// barcode) and a round cell spot (SurePath 13 mm or ThinPrep 20 mm), together
// with its ground truth (every cell's position and Bethesda class) and its
// focal surface.
//
// # Coordinates
//
// Slide coordinates are in micrometres (µm). The origin is the slide's
// top-left corner when the slide is seen with the label on the left; x runs
// along the 75 mm side (to the right), y along the 25 mm side (downwards).
// The label covers x in [0, 20 mm). Images follow the same orientation:
// image column grows with x, image row grows with y. A field of view rendered
// centred at (cx, cy) with pixel size p and size w x h maps pixel (i, j),
// whose centre is at (i+0.5, j+0.5), to the slide point
//
//	x = cx + (i + 0.5 - w/2) * p,  y = cy + (j + 0.5 - h/2) * p.
//
// Focus heights (FocusZ) are in µm on the focus-stage scale: the camera is in
// focus at slide point (x, y) when the focus stage stands at FocusZ(x, y).
//
// # Builders
//
// Synthetic draws Pap-stained squamous cells (and, depending on the slide's
// diagnosis, a few abnormal cells) from a seeded random generator. FromCRIC
// (or Library.Slide, which shares decoded fields between slides) lays out
// real CRIC Cervix material like the monolayer of a liquid-based
// preparation: the recipe of package virtualslide chooses the fields (NILM-
// only fields of both CRIC folders, each used a bounded number of times
// under distinct flips, plus one abnormal field per abnormal slide by
// default), and the pieces of each field's cut-out (cells and clusters
// separated from its glass by optical density, with feathered alpha) are
// scattered on glass of the fields' own colour without overlapping. There
// are no seams, padding edges or rotation corners; where a field's frame
// cut a sheet, the sheet fades out along a rounded, wavy line, and
// Slide.NearBoundary tells whether a point lies near such a cut. The
// labelled nuclei of the placed pieces become the ground truth. Both
// builders are deterministic for a given Spec.
//
// # Rendering
//
// A Renderer draws the field of view at a stage position with defocus blur
// (a Gaussian whose sigma grows linearly with |defocus| from zero at focus,
// by the geometric cone of the objective's NA: a 3-tap kernel per axis for
// sub-pixel sigmas, three separable box blurs beyond) and additive sensor
// noise. It
// keeps its scratch buffers, so rendering into a reused image allocates
// nothing per frame. A Slide is immutable once built and safe for concurrent
// rendering by several Renderers.
package slide
