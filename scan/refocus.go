package scan

import "math"

// refocusPolicy is the pure part of refocusing during the tile phase: when
// a tile is refocused, and what a refocus that found the focus elsewhere
// means for the focus map. It knows no hardware, frames or clock; the
// capture loop (captureTiles) measures, asks and applies.
type refocusPolicy struct {
	drop     float64 // Options.RefocusDrop; 0 never refocuses
	max      int     // Options.RefocusMax
	step     float64 // Options.FocusStep, µm
	farApart float64 // two equal shifts this far apart move the whole focus, µm

	sharp, tissue []float64 // recent tiles: sharpness per tissue, tissue fraction
	offset        float64   // focus shift of the whole slide found so far, µm
	lastDev       float64   // shift from map+offset found by the last refocus; NaN: none
	lastAt        Point     // where
}

// refocusOutcome is what a refocus that found a peak means.
type refocusOutcome int

const (
	// refocusConfirmed: the map was right; the tile is poor in contrast.
	refocusConfirmed refocusOutcome = iota
	// refocusGlobal: the same shift twice, far apart: the whole focus
	// moved; offset now includes it and the map's local points go.
	refocusGlobal
	// refocusLocal: a local map error; the found focus becomes a point of
	// the map (at zn - offset).
	refocusLocal
)

func newRefocusPolicy(drop float64, max int, step, farApart float64) *refocusPolicy {
	return &refocusPolicy{drop: drop, max: max, step: step, farApart: farApart, lastDev: math.NaN()}
}

// enabled reports whether tiles are watched for refocusing at all.
func (p *refocusPolicy) enabled() bool { return p.drop > 0 }

// needed reports whether a tile whose middle plane has sharpness sh and
// tissue fraction tf must be refocused, done refocuses into the slide:
// it is much less sharp, per unit of tissue, than its recent neighbours,
// while it holds a fair amount of tissue (a tile with few cells is not a
// focus problem).
func (p *refocusPolicy) needed(done int, sh, tf float64) bool {
	if p.drop <= 0 || done >= p.max || len(p.sharp) < 5 {
		return false
	}
	return sh/math.Max(tf, 1e-3) < p.drop*median(p.sharp) && tf >= 0.7*median(p.tissue) && tf > 0.02
}

// observe records the sharpness and tissue fraction of a tile as it was
// finally imaged.
func (p *refocusPolicy) observe(sh, tf float64) {
	if p.drop > 0 && tf > 0.02 {
		p.sharp = pushWindow(p.sharp, sh/tf)
		p.tissue = pushWindow(p.tissue, tf)
	}
}

// found classifies a refocus at t that found the focus at zn where the
// tile was imaged at z; mapZ is the original map's focus at t.
func (p *refocusPolicy) found(t Point, z, zn, mapZ float64) refocusOutcome {
	if math.Abs(zn-z) < p.step/2 {
		return refocusConfirmed
	}
	dev := zn - mapZ - p.offset
	if !math.IsNaN(p.lastDev) && math.Abs(dev-p.lastDev) < p.step/2 && math.Sqrt(dist2(t, p.lastAt)) > p.farApart {
		p.offset += dev
		p.lastDev = math.NaN()
		return refocusGlobal
	}
	p.lastDev, p.lastAt = dev, t
	return refocusLocal
}

func pushWindow(w []float64, v float64) []float64 {
	if len(w) == sharpWindow {
		copy(w, w[1:])
		w = w[:sharpWindow-1]
	}
	return append(w, v)
}
