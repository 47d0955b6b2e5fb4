package scan_test

import (
	"math"
	"sort"
	"sync"

	"papscan/classify"
	"papscan/hal/sim/slide"
	"papscan/scan"
)

// cellRecall is one scan's counted cells against its virtual slide's
// ground truth (the nuclei the slide placed), over the tiles' cores.
type cellRecall struct {
	Truth     int // ground-truth nuclei in the scanned cores
	Found     int // ... with a counted cell within matchUM of their centre
	TruthHigh int // ground-truth high-grade nuclei (ASC-H, HSIL, SCC) in the cores
	FoundHigh int // ... found and called high grade
	Counted   int // cells counted
	Spurious  int // counted cells with no ground-truth nucleus within matchUM
	// PerCore is, for each tile core (its centre, µm rounded), the
	// ground-truth nuclei in it and how many were found.
	PerCore map[[2]int]coreRecall
	// MedianOffUM is the median distance from a found nucleus to its
	// nearest counted cell (position error plus the detector's centroid).
	MedianOffUM float64
}

func (c cellRecall) recall() float64 { return float64(c.Found) / math.Max(1, float64(c.Truth)) }

// matchUM is how far a counted cell may lie from a ground-truth nucleus
// centre and still be that nucleus: its radius for a large one, at
// least 4 µm.
func matchUM(c slide.Cell) float64 { return math.Max(4, c.NucleusDiameter/2) }

// coreRecall is one tile core's ground truth, how much of it was found,
// and the summed offset (counted cell - nucleus) of the found ones.
type coreRecall struct {
	truth, found int
	dx, dy       float64
}

// seenCell is a counted cell: where, and whether it was called high grade.
type seenCell struct {
	x, y float64
	high bool
}

// cellWatch records a scan's counted cells (Options.CellsSeen) and, when
// the tile phase begins, the loaded slide's ground truth at stage
// positions.
type cellWatch struct {
	mu    sync.Mutex
	cores []scan.Point
	cells []seenCell
	truth []slide.Cell
}

// watchCells arms rig (before its scan) to record what watch keeps.
func watchCells(rig *simRig) *cellWatch {
	w := &cellWatch{}
	th := rig.options.Thresholds.HighGrade
	rig.onCells = func(cx, cy float64, cells []classify.Cell) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.cores = append(w.cores, scan.Point{X: cx, Y: cy})
		for i := range cells {
			w.cells = append(w.cells, seenCell{cells[i].StageX, cells[i].StageY, cells[i].HighGrade(th)})
		}
	}
	prev := rig.onProgress
	rig.onProgress = func(p scan.Progress) {
		if p.Phase == "scan" {
			w.mu.Lock()
			if w.truth == nil {
				w.truth, _ = rig.world.CellsTruth()
			}
			w.mu.Unlock()
		}
		if prev != nil {
			prev(p)
		}
	}
	return w
}

// grid buckets points in square cells of side g µm.
type grid[T any] struct {
	g float64
	m map[[2]int][]T
}

func newGrid[T any](g float64) *grid[T] { return &grid[T]{g: g, m: map[[2]int][]T{}} }

func (gr *grid[T]) key(x, y float64) [2]int {
	return [2]int{int(math.Floor(x / gr.g)), int(math.Floor(y / gr.g))}
}

func (gr *grid[T]) add(x, y float64, v T) { k := gr.key(x, y); gr.m[k] = append(gr.m[k], v) }

// near calls fn for every point in the 3x3 cells around (x, y).
func (gr *grid[T]) near(x, y float64, fn func(T)) {
	k := gr.key(x, y)
	for dx := -1; dx <= 1; dx++ {
		for dy := -1; dy <= 1; dy++ {
			for _, v := range gr.m[[2]int{k[0] + dx, k[1] + dy}] {
				fn(v)
			}
		}
	}
}

// measure matches the counted cells with the ground truth in the cores
// (a tile step around each core centre).
func (w *cellWatch) measure() cellRecall {
	w.mu.Lock()
	defer w.mu.Unlock()
	var r cellRecall
	// The tile steps: the smallest spacing of the core centres.
	stepX, stepY := math.Inf(1), math.Inf(1)
	for i, a := range w.cores {
		for _, b := range w.cores[i+1:] {
			dx, dy := math.Abs(a.X-b.X), math.Abs(a.Y-b.Y)
			if dy < 1 && dx > 1 {
				stepX = math.Min(stepX, dx)
			}
			if dx < 1 && dy > 1 {
				stepY = math.Min(stepY, dy)
			}
		}
	}
	r.Counted = len(w.cells)
	cores := newGrid[scan.Point](math.Max(stepX, stepY))
	for _, c := range w.cores {
		cores.add(c.X, c.Y, c)
	}
	r.PerCore = map[[2]int]coreRecall{}
	var core [2]int
	inCore := func(x, y float64) bool {
		in := false
		cores.near(x, y, func(c scan.Point) {
			if math.Abs(x-c.X) <= stepX/2 && math.Abs(y-c.Y) <= stepY/2 {
				in, core = true, [2]int{int(math.Round(c.X)), int(math.Round(c.Y))}
			}
		})
		return in
	}
	const g = 25.0 // µm, above every match radius
	seen := newGrid[seenCell](g)
	for _, c := range w.cells {
		seen.add(c.x, c.y, c)
	}
	truth := newGrid[slide.Cell](g)
	var offs []float64
	for _, t := range w.truth {
		truth.add(t.X, t.Y, t)
		if !inCore(t.X, t.Y) {
			continue
		}
		high := t.Class.Grade() == slide.HighGrade
		r.Truth++
		if high {
			r.TruthHigh++
		}
		best, calledHigh := math.Inf(1), false
		var bx, by float64
		seen.near(t.X, t.Y, func(c seenCell) {
			if d := math.Hypot(c.x-t.X, c.y-t.Y); d < best {
				best, calledHigh, bx, by = d, c.high, c.x-t.X, c.y-t.Y
			}
		})
		pc := r.PerCore[core]
		pc.truth++
		if best <= 2*matchUM(t) { // offsets also of near misses
			pc.dx += bx
			pc.dy += by
		}
		if best <= matchUM(t) {
			pc.found++
		}
		r.PerCore[core] = pc
		if best <= matchUM(t) {
			r.Found++
			offs = append(offs, best)
			if high && calledHigh {
				r.FoundHigh++
			}
		}
	}
	for _, c := range w.cells {
		ok := false
		truth.near(c.x, c.y, func(t slide.Cell) {
			ok = ok || math.Hypot(c.x-t.X, c.y-t.Y) <= matchUM(t)
		})
		if !ok {
			r.Spurious++
		}
	}
	if len(offs) > 0 {
		sort.Float64s(offs)
		r.MedianOffUM = offs[len(offs)/2]
	}
	return r
}
