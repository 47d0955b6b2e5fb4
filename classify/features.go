package classify

import (
	"image"
	"math"
)

// NumFeatures is the length of the per-cell feature vector.
const NumFeatures = 59

// FeatureNames names the per-cell features, in vector order.
var FeatureNames = [NumFeatures]string{
	"log_area_um2", "circularity", "log_elongation", "fill_ratio",
	"mean_h", "std_h", "max_h", "texture_grad", "edge_grad", "ring_contrast",
	"nc_ratio", "cyto_orange", "nuc_blue", "nuc_od", "crowding",
	"log_area_sq", "tissue_frac", "threshold",
	"nuc_od_r", "nuc_od_g", "nuc_od_b", "cyto_od_r", "cyto_od_g", "cyto_od_b",
	"h_spread", "clump_frac", "radial_cv",
	"ring0_r", "ring0_g", "ring0_b", "ring1_r", "ring1_g", "ring1_b",
	"ring2_r", "ring2_g", "ring2_b", "ring3_r", "ring3_g", "ring3_b",
	"ring4_r", "ring4_g", "ring4_b", "ring5_r", "ring5_g", "ring5_b",
	"ring6_r", "ring6_g", "ring6_b",
	"disc_h15", "disc_h25", "disc_h35", "disc_h45", "disc_h60", "disc_h80",
	"ring0_hsd", "ring1_hsd", "ring2_hsd", "ring3_hsd", "ring4_hsd",
}

// discLevelsOD are the haematoxylin levels at which the covered fraction of
// the disc of radius discUM around the nucleus is measured (a
// segmentation-free size/darkness spectrum).
var discLevelsOD = [6]float64{0.15, 0.25, 0.35, 0.45, 0.60, 0.80}

const discUM = 10

// ringEdgesUM are the outer radii (µm) of the rings around the nucleus
// centroid over which the mean optical density per channel is measured (a
// rotation-invariant profile: nucleus size and darkness, cytoplasm colour
// and density around it).
var ringEdgesUM = [numRings]float64{1.5, 3, 4.5, 6, 8, 10, 12.5}

const numRings = 7

// Features is the hand-crafted feature vector of one cell.
type Features [NumFeatures]float32

// featureScratch holds per-call buffers of the feature extractor.
type featureScratch struct {
	raw, h []uint8
	lab    []uint8 // 1 = nucleus
	stack  []int32
	rows   []uint16
	win    *image.RGBA // resampled window (see Model.Features)
}

// extractFeatures segments the nucleus nearest (n.X, n.Y) again inside a window
// of side windowUM µm (Otsu threshold of that window, flood fill from the
// darkest pixel near the centre) and measures it and its surroundings. ok is
// false when no nucleus could be found (blank window).
func extractFeatures(img *image.RGBA, n Nucleus, lut *stainLUT, pixelUM, windowUM float64, sc *featureScratch) (f Features, ok bool) {
	px := n.PixelUM
	if px <= 0 {
		px = pixelUM
	}
	side := int(math.Round(windowUM / px))
	if side < 16 {
		side = 16
	}
	b := img.Bounds()
	cx, cy := int(math.Round(n.X)), int(math.Round(n.Y))
	win := image.Rect(cx-side/2, cy-side/2, cx-side/2+side, cy-side/2+side).Intersect(b)
	w, hgt := win.Dx(), win.Dy()
	if w < 3 || hgt < 3 {
		return f, false
	}
	np := w * hgt
	sc.raw = grow(sc.raw, np)
	sc.h = grow(sc.h, np)
	sc.lab = grow(sc.lab, np)
	if cap(sc.rows) < 3*w {
		sc.rows = make([]uint16, 3*w)
	}
	for y := 0; y < hgt; y++ {
		o := img.PixOffset(win.Min.X, win.Min.Y+y)
		row := img.Pix[o : o+4*w]
		for x := 0; x < w; x++ {
			sc.raw[y*w+x] = lut.h(row[4*x], row[4*x+1], row[4*x+2])
		}
	}
	var hist [256]int32
	boxBlur3(sc.raw, sc.h, sc.rows[:3*w], w, hgt, &hist)
	hb := sc.h
	tissue := odToH(0.08)
	t := otsu(&hist, int(tissue))
	if mt := odToH(0.20); t < mt {
		t = mt
	}

	// Seed: darkest pixel within r of the centre.
	eq := math.Sqrt(float64(max(n.AreaPx, 1)) / math.Pi)
	r := int(math.Max(2, math.Min(12, eq/2)))
	lx, ly := cx-win.Min.X, cy-win.Min.Y
	seed, best := -1, -1
	for y := max(0, ly-r); y <= min(hgt-1, ly+r); y++ {
		for x := max(0, lx-r); x <= min(w-1, lx+r); x++ {
			if (x-lx)*(x-lx)+(y-ly)*(y-ly) > r*r {
				continue
			}
			if v := int(hb[y*w+x]); v > best {
				best, seed = v, y*w+x
			}
		}
	}
	if seed < 0 || best < int(tissue) {
		return f, false
	}
	if uint8(best) < t {
		t = uint8(float64(best) * 0.85)
	}
	// Flood fill (4-connected) over h >= t.
	clear(sc.lab)
	st := append(sc.stack[:0], int32(seed))
	sc.lab[seed] = 1
	for len(st) > 0 {
		i := int(st[len(st)-1])
		st = st[:len(st)-1]
		x, y := i%w, i/w
		if x > 0 && sc.lab[i-1] == 0 && hb[i-1] >= t {
			sc.lab[i-1] = 1
			st = append(st, int32(i-1))
		}
		if x < w-1 && sc.lab[i+1] == 0 && hb[i+1] >= t {
			sc.lab[i+1] = 1
			st = append(st, int32(i+1))
		}
		if y > 0 && sc.lab[i-w] == 0 && hb[i-w] >= t {
			sc.lab[i-w] = 1
			st = append(st, int32(i-w))
		}
		if y < hgt-1 && sc.lab[i+w] == 0 && hb[i+w] >= t {
			sc.lab[i+w] = 1
			st = append(st, int32(i+w))
		}
	}
	sc.stack = st

	// Nucleus statistics.
	var area, sumH, sumH2, sumGrad, sumEdgeGrad, sumBlue, sumOD float64
	var sx, sy, sxx, syy, sxy float64
	var edges, maxH, bpx int
	var nR, nG, nB float64
	var hh [256]int32
	minX, minY, maxX, maxY := w, hgt, -1, -1
	for y := 0; y < hgt; y++ {
		o := img.PixOffset(win.Min.X, win.Min.Y+y)
		prow := img.Pix[o : o+4*w]
		for x := 0; x < w; x++ {
			i := y*w + x
			if sc.lab[i] == 0 {
				continue
			}
			v := float64(hb[i]) / hScale
			area++
			sumH += v
			sumH2 += v * v
			maxH = max(maxH, int(hb[i]))
			fx, fy := float64(x), float64(y)
			sx += fx
			sy += fy
			sxx += fx * fx
			syy += fy * fy
			sxy += fx * fy
			minX, maxX = min(minX, x), max(maxX, x)
			minY, maxY = min(minY, y), max(maxY, y)
			xl, xr, yu, yd := max(x-1, 0), min(x+1, w-1), max(y-1, 0), min(y+1, hgt-1)
			gx := float64(int(hb[y*w+xr])-int(hb[y*w+xl])) / hScale
			gy := float64(int(hb[yd*w+x])-int(hb[yu*w+x])) / hScale
			g := math.Abs(gx) + math.Abs(gy)
			sumGrad += g
			ne := 0
			if x == 0 || sc.lab[i-1] == 0 {
				ne++
			}
			if x == w-1 || sc.lab[i+1] == 0 {
				ne++
			}
			if y == 0 || sc.lab[i-w] == 0 {
				ne++
			}
			if y == hgt-1 || sc.lab[i+w] == 0 {
				ne++
			}
			if ne > 0 {
				edges += ne
				bpx++
				sumEdgeGrad += g
			}
			odR, odG, odB := odTable[prow[4*x]], odTable[prow[4*x+1]], odTable[prow[4*x+2]]
			sumBlue += float64(odR - odB)
			sumOD += float64(odR+odG+odB) / 3
			nR, nG, nB = nR+float64(odR), nG+float64(odG), nB+float64(odB)
			hh[hb[i]]++
		}
	}
	if area < 3 {
		return f, false
	}
	// Ring (bbox grown by ~3 µm) and the rest of the window.
	ring := max(2, int(math.Round(3/px)))
	rx0, ry0, rx1, ry1 := minX-ring, minY-ring, maxX+ring, maxY+ring
	var ringN, ringH, cytoN, cytoOrange, otherNuc float64
	var cR, cG, cB float64
	for y := 0; y < hgt; y++ {
		o := img.PixOffset(win.Min.X, win.Min.Y+y)
		prow := img.Pix[o : o+4*w]
		for x := 0; x < w; x++ {
			i := y*w + x
			if sc.lab[i] != 0 {
				continue
			}
			if x >= rx0 && x <= rx1 && y >= ry0 && y <= ry1 {
				ringN++
				ringH += float64(hb[i]) / hScale
			}
			if hb[i] >= t {
				otherNuc++
			}
			odR, odG, odB := odTable[prow[4*x]], odTable[prow[4*x+1]], odTable[prow[4*x+2]]
			if odR+odG+odB > 0.15 {
				cytoN++
				cytoOrange += float64(odB - odR)
				cR, cG, cB = cR+float64(odR), cG+float64(odG), cB+float64(odB)
			}
		}
	}
	meanH := sumH / area
	// H percentiles and clumping (pixels well above the nuclear mean).
	var p10, p90 int
	var acc, clump int32
	for v := range hh {
		acc += hh[v]
		if p10 == 0 && float64(acc) >= 0.1*area {
			p10 = v
		}
		if p90 == 0 && float64(acc) >= 0.9*area {
			p90 = v
		}
		if float64(v)/hScale > meanH*1.15 {
			clump += hh[v]
		}
	}
	// Radial irregularity: CV of boundary-pixel distances to the centroid.
	cxn, cyn := sx/area, sy/area
	var rs, rs2, rn float64
	for y := minY; y <= maxY; y++ {
		for x := minX; x <= maxX; x++ {
			i := y*w + x
			if sc.lab[i] == 0 {
				continue
			}
			if x == 0 || x == w-1 || y == 0 || y == hgt-1 || sc.lab[i-1] == 0 || sc.lab[i+1] == 0 || sc.lab[i-w] == 0 || sc.lab[i+w] == 0 {
				d := math.Hypot(float64(x)-cxn, float64(y)-cyn)
				rs, rs2, rn = rs+d, rs2+d*d, rn+1
			}
		}
	}
	radCV := 0.0
	if rn > 0 && rs > 0 {
		mr := rs / rn
		radCV = math.Sqrt(math.Max(0, rs2/rn-mr*mr)) / mr
	}
	cyN := math.Max(cytoN, 1)
	var ringSum [numRings][3]float64
	var ringCnt, ringH1, ringH2 [numRings]float64
	var discN float64
	var discAt [len(discLevelsOD)]float64
	var discLv [len(discLevelsOD)]uint8
	for k, od := range discLevelsOD {
		discLv[k] = odToH(od)
	}
	for y := 0; y < hgt; y++ {
		o := img.PixOffset(win.Min.X, win.Min.Y+y)
		prow := img.Pix[o : o+4*w]
		dy := (float64(y) - cyn) * px
		for x := 0; x < w; x++ {
			dx := (float64(x) - cxn) * px
			d := math.Sqrt(dx*dx + dy*dy)
			k := 0
			for k < numRings && d > ringEdgesUM[k] {
				k++
			}
			if k == numRings {
				continue
			}
			ringCnt[k]++
			hv := float64(hb[y*w+x]) / hScale
			ringH1[k] += hv
			ringH2[k] += hv * hv
			if d <= discUM {
				discN++
				for l, lv := range discLv {
					if hb[y*w+x] >= lv {
						discAt[l]++
					}
				}
			}
			ringSum[k][0] += float64(odTable[prow[4*x]])
			ringSum[k][1] += float64(odTable[prow[4*x+1]])
			ringSum[k][2] += float64(odTable[prow[4*x+2]])
		}
	}
	stdH := math.Sqrt(math.Max(0, sumH2/area-meanH*meanH))
	mx, my := sx/area, sy/area
	l1, l2 := ellipseAxes(sxx/area-mx*mx+1.0/12, syy/area-my*my+1.0/12, sxy/area-mx*my)
	per := float64(edges) * math.Pi / 4
	areaUM := area * px * px
	la := math.Log(areaUM)
	ringMean := meanH
	if ringN > 0 {
		ringMean = ringH / ringN
	}
	co := 0.0
	if cytoN > 0 {
		co = cytoOrange / cytoN
	}
	f = Features{
		float32(la),
		float32(4 * math.Pi * area / (per * per)),
		float32(0.5 * math.Log(l1/math.Max(l2, 1e-3))),
		float32(area / float64((maxX-minX+1)*(maxY-minY+1))),
		float32(meanH),
		float32(stdH),
		float32(float64(maxH) / hScale),
		float32(sumGrad / area),
		float32(sumEdgeGrad / math.Max(1, float64(bpx))),
		float32(meanH - ringMean),
		float32(area / (area + cytoN)),
		float32(co),
		float32(sumBlue / area),
		float32(sumOD / area),
		float32(otherNuc / float64(np)),
		float32(la * la),
		float32((cytoN + area) / float64(np)),
		float32(float64(t) / hScale),
		float32(nR / area), float32(nG / area), float32(nB / area),
		float32(cR / cyN), float32(cG / cyN), float32(cB / cyN),
		float32(float64(p90-p10) / hScale),
		float32(float64(clump) / area),
		float32(radCV),
	}
	for k := range numRings {
		for c := range 3 {
			if ringCnt[k] > 0 {
				f[27+3*k+c] = float32(ringSum[k][c] / ringCnt[k])
			}
		}
	}
	for l := range discAt {
		if discN > 0 {
			f[48+l] = float32(discAt[l] / discN)
		}
	}
	for k := range 5 {
		if ringCnt[k] > 0 {
			m := ringH1[k] / ringCnt[k]
			f[54+k] = float32(math.Sqrt(math.Max(0, ringH2[k]/ringCnt[k]-m*m)))
		}
	}
	return f, true
}
