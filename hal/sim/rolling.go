package sim

import (
	"image"
	"math"
	"sort"
	"time"

	"papscan/hal/sim/slide"
)

// poseAt is the true pose at one instant.
type poseAt struct {
	t time.Time
	p [3]float64
}

// poseTrack is the true pose at known instants of a frame (the exposure's
// start, the lamp's edges, the trigger edge, the frame's end). Between
// samples the stage moves in a straight line at constant speed; before
// the first and after the last it holds.
type poseTrack []poseAt

func (tr poseTrack) at(t time.Time) [3]float64 {
	if len(tr) == 0 {
		return [3]float64{}
	}
	i := sort.Search(len(tr), func(i int) bool { return !tr[i].t.Before(t) })
	switch {
	case i == 0:
		return tr[0].p
	case i == len(tr):
		return tr[len(tr)-1].p
	}
	a, b := tr[i-1], tr[i]
	d := b.t.Sub(a.t)
	if d <= 0 {
		return b.p
	}
	f := float64(t.Sub(a.t)) / float64(d)
	var p [3]float64
	for k := range p {
		p[k] = a.p[k] + (b.p[k]-a.p[k])*f
	}
	return p
}

func (tr *poseTrack) add(t time.Time, p [3]float64) {
	*tr = append(*tr, poseAt{t, p})
	sort.SliceStable(*tr, func(i, j int) bool { return (*tr)[i].t.Before((*tr)[j].t) })
}

// addEdges adds to tr the true poses the lamp recorded at its edges
// within (t0, t1). A span cut by t0 or t1 says nothing there: the lamp
// may have been on while the stage moved and stopped again.
func addEdges(tr *poseTrack, l *Lamp, t0, t1 time.Time) {
	spans, _, _ := l.lit(t0, t1)
	for _, sp := range spans {
		if sp.Start.After(t0) {
			tr.add(sp.Start, sp.From)
		}
		if sp.End.Before(t1) {
			tr.add(sp.End, sp.To)
		}
	}
}

// frameEnd is when a frame whose first row starts exposing at start has
// been read out: the last row starts (height-1) line times later.
func (c *Camera) frameEnd(start time.Time) time.Time {
	return start.Add(time.Duration(c.opts.Height-1)*c.opts.LineTime + c.opts.Exposure)
}

// rowLight is the light of one row exposed over [a, b]: relative to a
// nominal exposure, when it is centred, and how long it lasts (the row's
// motion blur is the path over that time). Without a lamp the light is
// steady; with one it is the lamp's, as for a whole frame (readLit).
func (c *Camera) rowLight(a, b time.Time) (light float64, centre time.Time, lit time.Duration) {
	if c.opts.Lamp == nil {
		return 1, a.Add(b.Sub(a) / 2), b.Sub(a)
	}
	spans, on, full := c.opts.Lamp.lit(a, b)
	switch {
	case len(spans) == 0:
		return 0, a.Add(b.Sub(a) / 2), 0
	case on >= c.opts.Exposure*9/10:
		return float64(full) / float64(c.opts.Exposure), a.Add(b.Sub(a) / 2), on
	}
	var wsum, tsum float64
	for _, s := range spans {
		light += s.Level
		mid := float64(s.Start.Sub(a)) + float64(s.End.Sub(s.Start))/2
		wsum += s.Level
		tsum += s.Level * mid
	}
	if wsum > 0 {
		centre = a.Add(time.Duration(tsum / wsum))
	} else {
		centre = a
	}
	return light, centre, spans[len(spans)-1].End.Sub(spans[0].Start)
}

// renderRolling draws a rolling-shutter frame: row r is exposed over
// [start + r×LineTime, + Exposure] and sees the specimen at the true
// pose of its own light (its centre along the track), so a moving stage
// skews the frame; each row gets its own light (a strobe pulse lights
// only the rows exposing while it lasts). The frame is rendered once at
// the pose of its mean light and each row resampled at its own offset
// (bilinear; content beyond the rendered field repeats the edge).
func (c *Camera) renderRolling(s *slide.Slide, start time.Time, tr poseTrack) {
	h := c.opts.Height
	lights := make([]float64, h)
	centres := make([]time.Time, h)
	var sumW, sumT float64
	blurDur := time.Duration(0)
	for r := range h {
		a := start.Add(time.Duration(r) * c.opts.LineTime)
		l, ct, lit := c.rowLight(a, a.Add(c.opts.Exposure))
		lights[r], centres[r] = l, ct
		if l > 0 {
			sumW += l
			sumT += l * float64(ct.Sub(start))
			blurDur = max(blurDur, lit)
		}
	}
	ref := start.Add(time.Duration(h-1) * c.opts.LineTime / 2).Add(c.opts.Exposure / 2)
	if sumW > 0 {
		ref = start.Add(time.Duration(sumT / sumW))
	}
	pref := tr.at(ref)
	defocus := 0.0
	if s != nil {
		defocus = pref[2] - s.FocusZ(pref[0], pref[1])
	}
	// Noise last: the blur and the rows' resampling move the scene, not
	// the sensor's noise.
	c.r.Render(s, c.img, pref[0], pref[1], defocus, nil)
	px := c.opts.PixelUM
	// The blur of the row at the reference: the path over its light.
	p0, p1 := tr.at(ref.Add(-blurDur/2)), tr.at(ref.Add(blurDur/2))
	dx, dy := (p1[0]-p0[0])/px, (p1[1]-p0[1])/px
	if math.Hypot(dx, dy) >= 0.05 {
		if c.blur == nil || c.blur.Rect != c.img.Rect {
			c.blur = image.NewRGBA(c.img.Rect)
		}
		MotionBlur(c.blur, c.img, dx, dy)
		c.img, c.blur = c.blur, c.img
	}
	// Each row at its own offset from the reference, with its light.
	if c.blur == nil || c.blur.Rect != c.img.Rect {
		c.blur = image.NewRGBA(c.img.Rect)
	}
	src, dst := c.img, c.blur
	w := c.opts.Width
	first, last := -1, -1
	var offFirst, offLast [2]float64
	var meanLight float64
	for r := range h {
		p := tr.at(centres[r])
		ox, oy := (p[0]-pref[0])/px, (p[1]-pref[1])/px
		if lights[r] > 0 {
			if first < 0 {
				first, offFirst = r, [2]float64{ox, oy}
			}
			last, offLast = r, [2]float64{ox, oy}
		}
		meanLight += lights[r]
		resampleRow(dst, src, r, w, h, ox, oy, lights[r])
	}
	c.img, c.blur = dst, src
	c.r.AddNoise(c.img, c.rng)
	c.motion, c.light = [2]float64{dx, dy}, meanLight/float64(h)
	c.skew = [2]float64{offLast[0] - offFirst[0], offLast[1] - offFirst[1]}
	c.litRows = 0
	if first >= 0 {
		c.litRows = last - first + 1
	}
}

// resampleRow writes row r of dst from src shifted by (ox, oy) pixels
// (bilinear, edges repeated), scaled by light.
func resampleRow(dst, src *image.RGBA, r, w, h int, ox, oy, light float64) {
	sy := float64(r) + oy
	y0 := int(math.Floor(sy))
	fy := sy - float64(y0)
	y0c, y1c := min(max(y0, 0), h-1), min(max(y0+1, 0), h-1)
	row0 := src.Pix[y0c*src.Stride:]
	row1 := src.Pix[y1c*src.Stride:]
	out := dst.Pix[r*dst.Stride:]
	f := math.Max(light, 0)
	for x := range w {
		sx := float64(x) + ox
		x0 := int(math.Floor(sx))
		fx := sx - float64(x0)
		x0c, x1c := min(max(x0, 0), w-1), min(max(x0+1, 0), w-1)
		for k := range 3 {
			a := float64(row0[x0c*4+k])*(1-fx) + float64(row0[x1c*4+k])*fx
			b := float64(row1[x0c*4+k])*(1-fx) + float64(row1[x1c*4+k])*fx
			v := (a*(1-fy) + b*fy) * f
			out[x*4+k] = uint8(min(math.Round(v), 255))
		}
		out[x*4+3] = 255
	}
}
