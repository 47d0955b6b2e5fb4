package classify

import (
	"image"
	"math"
)

// Fragment rescue. A large pale nucleus (the enlarged nuclei of ASC-US,
// LSIL and HSIL cells with fine chromatin, or a nucleus on dense
// cytoplasm) can fail the nuclear mask over most of its area: only its
// chromatin clumps pass the global and local tests, and they come out as
// several components each smaller than MinAreaUM2, so the nucleus is lost.
// rescue groups such fragments that lie within FragmentGapUM of one another
// and regrows each group over the pixels denser than halfway between the
// group's surroundings and its fragments (a half-maximum contour, local to
// the group). A region that stays compact and separate from every
// accepted-size component is judged like any other component (accept).

// regrowFrac places the regrow level between the density around a fragment
// group (0) and the fragments' mean density (1). One level is used (the
// README's detector section gives the measured alternatives): a rescued
// nucleus can come out smaller than its pale body (the classifier
// re-segments it anyway).
const regrowFrac = 0.5

// rescue runs the fragment rescue over the components of the last label
// pass; t is the tile's threshold.
func (d *Detector) rescue(t uint8, w, hgt int, b image.Rectangle) {
	g := int32(d.fragGap)
	if g <= 0 {
		return
	}
	d.frags = d.frags[:0]
	d.fragOf = grow(d.fragOf, len(d.comps))
	for i := range d.comps {
		d.fragOf[i] = -1
		if d.comps[i].area < d.minArea {
			d.fragOf[i] = int32(len(d.frags))
			d.frags = append(d.frags, int32(i))
		}
	}
	nf := len(d.frags)
	if nf == 0 {
		return
	}
	fp := grow(d.fparent, nf)
	d.fparent = fp
	for i := range fp {
		fp[i] = int32(i)
	}
	// Components are numbered in order of their first run (label keeps
	// the lowest run index as a component's root), hence of their top
	// row, so a sweep down the list stops at the first fragment that
	// starts below the gap.
	for a := 0; a < nf; a++ {
		ca := &d.comps[d.frags[a]]
		for k := a + 1; k < nf; k++ {
			cb := &d.comps[d.frags[k]]
			if cb.minY > ca.maxY+g {
				break
			}
			if cb.minX <= ca.maxX+g && cb.maxX >= ca.minX-g {
				union(fp, int32(a), int32(k))
			}
		}
	}
	// Aggregate each group at its root.
	gs := grow(d.groups, nf)
	d.groups = gs
	for i := range gs {
		gs[i] = emptyStats()
	}
	for i, ci := range d.frags {
		r := find(fp, int32(i))
		c, s := &d.comps[ci], &gs[r]
		s.area += c.area
		s.sumH += c.sumH
		s.minX, s.maxX = min(s.minX, c.minX), max(s.maxX, c.maxX)
		s.minY, s.maxY = min(s.minY, c.minY), max(s.maxY, c.maxY)
	}
	for r := range gs {
		s := &gs[r]
		if find(fp, int32(r)) != int32(r) {
			continue
		}
		if s.area < d.minFragArea || s.maxX-s.minX+1 > d.maxSide || s.maxY-s.minY+1 > d.maxSide {
			continue
		}
		if cs, ok := d.regrow(int32(r), s, w, hgt); ok {
			d.accept(&cs, t, w, hgt, b)
		}
	}
}

// regrow floods, from the pixels of fragment group r (aggregate s), the
// 4-connected pixels at least halfway between the density around the group
// and the group's mean density, within the group's box padded by the gap.
// It fails if the region reaches the padded box (it leaks into cytoplasm)
// or touches a mask component that is not a fragment.
func (d *Detector) regrow(r int32, s *compStats, w, hgt int) (compStats, bool) {
	pad := 2 * int32(d.fragGap)
	x0, y0 := max(0, s.minX-pad), max(0, s.minY-pad)
	x1, y1 := min(int32(w)-1, s.maxX+pad), min(int32(hgt)-1, s.maxY+pad)
	bw, bh := int(x1-x0+1), int(y1-y0+1)
	outer := d.rectSum(x0, y0, x1+1, y1+1)
	inner := d.rectSum(s.minX, s.minY, s.maxX+1, s.maxY+1)
	on := int64(bw*bh) - int64(s.maxX-s.minX+1)*int64(s.maxY-s.minY+1)
	if on <= 0 {
		return compStats{}, false
	}
	ring := float64(outer-inner) / float64(on)
	mean := float64(s.sumH) / float64(s.area)
	tw := uint8(min(255, math.Ceil(ring+(mean-ring)*regrowFrac)))

	d.lab = grow(d.lab, bw*bh)
	lab := d.lab
	clear(lab)
	st := d.stack[:0]
	const in1 = 1
	for y := s.minY; y <= s.maxY; y++ {
		for ri := d.rowStart[y]; ri < d.rowStart[y+1]; ri++ {
			run := d.runs[ri]
			if run.x1 < s.minX || run.x0 > s.maxX {
				continue
			}
			f := d.fragOf[d.compOf[ri]]
			if f < 0 || find(d.fparent, f) != r {
				continue
			}
			for x := run.x0; x <= run.x1; x++ {
				i := int(y-y0)*bw + int(x-x0)
				lab[i] = in1
				st = append(st, int32(i))
			}
		}
	}
	cs := emptyStats()
	ok := true
	mk := d.tmp
	visit := func(j int, x, y int32) {
		switch {
		case lab[j] == in1:
			return
		case lab[j] < 0:
			cs.edges++
			return
		}
		p := int(y)*w + int(x)
		if d.h[p] < tw {
			lab[j] = -1
			cs.edges++
			return
		}
		if mk[p] != 0 {
			// A mask pixel outside the group: a fragment of another
			// group is a border; anything larger ends the rescue.
			if ci := d.compAt(x, y); ci < 0 || d.fragOf[ci] < 0 {
				ok = false
			}
			lab[j] = -1
			cs.edges++
			return
		}
		if x == x0 && x0 > 0 || x == x1 && int(x1) < w-1 || y == y0 && y0 > 0 || y == y1 && int(y1) < hgt-1 {
			ok = false // leaked to the padded box
		}
		lab[j] = in1
		st = append(st, int32(j))
	}
	for p := 0; p < len(st) && ok; p++ {
		i := int(st[p])
		ly := int32(i / bw)
		lx := int32(i) - ly*int32(bw)
		x, y := lx+x0, ly+y0
		cs.addPixel(x, y, d.h[int(y)*w+int(x)])
		if x == 0 || y == 0 || int(x) == w-1 || int(y) == hgt-1 {
			cs.edge = true
		}
		if lx > 0 {
			visit(i-1, x-1, y)
		} else {
			cs.edges++
		}
		if int(lx) < bw-1 {
			visit(i+1, x+1, y)
		} else {
			cs.edges++
		}
		if ly > 0 {
			visit(i-bw, x, y-1)
		} else {
			cs.edges++
		}
		if int(ly) < bh-1 {
			visit(i+bw, x, y+1)
		} else {
			cs.edges++
		}
	}
	d.stack = st
	return cs, ok
}

// compAt returns the component of mask pixel (x, y), or -1.
func (d *Detector) compAt(x, y int32) int32 {
	for ri := d.rowStart[y]; ri < d.rowStart[y+1]; ri++ {
		if r := d.runs[ri]; x >= r.x0 && x <= r.x1 {
			return d.compOf[ri]
		}
	}
	return -1
}
