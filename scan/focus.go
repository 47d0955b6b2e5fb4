package scan

import (
	"errors"
	"fmt"
	"image"
	"math"
)

// Sharpness is the normalised Brenner gradient of the green channel over the
// central half of img: the mean of (G(x+2,y) - G(x,y))². It rises steeply as
// the specimen comes into focus and is cheap enough to run on every frame.
func Sharpness(img *image.RGBA) float64 {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	x0, x1 := w/4, w-w/4
	y0, y1 := h/4, h-h/4
	if x1-x0 < 3 || y1-y0 < 1 {
		return 0
	}
	var sum uint64
	for y := y0; y < y1; y++ {
		row := img.Pix[y*img.Stride:]
		for x := x0; x < x1-2; x++ {
			d := int(row[(x+2)*4+1]) - int(row[x*4+1])
			sum += uint64(d * d)
		}
	}
	return float64(sum) / float64((x1-x0-2)*(y1-y0))
}

// ErrNoFocusPeak is returned when a focus sweep shows no clear maximum.
var ErrNoFocusPeak = errors.New("autofocus: no sharpness peak")

// peakOf finds the focus in a sweep of sharpness values s taken at z values
// zs (ascending, evenly spaced). It requires a real peak: the maximum must not
// sit on either end of the sweep and must stand clearly above the sweep's
// floor. The peak position is refined with a parabola through the maximum and
// its neighbours.
func peakOf(zs, s []float64) (float64, error) {
	if len(zs) != len(s) || len(s) < 3 {
		return 0, fmt.Errorf("autofocus: need at least 3 samples, got %d", len(s))
	}
	best, lo := 0, math.Inf(1)
	for i, v := range s {
		if v > s[best] {
			best = i
		}
		lo = math.Min(lo, v)
	}
	if best == 0 || best == len(s)-1 {
		return 0, fmt.Errorf("%w: maximum at the end of the sweep (z=%.1f µm)", ErrNoFocusPeak, zs[best])
	}
	if !(s[best] > 1.15*lo) {
		return 0, fmt.Errorf("%w: flat curve (max %.3g, min %.3g)", ErrNoFocusPeak, s[best], lo)
	}
	a, b, c := s[best-1], s[best], s[best+1]
	den := a - 2*b + c
	off := 0.0
	if den < 0 {
		off = 0.5 * (a - c) / den
	}
	step := zs[best+1] - zs[best]
	return zs[best] + off*step, nil
}

// FocusMap predicts the best focus z (µm) across the slide from sparse
// autofocus points, by least squares: a constant from one point, a plane from
// three, a quadratic surface from six or more. Coordinates are centred on the
// points' mean and scaled to millimetres to keep the fit well conditioned.
//
// With enough points the map also follows what a quadratic cannot (the
// waviness of a coverslip): the residuals at the points are interpolated
// with Gaussian radial basis functions of the points' spacing, fading to
// the bare surface away from the points.
type FocusMap struct {
	cx, cy float64
	coef   []float64 // 1, x, y, x², xy, y² (as many as used)
	rms    float64   // residual RMS of the fit, µm
	n      int
	res    []FocusPoint // kernel centres and weights (Z) of the residual correction
	corrL  float64      // kernel length, µm; 0: no residual correction
}

// residualMinPoints is the fewest points for residual correction: more
// than the surface's terms, so the residuals carry information.
const residualMinPoints = 9

// withResiduals adds the residual correction for pts (see FocusMap): a
// Gaussian radial-basis interpolation of the residuals with a kernel as
// long as the points' typical spacing, lightly regularised so noise is not
// chased.
func (m *FocusMap) withResiduals(pts []FocusPoint) {
	n := len(pts)
	if n < residualMinPoints {
		return
	}
	nn := make([]float64, n)
	for i, p := range pts {
		nn[i] = math.Inf(1)
		for j, q := range pts {
			if i != j {
				nn[i] = math.Min(nn[i], math.Hypot(p.X-q.X, p.Y-q.Y))
			}
		}
	}
	L := median(nn)
	if !(L > 0) || math.IsInf(L, 0) {
		return
	}
	// Solve (K + λI) w = residuals.
	a := make([][]float64, n)
	for i, p := range pts {
		a[i] = make([]float64, n+1)
		for j, q := range pts {
			a[i][j] = math.Exp(-((p.X-q.X)*(p.X-q.X) + (p.Y-q.Y)*(p.Y-q.Y)) / (2 * L * L))
		}
		a[i][i] += rbfRegularisation
		a[i][n] = p.Z - m.surface(p.X, p.Y)
	}
	for col := range n {
		piv := col
		for r := col + 1; r < n; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		if math.Abs(a[piv][col]) < 1e-12 {
			return
		}
		a[col], a[piv] = a[piv], a[col]
		for r := range n {
			if r != col {
				f := a[r][col] / a[col][col]
				for k := col; k <= n; k++ {
					a[r][k] -= f * a[col][k]
				}
			}
		}
	}
	m.res = make([]FocusPoint, n)
	for i, p := range pts {
		m.res[i] = FocusPoint{p.X, p.Y, a[i][n] / a[i][i]}
	}
	m.corrL = L
}

// rbfRegularisation is added to the kernel's diagonal: the residual
// interpolation passes near, not exactly through, each point.
const rbfRegularisation = 0.3

// Ridge terms of the surface fit, in the units of the normal equations
// (coordinates in mm): as much weight as a point 0.3 mm (slope) or 1 mm
// (curvature) from the centre holding the term at zero.
const (
	ridgeSlope     = 0.1
	ridgeCurvature = 1.0
)

// FocusPoint is one autofocus measurement.
type FocusPoint struct {
	X, Y, Z float64 // µm
}

// FitFocusMap fits a focus surface to pts.
func FitFocusMap(pts []FocusPoint) (*FocusMap, error) {
	if len(pts) == 0 {
		return nil, errors.New("focus map: no focus points")
	}
	m := &FocusMap{n: len(pts)}
	for _, p := range pts {
		m.cx += p.X
		m.cy += p.Y
	}
	m.cx /= float64(len(pts))
	m.cy /= float64(len(pts))
	for _, terms := range []int{6, 3, 1} {
		if terms > len(pts) {
			continue
		}
		if coef, ok := m.solve(pts, terms); ok {
			m.coef = coef
			break
		}
	}
	if m.coef == nil {
		return nil, errors.New("focus map: degenerate focus points")
	}
	var ss float64
	for _, p := range pts {
		d := m.Z(p.X, p.Y) - p.Z
		ss += d * d
	}
	m.rms = math.Sqrt(ss / float64(len(pts)))
	return m, nil
}

func (m *FocusMap) basis(x, y float64, out []float64) {
	u, v := (x-m.cx)/1000, (y-m.cy)/1000
	all := [6]float64{1, u, v, u * u, u * v, v * v}
	copy(out, all[:len(out)])
}

// solve fits terms basis functions by normal equations and Gaussian
// elimination with partial pivoting; ok is false when singular.
func (m *FocusMap) solve(pts []FocusPoint, terms int) ([]float64, bool) {
	a := make([][]float64, terms)
	for i := range a {
		a[i] = make([]float64, terms+1)
	}
	row := make([]float64, terms)
	for _, p := range pts {
		m.basis(p.X, p.Y, row)
		for i := 0; i < terms; i++ {
			for j := 0; j < terms; j++ {
				a[i][j] += row[i] * row[j]
			}
			a[i][terms] += row[i] * p.Z
		}
	}
	// A light ridge: slopes and curvatures the points do not constrain
	// (points along a line, a few points after failures) stay near zero
	// instead of extrapolating wildly; a spread of points outweighs it.
	for i := 1; i < terms; i++ {
		if i < 3 {
			a[i][i] += ridgeSlope
		} else {
			a[i][i] += ridgeCurvature
		}
	}
	for col := 0; col < terms; col++ {
		piv := col
		for r := col + 1; r < terms; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[piv][col]) {
				piv = r
			}
		}
		if math.Abs(a[piv][col]) < 1e-9 {
			return nil, false
		}
		a[col], a[piv] = a[piv], a[col]
		for r := 0; r < terms; r++ {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for k := col; k <= terms; k++ {
				a[r][k] -= f * a[col][k]
			}
		}
	}
	coef := make([]float64, terms)
	for i := range coef {
		coef[i] = a[i][terms] / a[i][i]
	}
	return coef, true
}

// Z predicts the focus at (x, y) µm.
func (m *FocusMap) Z(x, y float64) float64 {
	z := m.surface(x, y)
	if m.corrL > 0 {
		for _, r := range m.res {
			d2 := ((x-r.X)*(x-r.X) + (y-r.Y)*(y-r.Y)) / (2 * m.corrL * m.corrL)
			if d2 < 20 {
				z += r.Z * math.Exp(-d2)
			}
		}
	}
	return z
}

// surface is the fitted polynomial surface alone.
func (m *FocusMap) surface(x, y float64) float64 {
	var b [6]float64
	m.basis(x, y, b[:len(m.coef)])
	z := 0.0
	for i, c := range m.coef {
		z += c * b[i]
	}
	return z
}

// RMS is the fit's residual RMS at its points, µm.
func (m *FocusMap) RMS() float64 { return m.rms }

// Terms is the number of surface terms fitted (1, 3 or 6).
func (m *FocusMap) Terms() int { return len(m.coef) }
