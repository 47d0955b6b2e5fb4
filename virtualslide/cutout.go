package virtualslide

import (
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"math"
	"os"
	"slices"
)

// CutoutPixelUM is the pixel size of every cut-out: fields at 0.25 µm/px are
// reduced 2x by averaging 2x2 blocks, fields at 0.5 µm/px are used as they
// are.
const CutoutPixelUM = 0.5

// Cut-out parameters, in cut-out pixels (0.5 µm) and optical density.
const (
	// stainOD is the optical density (base e, most absorbing channel,
	// 3x3-smoothed) above which a pixel is stained material, not glass.
	stainOD = 0.08
	// dilatePx widens the stained mask by this margin of the field's own
	// glass around each piece, and featherPx is the width over which its
	// alpha rises from 0 to 1 inside that margin.
	dilatePx  = 5
	featherPx = 4
	// nuclearOD is the red optical density above which a pixel counts as
	// nuclear.
	nuclearOD = 0.6
	// maxNucleusPx is the largest dark piece taken for a nucleus or a
	// clump of nuclei (larger ones are overlapping cytoplasm): 500 µm².
	maxNucleusPx = 2000
	// cutRampPx is the width over which material cut by the field's frame
	// fades out.
	cutRampPx = 4
	// cutBandPx is how deep inside the frame the cut may run (60 µm), and
	// nucleusClearPx how close to a nucleus it pays not to run (6 µm).
	cutBandPx      = 120
	nucleusClearPx = 12
	// minNucleusPx is the smallest dark piece taken for a nucleus (4 µm²).
	minNucleusPx = 16
	// minPiecePx drops pieces smaller than this (after dilation): specks.
	minPiecePx = 150
)

// FactorOne is the Factor value of a pixel that leaves the glass as it is.
const FactorOne = 240

// Cutout is the placeable content of one field at CutoutPixelUM: the pieces
// of stained material (single cells, clusters, debris) that do not touch
// the field's border, each with a margin of the field's own glass whose
// alpha feathers to nothing.
type Cutout struct {
	W, H int
	// Glass is the field's own glass colour (8-bit RGB): the cut-out's
	// transmittance is the field divided by it.
	Glass [3]float64
	// Factor holds 4 bytes per pixel, row-major: the factor by which the
	// pixel multiplies the glass under it in each of R, G, B (FactorOne
	// is 1: alpha*transmittance + 1-alpha), then the alpha (0..255).
	// Outside the pieces it is FactorOne, FactorOne, FactorOne, 0.
	Factor []uint8
	// Pieces are the bounding boxes of the kept pieces.
	Pieces []image.Rectangle
	// Nuclei are the field's labelled nuclei that lie on a kept piece, in
	// cut-out pixels.
	Nuclei []KeptNucleus
	// Cut are the pixels of stained material that fade out because the
	// field's frame cut it (the composition's only boundaries inside
	// material).
	Cut []image.Point
	// Dropped counts the labelled nuclei that lie on no kept piece.
	Dropped int
}

// KeptNucleus is a labelled nucleus on a kept piece.
type KeptNucleus struct {
	Nucleus
	Piece int // index into Pieces
}

// LoadCutout decodes the field's image under dataDir and cuts it out.
func LoadCutout(dataDir string, f *Field) (*Cutout, error) {
	fh, err := os.Open(f.Path(dataDir))
	if err != nil {
		return nil, fmt.Errorf("virtualslide: field %s: %w", f.Name, err)
	}
	defer fh.Close()
	img, err := png.Decode(fh)
	if err != nil {
		return nil, fmt.Errorf("virtualslide: field %s: %w", fh.Name(), err)
	}
	return NewCutout(img, f)
}

// NewCutout cuts out img, the stored image of field f.
func NewCutout(img image.Image, f *Field) (*Cutout, error) {
	k := int(math.Round(CutoutPixelUM / f.PixelUM))
	if k < 1 || math.Abs(float64(k)*f.PixelUM-CutoutPixelUM) > 1e-9 {
		return nil, fmt.Errorf("virtualslide: field %s: pixel size %g µm is not %g µm divided by an integer", f.Name, f.PixelUM, CutoutPixelUM)
	}
	b := img.Bounds()
	w, h := b.Dx()/k, b.Dy()/k
	if w < 8 || h < 8 {
		return nil, fmt.Errorf("virtualslide: field %s: image %dx%d too small", f.Name, b.Dx(), b.Dy())
	}
	src := image.NewRGBA(b)
	draw.Draw(src, b, img, b.Min, draw.Src)
	// Reduce k x k blocks to one pixel (float RGB).
	rgb := make([]float32, w*h*3)
	inv := 1 / float32(k*k)
	for j := range h {
		for i := range w {
			var s [3]float32
			for dy := range k {
				row := src.Pix[(j*k+dy)*src.Stride:]
				for dx := range k {
					o := (i*k + dx) * 4
					s[0] += float32(row[o])
					s[1] += float32(row[o+1])
					s[2] += float32(row[o+2])
				}
			}
			o := (j*w + i) * 3
			rgb[o], rgb[o+1], rgb[o+2] = s[0]*inv, s[1]*inv, s[2]*inv
		}
	}
	bg := background(rgb, w, h)
	c := &Cutout{W: w, H: h}
	for p := range w * h {
		for ch := range 3 {
			c.Glass[ch] += float64(bg[p*3+ch]) / float64(w*h)
		}
	}
	// Optical density of the most absorbing channel, smoothed 3x3.
	od := make([]float32, w*h)
	nuclear := make([]bool, w*h)
	for p := range od {
		var m float32
		dark := false
		for ch := range 3 {
			t := rgb[p*3+ch] / bg[p*3+ch]
			if t < 1e-3 {
				t = 1e-3
			}
			d := -float32(math.Log(float64(t)))
			m = max(m, d)
			if ch == 0 { // haematoxylin absorbs red; orange and pink cytoplasm barely do
				dark = d > nuclearOD
			}
		}
		od[p] = m
		nuclear[p] = dark
	}
	stained := make([]bool, w*h)
	smooth := make([]float32, w*h)
	for j := range h {
		for i := range w {
			var s float32
			n := 0
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					x, y := i+dx, j+dy
					if x >= 0 && x < w && y >= 0 && y < h {
						s += od[y*w+x]
						n++
					}
				}
			}
			smooth[j*w+i] = s / float32(n)
			stained[j*w+i] = s/float32(n) > stainOD
		}
	}
	kept, cut := keepPieces(stained, nuclear, smooth, w, h)
	label, boxes, areas := components(kept, w, h)
	keep := make([]int, len(boxes)) // piece index or -1
	for i, r := range boxes {
		keep[i] = -1
		if areas[i] < minPiecePx {
			continue
		}
		keep[i] = len(c.Pieces)
		c.Pieces = append(c.Pieces, r)
	}
	for p, l := range label {
		kept[p] = l >= 0 && keep[l] >= 0
	}
	inside := chamfer(kept, w, h, true) // distance to the outside of the kept pieces
	c.Factor = make([]uint8, w*h*4)
	for p := range kept {
		o := p * 4
		if !kept[p] {
			c.Factor[o], c.Factor[o+1], c.Factor[o+2], c.Factor[o+3] = FactorOne, FactorOne, FactorOne, 0
			continue
		}
		a := min(1, float32(inside[p])/(3*featherPx), cut[p])
		if a < 1 && stained[p] {
			c.Cut = append(c.Cut, image.Pt(p%w, p/w))
		}
		for ch := range 3 {
			t := min(rgb[p*3+ch]/bg[p*3+ch], 1.06)
			c.Factor[o+ch] = uint8(math.Round(float64(FactorOne * (1 - a*(1-t)))))
		}
		c.Factor[o+3] = uint8(math.Round(float64(a * 255)))
	}
	for _, n := range f.Nuclei {
		x, y := n.X/float64(k), n.Y/float64(k)
		i, j := int(x), int(y)
		if i < 0 || i >= w || j < 0 || j >= h || label[j*w+i] < 0 || keep[label[j*w+i]] < 0 {
			c.Dropped++
			continue
		}
		c.Nuclei = append(c.Nuclei, KeptNucleus{Nucleus: Nucleus{X: x, Y: y, Class: n.Class}, Piece: keep[label[j*w+i]]})
	}
	return c, nil
}

// keepPieces returns the placeable part of a field's stained mask, with its
// margin of glass, and the alpha of the cut. The field's frame cut the
// specimen anywhere, through cells and nuclei; the cut-out instead ends
// along a closed line inside the frame chosen to cross as little material
// as possible and to keep clear of nuclei: the cheapest path around the
// field's centre through a band up to cutBandPx deep inside a rounded
// rectangle (dynamic programming over rays), where a pixel costs its
// optical density plus a penalty near nucleus-sized dark pieces. Material
// outside the line is left out, and so is, with a bite of the material
// around it, a nucleus the line passes within nucleusClearPx; material
// inside fades out over cutRampPx at the line.
func keepPieces(stained, nuclear []bool, od []float32, w, h int) (kept []bool, cut []float32) {
	// Nearness to nuclei.
	nl, _, nareas := components(nuclear, w, h)
	nuc := make([]bool, w*h)
	for p, l := range nl {
		nuc[p] = l >= 0 && nareas[l] >= minNucleusPx && nareas[l] <= maxNucleusPx
	}
	dn := chamfer(nuc, w, h, false)
	cost := func(x, y int) float64 {
		x, y = min(max(x, 0), w-1), min(max(y, 0), h-1)
		p := y*w + x
		c := float64(od[p])
		if d := float64(dn[p]) / 3; d < nucleusClearPx {
			c += 4 * (1 - d/nucleusClearPx)
		}
		return c
	}
	// Rays from the centre to a superellipse |u|⁴+|v|⁴ = 1 two pixels
	// inside the frame.
	const na = 1440
	cx, cy := float64(w)/2, float64(h)/2
	ax, ay := cx-2, cy-2
	rmax := make([]float64, na)
	dirs := make([][2]float64, na)
	for a := range na {
		t := 2 * math.Pi * float64(a) / na
		c, sn := math.Cos(t), math.Sin(t)
		dirs[a] = [2]float64{c, sn}
		rmax[a] = 1 / math.Sqrt(math.Sqrt(math.Pow(math.Abs(c)/ax, 4)+math.Pow(math.Abs(sn)/ay, 4)))
	}
	depth := min(cutBandPx, int(math.Min(ax, ay)/2))
	const inf = math.MaxFloat64 / 4
	acc := make([]float64, na*depth)
	from := make([]int8, na*depth)
	run := func(start int) (int, float64) {
		for d := range depth {
			acc[d] = inf
			if start < 0 || d == start {
				acc[d] = 0
			}
		}
		for a := 1; a < na; a++ {
			for d := range depth {
				best, bk := inf, int8(0)
				for k := -1; k <= 1; k++ {
					if e := d + k; e >= 0 && e < depth {
						v := acc[(a-1)*depth+e]
						if k != 0 {
							v += 0.05
						}
						if v < best {
							best, bk = v, int8(k)
						}
					}
				}
				r := rmax[a] - float64(d)
				acc[a*depth+d] = best + cost(int(cx+r*dirs[a][0]), int(cy+r*dirs[a][1])) + 0.002*float64(d)
				from[a*depth+d] = bk
			}
		}
		end, bestv := 0, inf
		for d := range depth {
			if v := acc[(na-1)*depth+d]; v < bestv && (start < 0 || abs(d-start) <= 1) {
				end, bestv = d, v
			}
		}
		return end, bestv
	}
	end, _ := run(-1)
	end, _ = run(end)
	line := make([]float64, na) // radius of the line along each ray
	for a, d := na-1, end; a >= 0; a-- {
		line[a] = rmax[a] - float64(d)
		d += int(from[a*depth+d])
	}
	inside := make([]float64, w*h) // radial distance inside the line, px
	for y := range h {
		for x := range w {
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			t := math.Atan2(dy, dx)
			if t < 0 {
				t += 2 * math.Pi
			}
			a := int(math.Round(t/(2*math.Pi)*na)) % na
			inside[y*w+x] = line[a] - math.Hypot(dx, dy)
		}
	}
	dropped := make([]bool, w*h)
	keptS := make([]bool, w*h)
	for p := range dropped {
		dropped[p] = stained[p] && inside[p] <= 0
		keptS[p] = stained[p] && inside[p] > 0
	}
	// Where even the cheapest line runs within nucleusClearPx of a nucleus
	// (sheets packed with nuclei), the nucleus is left out with the
	// material around it, a bite out of the sheet's edge; a few rounds,
	// as a bite may bring the edge near the next nucleus.
	dd := chamfer(dropped, w, h, false)
	for range 3 {
		bite := make([]bool, w*h)
		any := false
		for p := range bite {
			if nuc[p] && keptS[p] && float64(dd[p]) < 3*nucleusClearPx {
				bite[p], any = true, true
			}
		}
		if !any {
			break
		}
		db := chamfer(bite, w, h, false)
		for p := range bite {
			if keptS[p] && db[p] <= 3*nucleusClearPx/2 {
				keptS[p], dropped[p] = false, true
			}
		}
		dd = chamfer(dropped, w, h, false)
	}
	cut = make([]float32, w*h)
	for p := range cut {
		cut[p] = float32(max(0, min(1, min(float64(dd[p])/3, inside[p])/cutRampPx)))
	}
	near := chamfer(keptS, w, h, false)
	kept = make([]bool, w*h)
	for p := range kept {
		kept[p] = keptS[p] || (!dropped[p] && near[p] <= 3*dilatePx && near[p] <= dd[p])
	}
	return kept, cut
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// background estimates the glass under every pixel of a w x h float RGB
// image (the illumination falls off towards the corners by several per
// cent): per channel, a quadratic surface fitted to the brightest values of
// 20 µm blocks, leaving out blocks darker than the surface (covered by
// cells) in a few rounds. It falls back to a flat glass when too few blocks
// show glass.
func background(rgb []float32, w, h int) []float32 {
	const block = 40
	nbx, nby := max(1, w/block), max(1, h/block)
	type blk struct {
		x, y float64 // centre, normalised to [-1, 1]
		v    [3]float64
		lum  float64
	}
	var bs []blk
	var vals [3][]float32
	for by := range nby {
		for bx := range nbx {
			x0, y0 := bx*w/nbx, by*h/nby
			x1, y1 := (bx+1)*w/nbx, (by+1)*h/nby
			for ch := range 3 {
				vals[ch] = vals[ch][:0]
			}
			for y := y0; y < y1; y++ {
				for x := x0; x < x1; x++ {
					for ch := range 3 {
						vals[ch] = append(vals[ch], rgb[(y*w+x)*3+ch])
					}
				}
			}
			b := blk{x: (float64(x0+x1)/2/float64(w))*2 - 1, y: (float64(y0+y1)/2/float64(h))*2 - 1}
			for ch := range 3 {
				slices.Sort(vals[ch])
				b.v[ch] = float64(vals[ch][len(vals[ch])*9/10])
				b.lum += b.v[ch]
			}
			bs = append(bs, b)
		}
	}
	// Fit z = c0 + c1 x + c2 y + c3 x² + c4 y² + c5 xy on the kept blocks,
	// by luminance; then per channel on the final set.
	terms := func(x, y float64) [6]float64 { return [6]float64{1, x, y, x * x, y * y, x * y} }
	fit := func(keep []bool, val func(b *blk) float64) ([6]float64, bool) {
		var a [6][7]float64
		n := 0
		for i := range bs {
			if !keep[i] {
				continue
			}
			n++
			t := terms(bs[i].x, bs[i].y)
			z := val(&bs[i])
			for r := range 6 {
				for c := range 6 {
					a[r][c] += t[r] * t[c]
				}
				a[r][6] += t[r] * z
			}
		}
		if n < 12 {
			return [6]float64{}, false
		}
		return solve6(a)
	}
	keep := make([]bool, len(bs))
	for i := range keep {
		keep[i] = true
	}
	lum := func(b *blk) float64 { return b.lum }
	ok := true
	for range 6 {
		c, good := fit(keep, lum)
		if !good {
			ok = false
			break
		}
		// Keep the blocks within 2 % below the surface or above it.
		for i := range bs {
			t := terms(bs[i].x, bs[i].y)
			z := 0.0
			for k := range 6 {
				z += c[k] * t[k]
			}
			keep[i] = bs[i].lum >= 0.98*z
		}
	}
	var coef [3][6]float64
	if ok {
		for ch := range 3 {
			c, good := fit(keep, func(b *blk) float64 { return b.v[ch] })
			if !good {
				ok = false
				break
			}
			coef[ch] = c
		}
	}
	if !ok { // flat: the brightest blocks' median
		slices.SortFunc(bs, func(a, b blk) int { return cmpFloat(b.lum, a.lum) })
		top := bs[:max(1, len(bs)/10)]
		for ch := range 3 {
			coef[ch] = [6]float64{top[len(top)/2].v[ch]}
		}
	}
	out := make([]float32, w*h*3)
	for y := range h {
		fy := ((float64(y)+0.5)/float64(h))*2 - 1
		for x := range w {
			t := terms(((float64(x)+0.5)/float64(w))*2-1, fy)
			for ch := range 3 {
				z := 0.0
				for k := range 6 {
					z += coef[ch][k] * t[k]
				}
				out[(y*w+x)*3+ch] = float32(min(255, max(z, 8)))
			}
		}
	}
	return out
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// solve6 solves the 6x6 linear system of the augmented matrix a by Gaussian
// elimination with partial pivoting.
func solve6(a [6][7]float64) ([6]float64, bool) {
	for c := range 6 {
		p := c
		for r := c + 1; r < 6; r++ {
			if math.Abs(a[r][c]) > math.Abs(a[p][c]) {
				p = r
			}
		}
		if math.Abs(a[p][c]) < 1e-9 {
			return [6]float64{}, false
		}
		a[c], a[p] = a[p], a[c]
		for r := range 6 {
			if r == c {
				continue
			}
			f := a[r][c] / a[c][c]
			for k := c; k < 7; k++ {
				a[r][k] -= f * a[c][k]
			}
		}
	}
	var x [6]float64
	for r := range 6 {
		x[r] = a[r][6] / a[r][r]
	}
	return x, true
}

// chamfer returns the 3-4 chamfer distance (3 per pixel step) of every
// pixel to the nearest pixel whose in value differs from inv's negation:
// with inv false, the distance to the nearest true pixel; with inv true,
// the distance (inside true regions) to the nearest false pixel or the
// image border.
func chamfer(in []bool, w, h int, inv bool) []int32 {
	const inf = math.MaxInt32 / 2
	d := make([]int32, w*h)
	for p, v := range in {
		if v != inv {
			d[p] = 0
		} else {
			d[p] = inf
		}
	}
	at := func(x, y int) int32 {
		if x < 0 || x >= w || y < 0 || y >= h {
			if inv {
				return 0
			}
			return inf
		}
		return d[y*w+x]
	}
	for y := range h {
		for x := range w {
			p := y*w + x
			if d[p] == 0 {
				continue
			}
			v := d[p]
			v = min(v, at(x-1, y)+3, at(x, y-1)+3, at(x-1, y-1)+4, at(x+1, y-1)+4)
			d[p] = v
		}
	}
	for y := h - 1; y >= 0; y-- {
		for x := w - 1; x >= 0; x-- {
			p := y*w + x
			if d[p] == 0 {
				continue
			}
			v := d[p]
			v = min(v, at(x+1, y)+3, at(x, y+1)+3, at(x+1, y+1)+4, at(x-1, y+1)+4)
			d[p] = v
		}
	}
	return d
}

// components labels the 8-connected true regions of m; label is -1 off
// them. It returns each region's bounding box and area.
func components(m []bool, w, h int) (label []int32, boxes []image.Rectangle, areas []int) {
	label = make([]int32, w*h)
	for p := range label {
		label[p] = -1
	}
	var stack []int32
	for p0, v := range m {
		if !v || label[p0] >= 0 {
			continue
		}
		id := int32(len(boxes))
		r := image.Rect(p0%w, p0/w, p0%w+1, p0/w+1)
		area := 0
		label[p0] = id
		stack = append(stack[:0], int32(p0))
		for len(stack) > 0 {
			p := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			area++
			x, y := p%w, p/w
			r = r.Union(image.Rect(x, y, x+1, y+1))
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					nx, ny := x+dx, y+dy
					if nx < 0 || nx >= w || ny < 0 || ny >= h {
						continue
					}
					q := ny*w + nx
					if m[q] && label[q] < 0 {
						label[q] = id
						stack = append(stack, int32(q))
					}
				}
			}
		}
		boxes = append(boxes, r)
		areas = append(areas, area)
	}
	return label, boxes, areas
}

// Image draws the cut-out under flip f on flat glass of the given colour:
// what the slide shows of one use of the field, before blur and noise.
func (c *Cutout) Image(f Flip, glass [3]uint8) *image.RGBA {
	w, h := f.Size(c.W, c.H)
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for j := range h {
		for i := range w {
			si, sj := f.Pixel(i, j, c.W, c.H)
			s := c.Factor[(sj*c.W+si)*4:]
			o := j*img.Stride + i*4
			for ch := range 3 {
				img.Pix[o+ch] = Apply(glass[ch], s[ch])
			}
			img.Pix[o+3] = 255
		}
	}
	return img
}

// Apply multiplies an 8-bit value by a Factor byte.
func Apply(p, factor uint8) uint8 {
	v := (uint32(p)*uint32(factor)*(65536/FactorOne) + 32768) >> 16
	return uint8(min(v, 255))
}
