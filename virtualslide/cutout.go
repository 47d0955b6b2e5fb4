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
	// nuclearOD is the optical density above which a pixel absorbing in
	// every channel counts as nuclear.
	nuclearOD = 0.4
	// maxNucleusPx is the largest dark piece taken for a nucleus (larger
	// ones are overlapping cytoplasm): 225 µm².
	maxNucleusPx = 900
	// cutRampPx is the width over which material cut by the field's frame
	// fades out.
	cutRampPx = 12
	// cutWavePx is the depth of the cut's waves.
	cutWavePx = 50
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
		dark := true
		for ch := range 3 {
			t := rgb[p*3+ch] / bg[p*3+ch]
			if t < 1e-3 {
				t = 1e-3
			}
			d := -float32(math.Log(float64(t)))
			m = max(m, d)
			dark = dark && d > nuclearOD
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
	kept, cut := keepPieces(stained, nuclear, w, h, fnv64(f.Name))
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
// margin of glass, and the alpha of the cut where the camera's frame cut
// material: it rises from 0 at the field's border to 1 at cutRampPx inside.
// Nuclei (pixels dark in every channel) that reach into that ramp are left
// out whole, so no nucleus is cut or faded; cytoplasm cut by the frame
// fades out. The kept material is widened by dilatePx of glass, never over
// left-out material.
func keepPieces(stained, nuclear []bool, w, h int, seed uint64) (kept []bool, cut []float32) {
	// The cut runs along a rounded rectangle (a superellipse) inside the
	// frame, dented by waves up to cutWavePx deep, so that sheets cut by
	// the frame keep neither its straight edges nor its corners.
	wave := newWave(seed)
	half := float64(min(w, h)) / 2
	border := func(p int) int {
		x, y := p%w, p/w
		u := math.Abs((float64(x)+0.5)/float64(w)*2 - 1)
		v := math.Abs((float64(y)+0.5)/float64(h)*2 - 1)
		r := math.Sqrt(math.Sqrt(u*u*u*u + v*v*v*v))
		b := min(float64(min(x, y, w-1-x, h-1-y)), (1-r)*half)
		return int(math.Floor(b - cutWavePx*wave.at(float64(x), float64(y))))
	}
	nl, nboxes, nareas := components(nuclear, w, h)
	reach := make([]bool, len(nboxes))
	for p, l := range nl {
		if l >= 0 && border(p) < cutRampPx+2 && nareas[l] <= maxNucleusPx {
			reach[l] = true
		}
	}
	drop0 := make([]bool, w*h)
	for p := range drop0 {
		drop0[p] = border(p) < 1 || (nl[p] >= 0 && reach[nl[p]])
	}
	// Left out: the frame's edge and the nuclei reaching the ramp, widened
	// by 2 px.
	d0 := chamfer(drop0, w, h, false)
	dropped := make([]bool, w*h)
	keptS := make([]bool, w*h)
	for p := range dropped {
		dropped[p] = stained[p] && d0[p] <= 6
		keptS[p] = stained[p] && !dropped[p]
	}
	cut = make([]float32, w*h)
	dd := chamfer(dropped, w, h, false)
	for p := range cut {
		cut[p] = max(0, min(1, float32(min(dd[p], int32(3*border(p))))/(3*cutRampPx)))
	}
	near := chamfer(keptS, w, h, false)
	kept = make([]bool, w*h)
	for p := range kept {
		kept[p] = keptS[p] || (!dropped[p] && near[p] <= 3*dilatePx && near[p] <= dd[p])
	}
	return kept, cut
}

// wave is a smooth pseudo-random function of the plane with values in
// [0, 1] and features about 40 px across.
type wave struct{ kx, ky, ph [4]float64 }

func newWave(seed uint64) wave {
	var v wave
	for i := range 4 {
		seed = seed*6364136223846793005 + 1442695040888963407
		a := float64(seed>>11) / (1 << 53) * 2 * math.Pi
		seed = seed*6364136223846793005 + 1442695040888963407
		v.ph[i] = float64(seed>>11) / (1 << 53) * 2 * math.Pi
		k := 2 * math.Pi / (30 + 15*float64(i))
		v.kx[i], v.ky[i] = k*math.Cos(a), k*math.Sin(a)
	}
	return v
}

func (v *wave) at(x, y float64) float64 {
	s := 0.0
	for i := range 4 {
		s += math.Sin(v.kx[i]*x + v.ky[i]*y + v.ph[i])
	}
	return 0.5 + s/8
}

func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
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
