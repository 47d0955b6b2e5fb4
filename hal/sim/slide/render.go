package slide

import (
	"image"
	"math"
	"math/rand/v2"
)

// Rendering defaults.
const (
	DefaultPixelUM    = 0.5 // µm per pixel on the specimen (a 20x objective)
	DefaultDOFUM      = 1.5 // depth of field, µm (NA about 0.4)
	DefaultNoiseSigma = 2.0 // sensor noise, DN (8-bit)
)

// Glass is the colour of bright field through clean glass (and through
// nothing at all, off the slide).
const (
	GlassR = 235
	GlassG = 235
	GlassB = 230
)

// RenderOptions configure a Renderer. Zero fields take the defaults.
type RenderOptions struct {
	PixelUM float64 // specimen µm per pixel
	// DOFUM is the depth of field λ/NA² (λ = 0.55 µm), µm; it gives the
	// objective's NA, which sets BlurPerUM when that is not set.
	DOFUM float64
	// NoiseSigma is the standard deviation of the additive sensor noise in
	// 8-bit digital numbers; negative means no noise.
	NoiseSigma float64
	// BlurPerUM is the Gaussian blur sigma (µm on the specimen) per µm of
	// defocus. Zero: the geometric cone of the objective's NA (from
	// DOFUM), tan(asin NA)/2, the sigma of a disc of radius
	// defocus·tan(asin NA) (0.22 at NA 0.4).
	BlurPerUM float64
}

func (o RenderOptions) withDefaults() RenderOptions {
	if o.PixelUM <= 0 {
		o.PixelUM = DefaultPixelUM
	}
	if o.DOFUM <= 0 {
		o.DOFUM = DefaultDOFUM
	}
	if o.NoiseSigma == 0 {
		o.NoiseSigma = DefaultNoiseSigma
	}
	if o.BlurPerUM <= 0 {
		na := math.Min(math.Sqrt(0.55/o.DOFUM), 0.95)
		o.BlurPerUM = na / math.Sqrt(1-na*na) / 2
	}
	return o
}

// BlurSigmaUM is the Gaussian blur sigma (µm on the specimen) that defocus
// adds to the focused image: BlurPerUM·|defocus|, continuous through focus
// (the focused frame is the diffraction-limited image; a Gaussian of
// sigma σ0 convolved with one of BlurPerUM·|d| is the PSF
// sqrt(σ0² + (BlurPerUM·d)²) of the usual Gaussian defocus model). So
// a focus error well inside the depth of field still softens the frame a
// little, as it does on a microscope, and tracking can see it.
func (o RenderOptions) BlurSigmaUM(defocusUM float64) float64 {
	o = o.withDefaults()
	return o.BlurPerUM * math.Abs(defocusUM)
}

// Renderer renders fields of view of slides. It keeps scratch buffers
// between frames, so it is not safe for concurrent use; use one Renderer per
// camera.
type Renderer struct {
	opts  RenderOptions
	noise [1024]int8
	tmp   []uint8
	sums  []uint32
	colT  []int32  // CRIC: a piece's column per image column
	aRow  []uint32 // per-column 3-tap weights of a varying blur
	pts   [maxCytoVerts + nucVerts]fpt
}

// NewRenderer returns a renderer with the given options.
func NewRenderer(opts RenderOptions) *Renderer {
	r := &Renderer{opts: opts.withDefaults()}
	if r.opts.NoiseSigma > 0 {
		nr := rand.New(rand.NewPCG(1, 2))
		for i := range r.noise {
			v := math.Round(nr.NormFloat64() * r.opts.NoiseSigma)
			r.noise[i] = int8(math.Max(-127, math.Min(127, v)))
		}
	}
	return r
}

// Options returns the renderer's options with defaults filled in.
func (r *Renderer) Options() RenderOptions { return r.opts }

// Render renders the slide's field of view centred at slide point (cx, cy)
// µm into dst (its bounds give the size), with the blur of defocusUM µm of
// defocus, and adds sensor noise drawn from rng (no noise if rng is nil). A
// nil slide renders an empty bright field. See the package documentation for
// the pixel-to-slide mapping. It uses the default depth of field and noise
// and allocates a Renderer per call; cameras should hold a Renderer.
func (s *Slide) Render(dst *image.RGBA, cx, cy, pixelUM, defocusUM float64, rng *rand.Rand) {
	NewRenderer(RenderOptions{PixelUM: pixelUM}).Render(s, dst, cx, cy, defocusUM, rng)
}

// Render is Slide.Render with the renderer's options and scratch buffers;
// once dst and the frame size stay the same it allocates nothing.
//
// defocusUM is the defocus at the frame's centre; across the frame it
// follows the slide's focal surface (a tilted or wavy specimen is sharper
// on one side than the other), as long as the blur stays sub-pixel
// (the 3-tap regime); beyond, the whole frame takes the centre's blur.
func (r *Renderer) Render(s *Slide, dst *image.RGBA, cx, cy, defocusUM float64, rng *rand.Rand) {
	b := dst.Bounds()
	w, h := b.Dx(), b.Dy()
	if w <= 0 || h <= 0 {
		return
	}
	v := view{
		pix: dst.Pix[dst.PixOffset(b.Min.X, b.Min.Y):], stride: dst.Stride, w: w, h: h,
		p: r.opts.PixelUM,
	}
	v.x0 = cx - float64(w)/2*v.p
	v.y0 = cy - float64(h)/2*v.p
	glass := [3]uint8{GlassR, GlassG, GlassB}
	if s != nil {
		glass = s.glass
	}
	fillGlass(&v, glass)
	if s != nil {
		if s.cric != nil {
			r.drawCRIC(s, &v)
		} else {
			r.drawShapes(s, &v)
		}
		drawDust(s, &v)
		if v.x0 < LabelWidthUM {
			drawLabel(s, &v)
		}
	}
	r.defocusBlur(s, &v, cx, cy, defocusUM)
	if rng != nil && r.opts.NoiseSigma > 0 {
		r.addNoise(&v, rng.Uint32())
	}
}

// view is the frame being rendered: pixel (i, j) is at pix[j*stride+4*i]
// and its top-left corner is at slide point (x0+i*p, y0+j*p).
type view struct {
	pix       []uint8
	stride    int
	w, h      int
	p, x0, y0 float64
}

func (v *view) px(x float64) float64 { return (x - v.x0) / v.p }
func (v *view) py(y float64) float64 { return (y - v.y0) / v.p }

func fillGlass(v *view, g [3]uint8) {
	row := v.pix[:v.w*4]
	for i := 0; i < len(row); i += 4 {
		row[i], row[i+1], row[i+2], row[i+3] = g[0], g[1], g[2], 255
	}
	for j := 1; j < v.h; j++ {
		copy(v.pix[j*v.stride:j*v.stride+v.w*4], row)
	}
}

// fpt is a point in pixel coordinates.
type fpt struct{ x, y float64 }

// forSpans calls fn(j, xa, xb) for every row j and run of pixels
// [xa, xb) whose centres lie inside the polygon (even-odd rule), clipped to
// a w x h frame.
func forSpans(pts []fpt, w, h int, fn func(j, xa, xb int)) {
	minY, maxY := pts[0].y, pts[0].y
	minX, maxX := pts[0].x, pts[0].x
	for _, p := range pts[1:] {
		minY, maxY = math.Min(minY, p.y), math.Max(maxY, p.y)
		minX, maxX = math.Min(minX, p.x), math.Max(maxX, p.x)
	}
	if maxX < 0 || minX > float64(w) {
		return
	}
	j0 := max(0, int(math.Ceil(minY-0.5)))
	j1 := min(h-1, int(math.Ceil(maxY-0.5))-1)
	var xs [maxCytoVerts + nucVerts]float64
	for j := j0; j <= j1; j++ {
		yc := float64(j) + 0.5
		n := 0
		a := pts[len(pts)-1]
		for _, b := range pts {
			if (a.y <= yc) != (b.y <= yc) && n < len(xs) {
				xs[n] = a.x + (yc-a.y)*(b.x-a.x)/(b.y-a.y)
				n++
			}
			a = b
		}
		for m := 1; m < n; m++ {
			for k := m; k > 0 && xs[k] < xs[k-1]; k-- {
				xs[k], xs[k-1] = xs[k-1], xs[k]
			}
		}
		for m := 0; m+1 < n; m += 2 {
			xa := max(0, int(math.Ceil(xs[m]-0.5)))
			xb := min(w, int(math.Ceil(xs[m+1]-0.5)))
			if xa < xb {
				fn(j, xa, xb)
			}
		}
	}
}

func mul(p uint8, f uint32) uint8 {
	v := (uint32(p)*f + 128) >> 8
	if v > 255 {
		return 255
	}
	return uint8(v)
}

// paint multiplies the pixels of the polygon by the 8.8 factors f.
func paint(v *view, pts []fpt, f [3]uint32) {
	forSpans(pts, v.w, v.h, func(j, xa, xb int) {
		row := v.pix[j*v.stride+xa*4 : j*v.stride+xb*4]
		for i := 0; i+3 < len(row); i += 4 {
			row[i] = mul(row[i], f[0])
			row[i+1] = mul(row[i+1], f[1])
			row[i+2] = mul(row[i+2], f[2])
		}
	})
}

// hash2 is a small integer hash for stable chromatin texture.
func hash2(x, y int32) uint32 {
	h := uint32(x)*0x9E3779B1 ^ uint32(y)*0x85EBCA77
	h ^= h >> 15
	h *= 0x2C1B3C6D
	h ^= h >> 12
	return h
}

func (r *Renderer) drawShapes(s *Slide, v *view) {
	x1, y1 := v.x0+float64(v.w)*v.p, v.y0+float64(v.h)*v.p
	s.grid.visit(v.x0, v.y0, x1, y1, func(i int32) {
		sh := &s.shapes[i]
		if sh.cx+sh.extent < v.x0 || sh.cx-sh.extent > x1 || sh.cy+sh.extent < v.y0 || sh.cy-sh.extent > y1 {
			return
		}
		r.drawShape(sh, v)
	})
}

func (r *Renderer) drawShape(sh *shape, v *view) {
	pc := fpt{v.px(sh.cx), v.py(sh.cy)}
	ip := 1 / v.p
	// Cytoplasm with a darker rim: the whole polygon at cytoT*rimT, then the
	// inside brightened back by 1/rimT.
	n := int(sh.ncyto)
	pts := r.pts[:n]
	var meanR float64
	for k := range n {
		c := sh.cyto[k]
		pts[k] = fpt{pc.x + float64(c.x)*ip, pc.y + float64(c.y)*ip}
		meanR += math.Hypot(float64(c.x), float64(c.y))
	}
	meanR /= float64(n)
	rim := uint32(sh.rimT)
	paint(v, pts, [3]uint32{
		uint32(sh.cytoT[0]) * rim >> 8, uint32(sh.cytoT[1]) * rim >> 8, uint32(sh.cytoT[2]) * rim >> 8,
	})
	if k := 1 - 1.0/meanR; k > 0 && 1.0/v.p > 0.5 {
		for i := range pts {
			pts[i] = fpt{pc.x + (pts[i].x-pc.x)*k, pc.y + (pts[i].y-pc.y)*k}
		}
		up := 65536 / rim
		paint(v, pts, [3]uint32{up, up, up})
	}
	nc := fpt{pc.x + float64(sh.nucCX)*ip, pc.y + float64(sh.nucCY)*ip}
	pts = r.pts[:nucVerts]
	// Koilocytic halo: a clear cavity around the nucleus, where the
	// cytoplasm's absorption is undone.
	if sh.halo > 0 {
		hs := float64(sh.halo)
		for k, c := range sh.nuc {
			pts[k] = fpt{nc.x + (float64(c.x-sh.nucCX))*ip*hs, nc.y + (float64(c.y-sh.nucCY))*ip*hs}
		}
		paint(v, pts, [3]uint32{
			65536 / uint32(max(sh.cytoT[0], 1)), 65536 / uint32(max(sh.cytoT[1], 1)), 65536 / uint32(max(sh.cytoT[2], 1)),
		})
	}
	for k, c := range sh.nuc {
		pts[k] = fpt{pc.x + float64(c.x)*ip, pc.y + float64(c.y)*ip}
	}
	// Nucleus with chromatin texture fixed to the specimen (0.5 µm grain).
	forSpans(pts, v.w, v.h, func(j, xa, xb int) {
		qy := int32(math.Floor((v.y0 + (float64(j)+0.5)*v.p) * 2))
		row := v.pix[j*v.stride:]
		for i := xa; i < xb; i++ {
			qx := int32(math.Floor((v.x0 + (float64(i)+0.5)*v.p) * 2))
			t := &sh.nucT[hash2(qx, qy)&3]
			o := i * 4
			row[o] = mul(row[o], uint32(t[0]))
			row[o+1] = mul(row[o+1], uint32(t[1]))
			row[o+2] = mul(row[o+2], uint32(t[2]))
		}
	})
}

func drawDust(s *Slide, v *view) {
	x1, y1 := v.x0+float64(v.w)*v.p, v.y0+float64(v.h)*v.p
	for _, d := range s.dust {
		if d.x+d.r < v.x0 || d.x-d.r > x1 || d.y+d.r < v.y0 || d.y-d.r > y1 {
			continue
		}
		pcx, pcy, pr := v.px(d.x), v.py(d.y), d.r/v.p
		i0, i1 := max(0, int(pcx-pr)), min(v.w-1, int(pcx+pr))
		j0, j1 := max(0, int(pcy-pr)), min(v.h-1, int(pcy+pr))
		for j := j0; j <= j1; j++ {
			dy := float64(j) + 0.5 - pcy
			for i := i0; i <= i1; i++ {
				dx := float64(i) + 0.5 - pcx
				if dx*dx+dy*dy <= pr*pr {
					o := j*v.stride + i*4
					f := uint32(d.t)
					v.pix[o], v.pix[o+1], v.pix[o+2] = mul(v.pix[o], f), mul(v.pix[o+1], f), mul(v.pix[o+2], f)
				}
			}
		}
		if pr < 0.5 { // smaller than a pixel: darken the pixel it falls in
			i, j := int(pcx), int(pcy)
			if i >= 0 && i < v.w && j >= 0 && j < v.h {
				o := j*v.stride + i*4
				f := 256 - uint32(256-uint32(d.t))*uint32(pr*2*256)>>8
				v.pix[o], v.pix[o+1], v.pix[o+2] = mul(v.pix[o], f), mul(v.pix[o+1], f), mul(v.pix[o+2], f)
			}
		}
	}
}

func drawLabel(s *Slide, v *view) {
	l := s.labelRaster()
	for j := range v.h {
		y := v.y0 + (float64(j)+0.5)*v.p
		if y < 0 || y >= HeightUM {
			continue
		}
		ly := int(y / l.umPerPx)
		if ly >= l.h {
			continue
		}
		lrow := l.pix[ly*l.w : (ly+1)*l.w]
		row := v.pix[j*v.stride:]
		for i := range v.w {
			x := v.x0 + (float64(i)+0.5)*v.p
			if x >= LabelWidthUM {
				break
			}
			if x < 0 {
				continue
			}
			lx := min(int(x/l.umPerPx), l.w-1)
			g := lrow[lx]
			o := i * 4
			row[o], row[o+1], row[o+2] = g, g, uint8(uint32(g)*250>>8)
		}
	}
}

// defocusBlur blurs the rendered view for defocusUM at its centre (cx,
// cy): per pixel with the local defocus, the slide's focal surface taken
// as its tangent plane at the centre, while every pixel's blur is
// sub-pixel; uniformly with the centre's blur otherwise.
func (r *Renderer) defocusBlur(s *Slide, v *view, cx, cy, defocusUM float64) {
	var gx, gy float64 // µm of focus per µm of stage
	if s != nil {
		const d = 50.0
		gx = (s.FocusZ(cx+d, cy) - s.FocusZ(cx-d, cy)) / (2 * d)
		gy = (s.FocusZ(cx, cy+d) - s.FocusZ(cx, cy-d)) / (2 * d)
	}
	k := r.opts.BlurPerUM / v.p // blur sigma, px per µm of defocus
	hw, hh := float64(v.w)/2*v.p, float64(v.h)/2*v.p
	// The largest |defocus| in the frame is at a corner.
	worst := math.Abs(defocusUM) + math.Abs(gx)*hw + math.Abs(gy)*hh
	if k*worst < smallBlurPx && (gx != 0 || gy != 0) {
		if k*worst >= minBlurPx {
			r.blurVarying(v, defocusUM, gx*v.p, gy*v.p, k)
		}
		return
	}
	if sigma := r.opts.BlurSigmaUM(defocusUM) / v.p; sigma >= minBlurPx {
		r.blur(v, sigma)
	}
}

// blurVarying applies the 3-tap Gaussian [a, 1-2a, a] per axis with a
// = σ²/2 of each pixel's own sigma k·|d0 - dx·(i - w/2) - dy·(j - h/2)|
// (the focus rises by dx, dy µm per pixel, so the defocus falls).
func (r *Renderer) blurVarying(v *view, d0, dx, dy, k float64) {
	n := v.w * v.h * 4
	if cap(r.tmp) < n {
		r.tmp = make([]uint8, n)
	}
	tmp := r.tmp[:n]
	ts := v.w * 4
	if cap(r.aRow) < 2*v.w {
		r.aRow = make([]uint32, 2*v.w)
	}
	a := r.aRow[:v.w]
	setRow := func(j int) {
		dj := d0 - dy*(float64(j)+0.5-float64(v.h)/2)
		for i := range a {
			d := dj - dx*(float64(i)+0.5-float64(v.w)/2)
			sg := k * d
			a[i] = uint32(sg*sg/2*65536 + 0.5)
		}
	}
	// Rows, then columns, each pixel with its own weight.
	for j := range v.h {
		setRow(j)
		row := v.pix[j*v.stride:][:ts]
		out := tmp[j*ts:][:ts]
		for i := range v.w {
			if i > 0 && i < v.w-1 {
				continue // the interior, below
			}
			l, rr := max(i-1, 0)*4, min(i+1, v.w-1)*4
			o := i * 4
			ai := a[i]
			c := 65536 - 2*ai
			for k := range 3 {
				out[o+k] = uint8((ai*(uint32(row[l+k])+uint32(row[rr+k])) + c*uint32(row[o+k]) + 1<<15) >> 16)
			}
			out[o+3] = 255
		}
		if v.w < 3 {
			continue
		}
		lf, m, rt := row[:ts-8], row[4:ts-4], row[8:]
		o := out[4 : ts-4]
		ai := a[1 : v.w-1]
		for q, aq := range ai {
			k := q * 4
			if k+3 >= len(o) || k+3 >= len(lf) || k+3 >= len(m) || k+3 >= len(rt) {
				break
			}
			c := 65536 - 2*aq
			o[k] = uint8((aq*(uint32(lf[k])+uint32(rt[k])) + c*uint32(m[k]) + 1<<15) >> 16)
			o[k+1] = uint8((aq*(uint32(lf[k+1])+uint32(rt[k+1])) + c*uint32(m[k+1]) + 1<<15) >> 16)
			o[k+2] = uint8((aq*(uint32(lf[k+2])+uint32(rt[k+2])) + c*uint32(m[k+2]) + 1<<15) >> 16)
			o[k+3] = 255
		}
	}
	for j := range v.h {
		setRow(j)
		up := tmp[max(j-1, 0)*ts:][:ts]
		mid := tmp[j*ts:][:ts]
		dn := tmp[min(j+1, v.h-1)*ts:][:ts]
		out := v.pix[j*v.stride:][:ts]
		for i := range v.w {
			ai := a[i]
			c := 65536 - 2*ai
			o := i * 4
			out[o] = uint8((ai*(uint32(up[o])+uint32(dn[o])) + c*uint32(mid[o]) + 1<<15) >> 16)
			out[o+1] = uint8((ai*(uint32(up[o+1])+uint32(dn[o+1])) + c*uint32(mid[o+1]) + 1<<15) >> 16)
			out[o+2] = uint8((ai*(uint32(up[o+2])+uint32(dn[o+2])) + c*uint32(mid[o+2]) + 1<<15) >> 16)
		}
	}
}

// minBlurPx is the smallest blur sigma (pixels) rendered: its 3-tap
// kernel's side weight σ²/2 is 1/800, under a tenth of a grey level on
// the sharpest edge. smallBlurPx is the sigma up to which the blur is one
// 3-tap Gaussian per axis (three boxes cannot make a sigma under ~0.8 px).
const (
	minBlurPx   = 0.05
	smallBlurPx = 0.8
)

// blur applies a Gaussian of the given sigma (pixels), clamping at the
// frame edges: a 3-tap kernel [a, 1-2a, a] with a = σ²/2 (variance σ²)
// per axis for small sigmas, three box blurs per axis beyond.
func (r *Renderer) blur(v *view, sigma float64) {
	n := v.w * v.h * 4
	if cap(r.tmp) < n {
		r.tmp = make([]uint8, n)
	}
	tmp := r.tmp[:n]
	ts := v.w * 4
	if sigma < smallBlurPx {
		a := uint32(math.Round(sigma * sigma / 2 * 65536))
		tap3H(v.pix, v.stride, tmp, ts, v.w, v.h, a)
		tap3V(tmp, ts, v.pix, v.stride, v.w, v.h, a)
		return
	}
	radii := boxRadii(sigma)
	boxH(v.pix, v.stride, tmp, ts, v.w, v.h, radii[0])
	boxH(tmp, ts, v.pix, v.stride, v.w, v.h, radii[1])
	boxH(v.pix, v.stride, tmp, ts, v.w, v.h, radii[2])
	if cap(r.sums) < v.w*4 {
		r.sums = make([]uint32, v.w*4)
	}
	sums := r.sums[:v.w*4]
	boxV(tmp, ts, v.pix, v.stride, v.w, v.h, radii[0], sums)
	boxV(v.pix, v.stride, tmp, ts, v.w, v.h, radii[1], sums)
	boxV(tmp, ts, v.pix, v.stride, v.w, v.h, radii[2], sums)
}

// boxRadii returns the radii of three successive box filters whose
// combined variance matches sigma² (W. Jarosz's "boxes for Gauss").
func boxRadii(sigma float64) [3]int {
	const n = 3
	wl := int(math.Floor(math.Sqrt(12*sigma*sigma/n + 1)))
	if wl%2 == 0 {
		wl--
	}
	wu := wl + 2
	m := int(math.Round((12*sigma*sigma - n*float64(wl*wl) - 4*n*float64(wl) - 3*n) / (-4*float64(wl) - 4)))
	var r [3]int
	for i := range r {
		if i < m {
			r[i] = (wl - 1) / 2
		} else {
			r[i] = (wu - 1) / 2
		}
	}
	return r
}

// tap3H filters rows with [a, 65536-2a, a]/65536, clamping at the edges.
func tap3H(src []uint8, ss int, dst []uint8, ds int, w, h int, a uint32) {
	c := 65536 - 2*a
	n := w * 4
	for j := range h {
		row := src[j*ss:][:n]
		out := dst[j*ds:][:n]
		if w < 2 {
			copy(out, row)
			continue
		}
		// Edge pixels: the missing neighbour is the pixel itself.
		for _, e := range [2][2]int{{0, 4}, {n - 4, n - 8}} {
			i, o := e[0], e[1]
			for k := range 3 {
				out[i+k] = uint8((a*(uint32(row[i+k])+uint32(row[o+k])) + c*uint32(row[i+k]) + 1<<15) >> 16)
			}
			out[i+3] = 255
		}
		l, m, r := row[:n-8], row[4:n-4], row[8:]
		o := out[4 : n-4]
		for k := 0; k+3 < len(o) && k+3 < len(l) && k+3 < len(m) && k+3 < len(r); k += 4 {
			o[k] = uint8((a*(uint32(l[k])+uint32(r[k])) + c*uint32(m[k]) + 1<<15) >> 16)
			o[k+1] = uint8((a*(uint32(l[k+1])+uint32(r[k+1])) + c*uint32(m[k+1]) + 1<<15) >> 16)
			o[k+2] = uint8((a*(uint32(l[k+2])+uint32(r[k+2])) + c*uint32(m[k+2]) + 1<<15) >> 16)
			o[k+3] = 255
		}
	}
}

// tap3V filters columns with [a, 65536-2a, a]/65536, clamping at the edges.
func tap3V(src []uint8, ss int, dst []uint8, ds int, w, h int, a uint32) {
	c := 65536 - 2*a
	n := w * 4
	for j := range h {
		up := src[max(j-1, 0)*ss:][:n]
		mid := src[j*ss:][:n]
		dn := src[min(j+1, h-1)*ss:][:n]
		out := dst[j*ds:][:n]
		for i := range out {
			out[i] = uint8((a*(uint32(up[i])+uint32(dn[i])) + c*uint32(mid[i]) + 1<<15) >> 16)
		}
	}
}

func boxH(src []uint8, ss int, dst []uint8, ds int, w, h, r int) {
	if r <= 0 {
		for j := range h {
			copy(dst[j*ds:j*ds+w*4], src[j*ss:j*ss+w*4])
		}
		return
	}
	inv := uint32((1<<16 + r) / (2*r + 1))
	last := w - 1
	for j := range h {
		row := src[j*ss : j*ss+w*4]
		out := dst[j*ds : j*ds+w*4]
		var s0, s1, s2 uint32
		for k := -r; k <= r; k++ {
			o := clampInt(k, 0, last) * 4
			s0 += uint32(row[o])
			s1 += uint32(row[o+1])
			s2 += uint32(row[o+2])
		}
		// Edges clamp; the middle, where i-r >= 0 and i+r+1 <= last, does not.
		mid0, mid1 := r, last-r-1
		i := 0
		step := func(add, sub int) {
			o := i * 4
			out[o] = uint8((s0*inv + 1<<15) >> 16)
			out[o+1] = uint8((s1*inv + 1<<15) >> 16)
			out[o+2] = uint8((s2*inv + 1<<15) >> 16)
			out[o+3] = 255
			a, b := add*4, sub*4
			s0 += uint32(row[a]) - uint32(row[b])
			s1 += uint32(row[a+1]) - uint32(row[b+1])
			s2 += uint32(row[a+2]) - uint32(row[b+2])
		}
		for ; i < w && i < mid0; i++ {
			step(min(i+r+1, last), max(i-r, 0))
		}
		if mid1 >= mid0 {
			a := row[(mid0+r+1)*4 : (mid1+r+1)*4+4]
			b := row[(mid0-r)*4 : (mid1-r)*4+4]
			o := out[mid0*4 : mid1*4+4]
			for k := 0; k+3 < len(o) && k+3 < len(a) && k+3 < len(b); k += 4 {
				o[k] = uint8((s0*inv + 1<<15) >> 16)
				o[k+1] = uint8((s1*inv + 1<<15) >> 16)
				o[k+2] = uint8((s2*inv + 1<<15) >> 16)
				o[k+3] = 255
				s0 += uint32(a[k]) - uint32(b[k])
				s1 += uint32(a[k+1]) - uint32(b[k+1])
				s2 += uint32(a[k+2]) - uint32(b[k+2])
			}
			i = mid1 + 1
		}
		for ; i < w; i++ {
			step(min(i+r+1, last), max(i-r, 0))
		}
	}
}

func boxV(src []uint8, ss int, dst []uint8, ds int, w, h, r int, sums []uint32) {
	if r <= 0 {
		for j := range h {
			copy(dst[j*ds:j*ds+w*4], src[j*ss:j*ss+w*4])
		}
		return
	}
	inv := uint32((1<<16 + r) / (2*r + 1))
	last := h - 1
	n := w * 4
	first := src[:n]
	for i := range sums {
		sums[i] = uint32(first[i]) * uint32(r+1)
	}
	for k := 1; k <= r; k++ {
		row := src[min(k, last)*ss:][:n]
		for i := range sums {
			sums[i] += uint32(row[i])
		}
	}
	for j := range h {
		out := dst[j*ds:][:n]
		add := src[min(j+r+1, last)*ss:][:n]
		sub := src[max(j-r, 0)*ss:][:n]
		for i := range sums {
			s := sums[i]
			out[i] = uint8((s*inv + 1<<15) >> 16)
			sums[i] = s + uint32(add[i]) - uint32(sub[i])
		}
	}
}

// AddNoise adds the renderer's sensor noise to dst, drawn from rng as
// Render draws it (one value of rng per frame). A camera that blurs or
// resamples a frame (motion, a rolling shutter) renders it without noise
// and adds the noise last: the sensor's noise is not smoothed by the
// scene's motion.
func (r *Renderer) AddNoise(dst *image.RGBA, rng *rand.Rand) {
	b := dst.Bounds()
	if rng == nil || r.opts.NoiseSigma <= 0 || b.Empty() {
		return
	}
	v := view{pix: dst.Pix[dst.PixOffset(b.Min.X, b.Min.Y):], stride: dst.Stride, w: b.Dx(), h: b.Dy()}
	r.addNoise(&v, rng.Uint32())
}

func (r *Renderer) addNoise(v *view, seed uint32) {
	st := seed | 1
	for j := range v.h {
		row := v.pix[j*v.stride:][:v.w*4]
		for i := 0; i < len(row); i += 4 {
			st ^= st << 13
			st ^= st >> 17
			st ^= st << 5
			row[i] = addClamp(row[i], r.noise[st&1023])
			row[i+1] = addClamp(row[i+1], r.noise[(st>>10)&1023])
			row[i+2] = addClamp(row[i+2], r.noise[(st>>20)&1023])
		}
	}
}

func addClamp(p uint8, n int8) uint8 {
	v := int32(p) + int32(n)
	if v < 0 {
		return 0
	}
	if v > 255 {
		return 255
	}
	return uint8(v)
}
