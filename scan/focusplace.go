package scan

import (
	"image"
	"math"
)

// materialMap says where the overview image shows specimen: for blocks of
// a few overview pixels around the spot, the fraction of pixels clearly
// darker than the clean glass and the preparation's faint film. The focus
// map places its points on specimen with it: an autofocus over bare glass
// finds no peak and costs a sweep for nothing.
type materialMap struct {
	x0, y0 float64 // stage position of block (0, 0)'s corner, µm
	block  float64 // block size, µm
	nx, ny int
	frac   []float32
}

// materialBlockUM is the side of a material block; materialContrast how
// many green levels (of 255) below the glass a specimen pixel is.
const (
	materialBlockUM  = 100.0
	materialContrast = 8
)

// newMaterialMap measures the specimen fraction of img's blocks in win;
// corner maps a pixel corner (i, j) to the stage. glass is the clean
// glass's green level.
func newMaterialMap(img *image.RGBA, win image.Rectangle, px float64, corner func(i, j float64) Point) *materialMap {
	win = win.Intersect(img.Rect)
	b := max(1, int(math.Round(materialBlockUM/px)))
	if win.Dx() < b || win.Dy() < b {
		return nil
	}
	// Specimen: clearly darker than the glass and than the faint film
	// of the preparation (a few levels), lighter than the holder.
	glass := glassLevel(img, win)
	hi, lo := glass-materialContrast, glass/2
	o := corner(float64(win.Min.X-img.Rect.Min.X), float64(win.Min.Y-img.Rect.Min.Y))
	m := &materialMap{x0: o.X, y0: o.Y, block: float64(b) * px, nx: win.Dx() / b, ny: win.Dy() / b}
	m.frac = make([]float32, m.nx*m.ny)
	for j := range m.ny {
		for i := range m.nx {
			dark := 0
			for y := win.Min.Y + j*b; y < win.Min.Y+(j+1)*b; y++ {
				p := img.Pix[img.PixOffset(win.Min.X+i*b, y):]
				for x := range b {
					if g := int(p[x*4+1]); g <= hi && g > lo {
						dark++
					}
				}
			}
			m.frac[j*m.nx+i] = float32(dark) / float32(b*b)
		}
	}
	return m
}

// glassLevel is the clean glass's green level in win of img: its 90th
// percentile (sampled every other pixel).
func glassLevel(img *image.RGBA, win image.Rectangle) int {
	var hist [256]int
	n := 0
	for y := win.Min.Y; y < win.Max.Y; y += 2 {
		for x := win.Min.X; x < win.Max.X; x += 2 {
			hist[img.Pix[img.PixOffset(x, y)+1]]++
			n++
		}
	}
	acc := 0
	for v := 255; v >= 0; v-- {
		acc += hist[v]
		if acc*10 >= n {
			return v
		}
	}
	return 255
}

// at is the specimen fraction of the blocks within half µm of p (0 where
// the map does not reach).
func (m *materialMap) at(p Point, half float64) float64 {
	i0 := int(math.Floor((p.X - half - m.x0) / m.block))
	i1 := int(math.Floor((p.X + half - m.x0) / m.block))
	j0 := int(math.Floor((p.Y - half - m.y0) / m.block))
	j1 := int(math.Floor((p.Y + half - m.y0) / m.block))
	var sum float64
	n := 0
	for j := j0; j <= j1; j++ {
		for i := i0; i <= i1; i++ {
			n++
			if i >= 0 && j >= 0 && i < m.nx && j < m.ny {
				sum += float64(m.frac[j*m.nx+i])
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// Focus-point placement on specimen: a point whose neighbourhood (the
// autofocus's central half of a field, materialHalfUM around it) holds
// less than materialMin specimen moves to the richest place within
// placeReach of the point spacing, on a lattice of placeStepUM, inside
// the spot, if that holds at least materialMin.
const (
	materialHalfUM = 150.0
	materialMin    = 0.3
	placeReach     = 0.35
	placeStepUM    = 100.0
)

// onMaterial moves the points of a focus-point layout (spot centre c,
// radius r) that the overview shows on bare glass to specimen nearby; mm
// nil leaves them.
func onMaterial(mm *materialMap, pts []Point, c Point, r float64) []Point {
	if mm == nil || len(pts) == 0 {
		return pts
	}
	spacing := r
	for i, p := range pts {
		for j := range i {
			spacing = math.Min(spacing, math.Sqrt(dist2(p, pts[j])))
		}
	}
	reach := placeReach * spacing
	out := make([]Point, len(pts))
	for i, p := range pts {
		out[i] = p
		best := mm.at(p, materialHalfUM)
		if best >= materialMin {
			continue
		}
		k := int(reach / placeStepUM)
		for dj := -k; dj <= k; dj++ {
			for di := -k; di <= k; di++ {
				q := Point{p.X + float64(di)*placeStepUM, p.Y + float64(dj)*placeStepUM}
				d2 := dist2(q, p)
				if d2 > reach*reach || dist2(q, c) > focusInside*focusInside*r*r {
					continue
				}
				// The richest; the nearest of equals.
				if f := mm.at(q, materialHalfUM); f > best+1e-9 || (math.Abs(f-best) <= 1e-9 && d2 < dist2(out[i], p)) {
					best, out[i] = f, q
				}
			}
		}
		if best < materialMin {
			// Nothing clearly richer nearby (an overview that shows
			// the specimen faintly, as with small cells): the grid's
			// spacing is worth more; the probe on arrival decides.
			out[i] = p
		}
	}
	return out
}
