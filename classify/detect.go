package classify

import (
	"image"
	"math"
)

// DefaultPixelUM is the pixel size assumed when DetectOptions.PixelUM is zero.
// It is the estimate for the stored CRIC fields (1280 px wide, 40x objective),
// on which the embedded model was trained; see doc.go.
const DefaultPixelUM = 0.25

// DetectOptions configures a Detector. Zero values select defaults.
type DetectOptions struct {
	// PixelUM is the pixel size in µm (default DefaultPixelUM).
	PixelUM float64
	// MinAreaUM2 and MaxAreaUM2 bound the area of a kept nucleus
	// (defaults 12 µm² and 900 µm²: drops debris, small neutrophil lobes and
	// large dark clumps or folds).
	MinAreaUM2, MaxAreaUM2 float64
	// Stain is the haematoxylin row of the colour-deconvolution matrix
	// (default DefaultStain).
	Stain [3]float64
	// MinThresholdOD is the lowest haematoxylin optical density accepted as
	// nuclear whatever Otsu's method says (default 0.20): a tile of clean
	// background or pale cytoplasm then yields no nuclei.
	MinThresholdOD float64
	// TissueOD is the haematoxylin density below which a pixel is treated as
	// background or unstained when computing Otsu's threshold (default 0.08).
	TissueOD float64
	// OtsuScale multiplies Otsu's threshold (default 1). Lower values grow
	// nuclei but merge neighbours; higher ones keep only dark cores.
	OtsuScale float64
	// LocalWindowUM is the side of the square window (µm) over which the local
	// mean density is taken (default 14 µm, a few nuclear diameters); a pixel
	// is nuclear only if it is also LocalOffsetOD (default 0.04) above that
	// local mean. This separates nuclei from overlapping, folded or
	// keratinised cytoplasm that is as dark as a nucleus in absolute terms.
	// A negative LocalOffsetOD disables the local test.
	LocalWindowUM, LocalOffsetOD float64
	// SurroundUM is the width of the ring around a component's bounding box
	// over which the surrounding density is measured (default 3 µm).
	SurroundUM float64
	// MinRingContrastOD: a nucleus must be at least this much denser than
	// its surrounding ring (default 0.10 OD); rejects cytoplasm folds and
	// overlaps that pass the global threshold. Negative disables.
	MinRingContrastOD float64
	// MinSurroundOD: the outer ring (SurroundUM to 2·SurroundUM beyond the
	// box) must be this much denser than the tile's background (5th
	// percentile density; default 0.03 OD): a squamous nucleus lies in its
	// cytoplasm, dark specks on bare glass (debris, bare nuclei of
	// inflammatory cells) do not. Negative disables.
	MinSurroundOD float64
	// MinFill is the lowest area / bounding-box area of a nucleus (default
	// 0: off): rejects rings and arcs of folded cytoplasm.
	MinFill float64
	// MaxElongation rejects thin streaks (default 0: off).
	MaxElongation float64
	// FoldRingOD, FoldElongation, FoldFill, FlatCoreOD: a component that
	// stands out from its surrounding ring by less than FoldRingOD (default
	// 0.20 OD) and is either a streak (elongation above FoldElongation,
	// default 3.8), a rim or arc (fills less than FoldFill of its bounding
	// box, default 0.25) or flat (circularity below 0.7 and its densest
	// pixel less than FlatCoreOD, default 0.05 OD, above its mean: no
	// chromatin core) is a fold, edge, rim or overlap of cytoplasm, not a
	// nucleus. Nuclei are compact, and the irregular ones (crowded or
	// abnormal nuclei) are hyperchromatic, so they stand out from their
	// surroundings: the test never touches a component denser than its ring
	// by FoldRingOD. A negative FoldRingOD disables the test (and the trim
	// below), a negative FlatCoreOD its flat branch.
	FoldRingOD, FoldElongation, FoldFill, FlatCoreOD float64
	// TrimCircularity (default 0.85; negative disables; off with the fold
	// test): a component less circular than this is re-thresholded for a
	// single compact core; if what lies outside the core is faint (less
	// than FoldRingOD above the surrounding ring: a fold or overlap of
	// cytoplasm attached to a nucleus, see Detector.trim) the core alone is
	// the nucleus. Unlike SplitCircularity it never cuts a component into
	// several nuclei, so a pale abnormal nucleus merged with a darker one is
	// not lost.
	TrimCircularity float64
	// SplitCircularity (default 0: off): components less circular than
	// this, or less full than MinFill, are split (see Detector.split). Off
	// by default: it loses pale abnormal nuclei merged with darker
	// neighbours (README, "The nucleus detector").
	SplitCircularity float64
	// ObjectFilter is the learned object filter applied to every detection
	// (nil: the embedded DefaultObjectFilter; see object.go). NoObjectFilter
	// turns it off, as does a negative FoldRingOD (the filter was trained on
	// the detections of the fold test's defaults, and cell-model training
	// pins the fold test off).
	ObjectFilter   *ObjectFilter
	NoObjectFilter bool
	// FragmentGapUM: components smaller than MinAreaUM2 that lie within
	// this distance (µm) of one another are grouped and regrown as one
	// candidate nucleus (default 2.5 µm; negative disables; see rescue.go):
	// the chromatin clumps of a large pale nucleus that failed the mask.
	FragmentGapUM float64
}

func (o DetectOptions) withDefaults() DetectOptions {
	if o.PixelUM <= 0 {
		o.PixelUM = DefaultPixelUM
	}
	if o.MinAreaUM2 <= 0 {
		o.MinAreaUM2 = 12
	}
	if o.MaxAreaUM2 <= 0 {
		o.MaxAreaUM2 = 900
	}
	if o.Stain == ([3]float64{}) {
		o.Stain = DefaultStain
	}
	if o.MinThresholdOD <= 0 {
		o.MinThresholdOD = 0.20
	}
	if o.LocalWindowUM <= 0 {
		o.LocalWindowUM = 14
	}
	if o.LocalOffsetOD == 0 {
		o.LocalOffsetOD = 0.06
	}
	if o.OtsuScale <= 0 {
		o.OtsuScale = 0.92
	}
	if o.TissueOD <= 0 {
		o.TissueOD = 0.08
	}
	if o.SurroundUM <= 0 {
		o.SurroundUM = 3
	}
	if o.MinRingContrastOD == 0 {
		o.MinRingContrastOD = 0.10
	}
	if o.MinSurroundOD == 0 {
		o.MinSurroundOD = 0.03
	}
	if o.FoldRingOD == 0 {
		o.FoldRingOD = 0.20
	}
	if o.FoldElongation <= 0 {
		o.FoldElongation = 3.8
	}
	if o.FoldFill <= 0 {
		o.FoldFill = 0.25
	}
	if o.TrimCircularity == 0 {
		o.TrimCircularity = 0.85
	}
	if o.FlatCoreOD == 0 {
		o.FlatCoreOD = 0.05
	}
	if o.MaxElongation <= 0 {
		o.MaxElongation = math.Inf(1)
	}
	if o.FragmentGapUM == 0 {
		o.FragmentGapUM = 2.5
	}
	return o
}

// Nucleus is one detected nucleus with its cheap shape and density features.
// Coordinates are in pixel-index units of the tile: pixel (i, j) has its
// centre at X=i, Y=j, relative to the image's Bounds().Min.
type Nucleus struct {
	X       float64         `json:"x"`
	Y       float64         `json:"y"`
	AreaPx  int             `json:"area_px"`
	AreaUM2 float64         `json:"area_um2"`
	Box     image.Rectangle `json:"box"`
	PixelUM float64         `json:"pixel_um"`
	// MeanH and MaxH are the mean and maximum haematoxylin optical density
	// (after a 3x3 box blur) over the nucleus.
	MeanH float32 `json:"mean_h"`
	MaxH  float32 `json:"max_h"`
	// Contrast is MeanH minus the tile's nuclear threshold (OD).
	Contrast float32 `json:"contrast"`
	// Perimeter is the boundary length in px (4-connected edge count × π/4).
	Perimeter float64 `json:"perimeter_px"`
	// Circularity is 4πA/P², about 1 for a disc, lower for ragged outlines.
	Circularity float32 `json:"circularity"`
	// Elongation is the major/minor axis ratio of the moment ellipse (>= 1).
	Elongation float32 `json:"elongation"`
	// RingContrast is MeanH minus the mean density of the ring around the
	// box; Surround is the outer ring's density above the tile background
	// (OD); Fill is area / bounding-box area.
	RingContrast float32 `json:"ring_contrast"`
	Surround     float32 `json:"surround"`
	Fill         float32 `json:"fill"`
	// Edge is set when the nucleus touches the tile border (it may be cut).
	Edge bool `json:"edge,omitempty"`
}

type run struct {
	x0, x1, y int32
	cov       int32 // pixels covered by runs directly above or below
}

// emptyStats is the stats of no pixel: an empty box, ready to grow.
func emptyStats() compStats {
	return compStats{minX: math.MaxInt32, minY: math.MaxInt32, maxX: -1, maxY: -1}
}

// addPixel adds pixel (x, y) of density hv to the area, moments, density
// and box (not to the edge count, which depends on the neighbours).
func (c *compStats) addPixel(x, y int32, hv uint8) {
	X, Y := int64(x), int64(y)
	c.area++
	c.sx += X
	c.sy += Y
	c.sxx += X * X
	c.syy += Y * Y
	c.sxy += X * Y
	c.sumH += int64(hv)
	c.maxH = max(c.maxH, hv)
	c.minX, c.maxX = min(c.minX, x), max(c.maxX, x)
	c.minY, c.maxY = min(c.minY, y), max(c.maxY, y)
}

type compStats struct {
	area                   int64
	sx, sy, sxx, syy, sxy  int64
	minX, minY, maxX, maxY int32
	sumH                   int64
	maxH                   uint8
	edges                  int64
	edge                   bool
}

// Detector finds nuclei in RGB tiles. It keeps its working buffers between
// calls, so a steady stream of same-sized tiles allocates nothing. A Detector
// is not safe for concurrent use: give each worker its own.
type Detector struct {
	opts      DetectOptions
	lut       *stainLUT
	minArea   int64
	maxArea   int64
	minThresh uint8
	tissue    uint8

	h, tmp   []uint8
	integ    []uint32
	radius   int
	offset   uint32
	runs     []run
	rowStart []int32
	parent   []int32
	compOf   []int32
	comps    []compStats
	out      []Nucleus
	row16    []uint16
	// split scratch
	lab    []int32
	cores  []compStats
	bg     float64 // background density (OD) of the current tile
	stack  []int32
	ringPx int

	// Threshold is the H-channel threshold (0..255) used by the last Detect.
	lastThreshold uint8

	// fragment rescue (rescue.go)
	fragGap     int
	minFragArea int64
	maxSide     int32
	frags       []int32
	fragOf      []int32
	fparent     []int32
	groups      []compStats

	// object filter (nil: off) and the last tile's geometry
	obj    *ObjectFilter
	w, hgt int
	origin image.Point
}

// NewDetector returns a Detector for the given options (zero fields take defaults).
func NewDetector(opts DetectOptions) *Detector {
	opts = opts.withDefaults()
	px2 := opts.PixelUM * opts.PixelUM
	d := &Detector{
		opts:      opts,
		lut:       newStainLUT(opts.Stain),
		minArea:   int64(math.Ceil(opts.MinAreaUM2 / px2)),
		maxArea:   int64(math.Floor(opts.MaxAreaUM2 / px2)),
		minThresh: odToH(opts.MinThresholdOD),
		tissue:    odToH(opts.TissueOD),
	}
	d.radius = max(1, int(math.Round(opts.LocalWindowUM/2/opts.PixelUM)))
	if opts.LocalOffsetOD > 0 {
		d.offset = uint32(math.Round(opts.LocalOffsetOD * hScale))
	}
	if d.minArea < 1 {
		d.minArea = 1
	}
	d.ringPx = max(1, int(math.Round(opts.SurroundUM/opts.PixelUM)))
	if opts.FragmentGapUM > 0 {
		d.fragGap = max(1, int(math.Round(opts.FragmentGapUM/opts.PixelUM)))
	}
	d.minFragArea = max(1, d.minArea/4)
	d.maxSide = int32(math.Ceil(2 * math.Sqrt(opts.MaxAreaUM2/math.Pi) / opts.PixelUM))
	if !opts.NoObjectFilter && opts.FoldRingOD > 0 {
		d.obj = opts.ObjectFilter
		if d.obj == nil {
			// A broken embedded file leaves the filter off; TestDefaultObjectFilter
			// guards it.
			d.obj, _ = DefaultObjectFilter()
		}
	}
	return d
}

// ObjectFilter returns the object filter the Detector applies (nil: off).
func (d *Detector) ObjectFilter() *ObjectFilter { return d.obj }

// Options returns the effective options (defaults filled in).
func (d *Detector) Options() DetectOptions { return d.opts }

// LastThresholdOD returns the nuclear threshold (haematoxylin OD) chosen by the
// most recent Detect call.
func (d *Detector) LastThresholdOD() float64 { return float64(d.lastThreshold) / hScale }

func odToH(od float64) uint8 {
	v := math.Round(od * hScale)
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Detect finds the nuclei in img.
//
// Method: haematoxylin density by colour deconvolution through look-up tables,
// 3x3 box blur, Otsu threshold over stained pixels (clamped below by
// MinThresholdOD), 8-connected run-length labelling with union-find, area
// filter in µm², ring-contrast, surround and fold tests; an irregular
// component carrying a faint fold is trimmed to its dense core
// (DetectOptions.TrimCircularity). Touching nuclei are not split unless
// SplitCircularity is set (they come out as one larger, less circular
// component).
//
// The returned slice is owned by the Detector and is overwritten by the next
// call: copy what you keep.
func (d *Detector) Detect(img *image.RGBA) []Nucleus {
	if d.obj == nil {
		return d.detect(img, nil, 0)
	}
	return d.detect(img, d.obj.final, d.obj.Threshold)
}

// DetectHeldOut is Detect for evaluation: field (see ObjectField) is scored
// by the object filter's cross-validation fold that did not train on it,
// or by the final filter when no fold trained on it (fold -1).
func (d *Detector) DetectHeldOut(img *image.RGBA, field string) (ns []Nucleus, fold int) {
	if d.obj == nil {
		return d.detect(img, nil, 0), -1
	}
	h, k := d.obj.head(field)
	return d.detect(img, h, d.obj.Threshold), k
}

func (d *Detector) detect(img *image.RGBA, obj *ObjectHead, objTh float64) []Nucleus {
	b := img.Bounds()
	w, hgt := b.Dx(), b.Dy()
	d.out = d.out[:0]
	if w <= 0 || hgt <= 0 {
		return d.out
	}
	n := w * hgt
	d.w, d.hgt, d.origin = w, hgt, b.Min
	d.h = grow(d.h, n)
	d.tmp = grow(d.tmp, n)
	hb, tmp := d.h, d.tmp
	lut := d.lut

	// 1. Haematoxylin channel.
	for y := 0; y < hgt; y++ {
		o := img.PixOffset(b.Min.X, b.Min.Y+y)
		row := img.Pix[o : o+4*w]
		dst := tmp[y*w : y*w+w]
		for x := range dst {
			p := row[4*x : 4*x+3 : 4*x+3]
			v := (lut.r[p[0]] + lut.g[p[1]] + lut.b[p[2]]) >> 8
			if v < 0 {
				v = 0
			} else if v > 255 {
				v = 255
			}
			dst[x] = uint8(v)
		}
	}
	// 2. 3x3 box blur (separable, edges replicated) and histogram.
	var hist [256]int32
	boxBlur3(tmp, hb, d.rowTmp(w), w, hgt, &hist)

	// Background level: 5th percentile of the density.
	{
		var acc int32
		lim := int32(n / 20)
		for v, c := range hist {
			acc += c
			if acc > lim {
				d.bg = float64(v) / hScale
				break
			}
		}
	}
	// 3. Threshold.
	t := uint8(math.Round(float64(otsu(&hist, int(d.tissue))) * d.opts.OtsuScale))
	if t < d.minThresh {
		t = d.minThresh
	}
	d.lastThreshold = t

	// 4. Nuclear mask (global and local threshold) into tmp.
	d.mask(w, hgt, t)

	// 5. Run-length labelling.
	d.label(w, hgt)

	// 6. Components → nuclei: shape and surround tests; irregular
	// components are re-thresholded (split) first.
	for i := range d.comps {
		c := &d.comps[i]
		if c.area < d.minArea || c.area > 4*d.maxArea {
			continue
		}
		if d.opts.SplitCircularity > 0 && c.area >= 2*d.minArea && c.maxH > t && !d.compact(c) {
			d.split(int32(i), c, t, w, hgt, b)
			continue
		}
		if d.opts.FoldRingOD > 0 && d.opts.TrimCircularity > 0 && c.area >= 2*d.minArea && c.maxH > t &&
			!d.compactAt(c, d.opts.TrimCircularity) && d.trim(int32(i), c, t, w, hgt, b) {
			continue
		}
		d.accept(c, t, w, hgt, b)
	}
	d.rescue(t, w, hgt, b)
	if obj != nil {
		d.filterObjects(obj, objTh)
	}
	return d.out
}

// accept turns component stats into a Nucleus and appends it to d.out if it
// passes the area, elongation and surround tests.
func (d *Detector) accept(c *compStats, t uint8, w, hgt int, b image.Rectangle) {
	if c.area < d.minArea || c.area > d.maxArea {
		return
	}
	px := d.opts.PixelUM
	a := float64(c.area)
	mx, my := float64(c.sx)/a, float64(c.sy)/a
	mu20 := float64(c.sxx)/a - mx*mx + 1.0/12
	mu02 := float64(c.syy)/a - my*my + 1.0/12
	mu11 := float64(c.sxy)/a - mx*my
	l1, l2 := ellipseAxes(mu20, mu02, mu11)
	elong := math.Sqrt(l1 / math.Max(l2, 1e-6))
	if elong > d.opts.MaxElongation {
		return
	}
	meanH := float64(c.sumH) / a / hScale
	ringMean := d.ringMean(c)
	if meanH-ringMean < d.opts.MinRingContrastOD {
		return
	}
	fill := a / float64((c.maxX-c.minX+1)*(c.maxY-c.minY+1))
	if fill < d.opts.MinFill {
		return
	}
	per := float64(c.edges) * math.Pi / 4
	circ := 4 * math.Pi * a / (per * per)
	if d.isFold(meanH-ringMean, elong, fill, circ, float64(c.maxH)/hScale-meanH) {
		return
	}
	surround := 1.0
	{
		// Outer annulus (between g and 2g beyond the box), clear of the
		// nucleus's own blur halo.
		g := int32(d.ringPx)
		x0, y0, x1, y1 := d.around(c, g)
		ox0, oy0, ox1, oy1 := d.around(c, 2*g)
		on := int64(ox1-ox0)*int64(oy1-oy0) - int64(x1-x0)*int64(y1-y0)
		if on > 0 {
			surround = float64(d.rectSum(ox0, oy0, ox1, oy1)-d.rectSum(x0, y0, x1, y1))/float64(on)/hScale - d.bg
		}
		if d.opts.MinSurroundOD >= 0 && surround < d.opts.MinSurroundOD {
			return
		}
	}
	d.out = append(d.out, Nucleus{
		X:            mx + float64(b.Min.X),
		Y:            my + float64(b.Min.Y),
		AreaPx:       int(c.area),
		AreaUM2:      a * px * px,
		Box:          image.Rect(int(c.minX), int(c.minY), int(c.maxX)+1, int(c.maxY)+1).Add(b.Min),
		PixelUM:      px,
		MeanH:        float32(meanH),
		MaxH:         float32(c.maxH) / hScale,
		Contrast:     float32(meanH - float64(t)/hScale),
		Perimeter:    per,
		Circularity:  float32(circ),
		Elongation:   float32(elong),
		RingContrast: float32(meanH - ringMean),
		Surround:     float32(surround),
		Fill:         float32(fill),
		Edge:         c.edge,
	})
}

// flatCircularity is the circularity below which a faint component must
// have a dense core (DetectOptions.FlatCoreOD).
const flatCircularity = 0.7

// isFold reports whether a component with the given ring contrast (OD),
// elongation, fill, circularity and core (densest minus mean density, OD)
// is a fold, edge, rim or flat overlap of cytoplasm (see
// DetectOptions.FoldRingOD).
func (d *Detector) isFold(ring, elong, fill, circ, core float64) bool {
	o := &d.opts
	if o.FoldRingOD <= 0 || ring >= o.FoldRingOD {
		return false
	}
	return elong > o.FoldElongation || fill < o.FoldFill ||
		o.FlatCoreOD > 0 && circ < flatCircularity && core < o.FlatCoreOD
}

// split re-thresholds an irregular component ci at rising levels between
// t and its maximum density (1/4, 1/2, 3/4 of the way). At the first level
// that leaves two or more nucleus-sized cores, the cores are grown back over
// the whole component (multi-source breadth-first: each pixel joins the
// core it is geodesically nearest to) and each region is judged as a
// nucleus: touching nuclei come apart, and a paler nucleus merged with
// darker neighbours stays covered. A single compact core replaces the
// component (a pale fold or overlap attached to a nucleus falls off).
// Otherwise the component is judged whole.
func (d *Detector) split(ci int32, c *compStats, t uint8, w, hgt int, b image.Rectangle) {
	for k := 1; k <= 3; k++ {
		t2 := t + uint8(int(c.maxH-t)*k/4)
		if t2 <= t {
			continue
		}
		n := d.cores2(ci, c, t2, w)
		if n >= 2 {
			d.grow2(c, n, w, hgt)
			for i := range d.cores {
				if d.cores[i].area > 0 {
					d.accept(&d.cores[i], t, w, hgt, b)
				}
			}
			return
		}
		if n == 0 {
			break
		}
		if d.compact(&d.cores[0]) {
			d.accept(&d.cores[0], t2, w, hgt, b)
			return
		}
	}
	d.accept(c, t, w, hgt, b)
}

// compact reports whether a component is round and full enough not to need
// splitting.
func (d *Detector) compact(c *compStats) bool {
	return d.compactAt(c, d.opts.SplitCircularity)
}

// compactAt reports whether a component is at least circ circular and
// MinFill full.
func (d *Detector) compactAt(c *compStats, circ float64) bool {
	a := float64(c.area)
	per := float64(c.edges) * math.Pi / 4
	fill := a / float64((c.maxX-c.minX+1)*(c.maxY-c.minY+1))
	return 4*math.Pi*a/(per*per) >= circ && fill >= d.opts.MinFill
}

// trim looks, at rising levels between t and the maximum density of the
// irregular component ci (1/4 and 1/2 of the way; a third level found
// nothing more on the data), for a single compact
// core. If it finds one and the part of the component outside it is faint
// (less than FoldRingOD denser than the ring around the component: a fold
// or overlap of cytoplasm attached to a nucleus), the core is judged as the
// nucleus and trim returns true. Two or more cores (touching nuclei, a pale
// nucleus beside a darker one) or a dense remainder leave the component
// whole (false).
func (d *Detector) trim(ci int32, c *compStats, t uint8, w, hgt int, b image.Rectangle) bool {
	ring := d.ringMean(c)
	if float64(t)/hScale-ring >= d.opts.FoldRingOD {
		// Every pixel of the component is at least t dense, so no
		// remainder can be faint: nothing to trim (the common case on
		// colour tiles, where the threshold is well above cytoplasm).
		return false
	}
	for k := 1; k <= 2; k++ {
		t2 := t + uint8(int(c.maxH-t)*k/4)
		if t2 <= t {
			continue
		}
		if d.cores2(ci, c, t2, w) != 1 {
			return false
		}
		core := &d.cores[0]
		if !d.compactAt(core, d.opts.TrimCircularity) {
			continue
		}
		rest := c.area - core.area
		if rest <= 0 {
			return false
		}
		restH := float64(c.sumH-core.sumH) / float64(rest) / hScale
		if restH-ring >= d.opts.FoldRingOD {
			return false
		}
		d.accept(core, t2, w, hgt, b)
		return true
	}
	return false
}

// ringMean returns the mean density (OD) of the ring of width SurroundUM
// around component c's bounding box.
func (d *Detector) ringMean(c *compStats) float64 {
	x0, y0, x1, y1 := d.around(c, int32(d.ringPx))
	n := int64(x1-x0)*int64(y1-y0) - c.area
	if n <= 0 {
		return float64(c.sumH) / float64(c.area) / hScale
	}
	return float64(d.rectSum(x0, y0, x1, y1)-c.sumH) / float64(n) / hScale
}

// around returns component c's bounding box grown by g px on every side
// and clipped to the tile, as the half-open [x0, x1)×[y0, y1).
func (d *Detector) around(c *compStats, g int32) (x0, y0, x1, y1 int32) {
	return max(0, c.minX-g), max(0, c.minY-g), min(int32(d.w), c.maxX+g+1), min(int32(d.hgt), c.maxY+g+1)
}

// rectSum is the sum of the density (H units) over the pixels
// [x0, x1)×[y0, y1) of the last tile, from its integral image (mask).
func (d *Detector) rectSum(x0, y0, x1, y1 int32) int64 {
	W := int32(d.w + 1)
	in := d.integ
	return int64(in[y1*W+x1]) - int64(in[y0*W+x1]) - int64(in[y1*W+x0]) + int64(in[y0*W+x0])
}

// cores2 labels, in d.lab over the bounding box of component ci, the
// component's pixels (-1) and its 4-connected cores at or above density t2
// that are at least minArea large (1..n); smaller cores go back to -1. The
// cores' stats are in d.cores[:n].
func (d *Detector) cores2(ci int32, c *compStats, t2 uint8, w int) int {
	bx, by := int(c.minX), int(c.minY)
	bw, bh := int(c.maxX)-bx+1, int(c.maxY)-by+1
	d.lab = grow(d.lab, bw*bh)
	lab := d.lab
	clear(lab)
	// Component pixels below t2 are -1, at or above it dense until
	// labelled as a core (1..n) or, in a too-small core, pending.
	const (
		pending = -2
		dense   = -3
	)
	for r := d.firstRun(c.minY); r < len(d.runs) && d.runs[r].y <= c.maxY; r++ {
		if d.compOf[r] != ci {
			continue
		}
		run := d.runs[r]
		lrow := lab[(int(run.y)-by)*bw : (int(run.y)-by+1)*bw]
		hrow := d.h[int(run.y)*w : int(run.y)*w+w]
		for x := run.x0; x <= run.x1; x++ {
			if hrow[x] >= t2 {
				lrow[int(x)-bx] = dense
			} else {
				lrow[int(x)-bx] = -1
			}
		}
	}
	d.cores = d.cores[:0]
	anyPending := false
	for i0, v := range lab {
		if v != dense {
			continue
		}
		id := int32(len(d.cores) + 1)
		lab[i0] = id
		st := append(d.stack[:0], int32(i0))
		cs := emptyStats()
		// visit labels neighbour j of a core pixel: a dense one joins the
		// core, anything else but the core is an edge.
		visit := func(j int) {
			switch lab[j] {
			case dense:
				lab[j] = id
				st = append(st, int32(j))
			case id:
			default:
				cs.edges++
			}
		}
		for p := 0; p < len(st); p++ {
			i := int(st[p])
			ly := i / bw
			lx := i - ly*bw
			if lx > 0 {
				visit(i - 1)
			} else {
				cs.edges++
			}
			if lx < bw-1 {
				visit(i + 1)
			} else {
				cs.edges++
			}
			if ly > 0 {
				visit(i - bw)
			} else {
				cs.edges++
			}
			if ly < bh-1 {
				visit(i + bw)
			} else {
				cs.edges++
			}
			x, y := lx+bx, ly+by
			cs.addPixel(int32(x), int32(y), d.h[y*w+x])
			if c.edge && (lx == 0 && c.minX == 0 || ly == 0 && c.minY == 0) {
				cs.edge = true
			}
		}
		if cs.area < d.minArea {
			for _, i := range st {
				lab[i] = pending // not a core; not revisited as a seed
			}
			anyPending = true
		} else {
			d.cores = append(d.cores, cs)
		}
		d.stack = st
	}
	if anyPending {
		for i, v := range lab {
			if v == pending {
				lab[i] = -1
			}
		}
	}
	return len(d.cores)
}

// grow2 assigns every unlabelled component pixel (-1) to the nearest core by
// a multi-source breadth-first search, then fills d.cores with the regions'
// stats.
func (d *Detector) grow2(c *compStats, n int, w, hgt int) {
	bx, by := int(c.minX), int(c.minY)
	bw, bh := int(c.maxX)-bx+1, int(c.maxY)-by+1
	lab := d.lab
	q := d.stack[:0]
	for i, v := range lab {
		if v > 0 {
			q = append(q, int32(i))
		}
	}
	for p := 0; p < len(q); p++ {
		i := int(q[p])
		lx, ly := i%bw, i/bw
		for k := 0; k < 4; k++ {
			nx, ny := lx, ly
			switch k {
			case 0:
				nx--
			case 1:
				nx++
			case 2:
				ny--
			case 3:
				ny++
			}
			if nx < 0 || ny < 0 || nx >= bw || ny >= bh {
				continue
			}
			j := ny*bw + nx
			if lab[j] == -1 {
				lab[j] = lab[i]
				q = append(q, int32(j))
			}
		}
	}
	d.stack = q
	_ = hgt
	d.regionStats(c, w)
}

// regionStats recomputes d.cores[k] from the pixels labelled k+1 in d.lab.
func (d *Detector) regionStats(c *compStats, w int) {
	bx, by := int(c.minX), int(c.minY)
	bw, bh := int(c.maxX)-bx+1, int(c.maxY)-by+1
	for k := range d.cores {
		d.cores[k] = emptyStats()
	}
	lab := d.lab
	for ly := 0; ly < bh; ly++ {
		for lx := 0; lx < bw; lx++ {
			v := lab[ly*bw+lx]
			if v <= 0 {
				continue
			}
			cs := &d.cores[v-1]
			x, y := lx+bx, ly+by
			cs.addPixel(int32(x), int32(y), d.h[y*w+x])
			if c.edge && (lx == 0 && c.minX == 0 || ly == 0 && c.minY == 0) {
				cs.edge = true
			}
			if lx == 0 || lab[ly*bw+lx-1] != v {
				cs.edges++
			}
			if lx == bw-1 || lab[ly*bw+lx+1] != v {
				cs.edges++
			}
			if ly == 0 || lab[(ly-1)*bw+lx] != v {
				cs.edges++
			}
			if ly == bh-1 || lab[(ly+1)*bw+lx] != v {
				cs.edges++
			}
		}
	}
}

// firstRun returns the index of the first run on row y.
func (d *Detector) firstRun(y int32) int {
	return int(d.rowStart[y])
}

func (d *Detector) rowTmp(w int) []uint16 {
	if cap(d.row16) < 3*w {
		d.row16 = make([]uint16, 3*w)
	}
	return d.row16[:3*w]
}

func ellipseAxes(mu20, mu02, mu11 float64) (l1, l2 float64) {
	m := (mu20 + mu02) / 2
	dd := math.Sqrt((mu20-mu02)*(mu20-mu02)/4 + mu11*mu11)
	return m + dd, m - dd
}

// boxBlur3 writes the 3x3 mean of src into dst and fills hist with dst's values.
func boxBlur3(src, dst []uint8, rows []uint16, w, h int, hist *[256]int32) {
	// Horizontal sums for rows y-1, y, y+1 kept in a ring of three rows.
	hsum := func(y int, out []uint16) {
		s := src[y*w : y*w+w]
		if w == 1 {
			out[0] = 3 * uint16(s[0])
			return
		}
		out[0] = 2*uint16(s[0]) + uint16(s[1])
		for x := 1; x < w-1; x++ {
			out[x] = uint16(s[x-1]) + uint16(s[x]) + uint16(s[x+1])
		}
		out[w-1] = uint16(s[w-2]) + 2*uint16(s[w-1])
	}
	r0, r1, r2 := rows[0:w], rows[w:2*w], rows[2*w:3*w]
	hsum(0, r1)
	copy(r0, r1)
	for y := 0; y < h; y++ {
		if y+1 < h {
			hsum(y+1, r2)
		} else {
			copy(r2, r1)
		}
		out := dst[y*w : y*w+w]
		a, bb, c := r0[:w], r1[:w], r2[:w]
		for x := range out {
			v := uint8((uint32(a[x]+bb[x]+c[x])*7282 + 32768) >> 16) // /9
			out[x] = v
			hist[v]++
		}
		r0, r1, r2 = r1, r2, r0
	}
}

// otsu returns Otsu's threshold over histogram bins >= lo: the returned t is
// the first level of the upper class.
func otsu(hist *[256]int32, lo int) uint8 {
	var total, sum float64
	for i := lo; i < 256; i++ {
		total += float64(hist[i])
		sum += float64(i) * float64(hist[i])
	}
	if total == 0 {
		return 255
	}
	var wB, sumB, best float64
	bestT := lo
	for i := lo; i < 255; i++ {
		wB += float64(hist[i])
		if wB == 0 {
			continue
		}
		wF := total - wB
		if wF == 0 {
			break
		}
		sumB += float64(i) * float64(hist[i])
		mB, mF := sumB/wB, (sum-sumB)/wF
		between := wB * wF * (mB - mF) * (mB - mF)
		if between > best {
			best, bestT = between, i+1
		}
	}
	return uint8(bestT)
}

func find(parent []int32, i int32) int32 {
	for parent[i] != i {
		parent[i] = parent[parent[i]]
		i = parent[i]
	}
	return i
}

func union(parent []int32, a, b int32) {
	ra, rb := find(parent, a), find(parent, b)
	if ra == rb {
		return
	}
	if ra < rb {
		parent[rb] = ra
	} else {
		parent[ra] = rb
	}
}

// mask writes 1 into d.tmp where h >= t and (unless disabled) h is at least
// d.offset above the mean of h over the local window, else 0.
func (d *Detector) mask(w, hgt int, t uint8) {
	hb, m := d.h, d.tmp
	// Integral image, (w+1)*(hgt+1), first row and column zero.
	W := w + 1
	d.integ = grow(d.integ, W*(hgt+1))
	in := d.integ
	clear(in[:W])
	for y := 0; y < hgt; y++ {
		row := hb[y*w : y*w+w]
		prev := in[y*W : y*W+W]
		cur := in[(y+1)*W : (y+1)*W+W]
		cur[0] = 0
		var s uint32
		for x, v := range row {
			s += uint32(v)
			cur[x+1] = prev[x+1] + s
		}
	}
	if d.opts.LocalOffsetOD < 0 {
		for i, v := range hb {
			m[i] = b2u(v >= t)
		}
		return
	}
	r := d.radius
	off := d.offset
	for y := 0; y < hgt; y++ {
		y0, y1 := max(0, y-r), min(hgt, y+r+1)
		top, bot := in[y0*W:y0*W+W], in[y1*W:y1*W+W]
		row := hb[y*w : y*w+w]
		mr := m[y*w : y*w+w]
		dy := uint32(y1 - y0)
		for x, v := range row {
			if v < t {
				mr[x] = 0
				continue
			}
			x0, x1 := max(0, x-r), min(w, x+r+1)
			sum := bot[x1] - bot[x0] - top[x1] + top[x0]
			cnt := dy * uint32(x1-x0)
			mr[x] = b2u(uint32(v) >= off && (uint32(v)-off)*cnt >= sum)
		}
	}
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// label finds 8-connected runs of the mask in d.tmp and accumulates
// per-component stats (densities from d.h).
func (d *Detector) label(w, hgt int) {
	hb := d.h
	mk := d.tmp
	d.runs = d.runs[:0]
	d.rowStart = grow(d.rowStart, hgt+1)
	for y := 0; y < hgt; y++ {
		d.rowStart[y] = int32(len(d.runs))
		row := mk[y*w : y*w+w]
		x := 0
		for x < w {
			for x < w && row[x] == 0 {
				x++
			}
			if x >= w {
				break
			}
			x0 := x
			for x < w && row[x] != 0 {
				x++
			}
			d.runs = append(d.runs, run{x0: int32(x0), x1: int32(x - 1), y: int32(y)})
		}
	}
	d.rowStart[hgt] = int32(len(d.runs))
	nr := len(d.runs)
	d.parent = grow(d.parent, nr)
	for i := range d.parent {
		d.parent[i] = int32(i)
	}
	runs := d.runs
	for y := 1; y < hgt; y++ {
		j := d.rowStart[y-1]
		pe := d.rowStart[y]
		for i := d.rowStart[y]; i < d.rowStart[y+1]; i++ {
			cur := &runs[i]
			for j < pe && runs[j].x1+1 < cur.x0 {
				j++
			}
			for k := j; k < pe && runs[k].x0 <= cur.x1+1; k++ {
				union(d.parent, i, k)
				lo, hi := max(cur.x0, runs[k].x0), min(cur.x1, runs[k].x1)
				if hi >= lo {
					cur.cov += hi - lo + 1
					runs[k].cov += hi - lo + 1
				}
			}
		}
	}
	// Compact component ids.
	d.compOf = grow(d.compOf, nr)
	d.comps = d.comps[:0]
	for i := 0; i < nr; i++ {
		r := find(d.parent, int32(i))
		if r == int32(i) {
			d.compOf[i] = int32(len(d.comps))
			d.comps = append(d.comps, emptyStats())
		} else {
			d.compOf[i] = d.compOf[r] // r < i, already assigned
		}
	}
	for i := range runs {
		r := &runs[i]
		c := &d.comps[d.compOf[i]]
		x0, x1, y := int64(r.x0), int64(r.x1), int64(r.y)
		n := x1 - x0 + 1
		c.area += n
		sx := (x0 + x1) * n / 2
		c.sx += sx
		c.sy += y * n
		c.sxx += s2(x1) - s2(x0-1)
		c.syy += y * y * n
		c.sxy += y * sx
		c.minX = min(c.minX, r.x0)
		c.maxX = max(c.maxX, r.x1)
		c.minY = min(c.minY, r.y)
		c.maxY = max(c.maxY, r.y)
		c.edges += 2 + 2*n - int64(r.cov)
		if r.x0 == 0 || int(r.x1) == w-1 || r.y == 0 || int(r.y) == hgt-1 {
			c.edge = true
		}
		row := hb[int(r.y)*w+int(r.x0) : int(r.y)*w+int(r.x1)+1]
		var sh int64
		mh := c.maxH
		for _, v := range row {
			sh += int64(v)
			if v > mh {
				mh = v
			}
		}
		c.sumH += sh
		c.maxH = mh
	}
}

// s2 returns 0²+1²+…+k² (0 for k < 0).
func s2(k int64) int64 {
	if k < 0 {
		return 0
	}
	return k * (k + 1) * (2*k + 1) / 6
}
