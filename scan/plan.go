package scan

import (
	"errors"
	"fmt"
	"math"
)

// Point is a position on the stage in micrometres.
type Point struct{ X, Y float64 }

// TilePlan is the ordered list of tile centres covering a round cell spot.
type TilePlan struct {
	Tiles        []Point // serpentine order: rows along X, alternating direction
	Rows, Cols   int     // grid size before clipping to the spot
	StepX, StepY float64 // centre-to-centre distance, µm
	FieldW       float64 // field of view, µm
	FieldH       float64
}

// PlanTiles covers the disc (centre c, radius r µm) with fields of view of
// fieldW x fieldH µm overlapping by the fraction overlap, keeping only tiles
// that intersect the disc, in serpentine order so consecutive tiles are
// neighbours.
func PlanTiles(c Point, r, fieldW, fieldH, overlap float64) (TilePlan, error) {
	switch {
	case !(r > 0) || math.IsInf(r, 0):
		return TilePlan{}, fmt.Errorf("plan: spot radius must be > 0, got %g µm", r)
	case !(fieldW > 0) || !(fieldH > 0):
		return TilePlan{}, fmt.Errorf("plan: field of view must be > 0, got %gx%g µm", fieldW, fieldH)
	case !(overlap >= 0 && overlap < 0.5):
		return TilePlan{}, fmt.Errorf("plan: overlap must be in [0, 0.5), got %g", overlap)
	}
	p := TilePlan{
		StepX:  fieldW * (1 - overlap),
		StepY:  fieldH * (1 - overlap),
		FieldW: fieldW,
		FieldH: fieldH,
	}
	// Enough tiles that the outermost fields reach past the disc's edge.
	// Counted in float64 and checked before converting: a huge count
	// does not fit an int on 32-bit ARM (and its product overflows even
	// int64), so the limit must hold before int() sees it.
	cols := math.Max(math.Ceil((2*r-fieldW)/p.StepX)+1, 1)
	rows := math.Max(math.Ceil((2*r-fieldH)/p.StepY)+1, 1)
	if cols*rows > 1_000_000 {
		return TilePlan{}, errors.New("plan: more than a million tiles: check pixel size and spot diameter")
	}
	p.Cols, p.Rows = int(cols), int(rows)
	x0 := c.X - float64(p.Cols-1)*p.StepX/2
	y0 := c.Y - float64(p.Rows-1)*p.StepY/2
	for row := 0; row < p.Rows; row++ {
		y := y0 + float64(row)*p.StepY
		for i := 0; i < p.Cols; i++ {
			col := i
			if row%2 == 1 {
				col = p.Cols - 1 - i
			}
			x := x0 + float64(col)*p.StepX
			if rectTouchesDisc(x, y, fieldW/2, fieldH/2, c, r) {
				p.Tiles = append(p.Tiles, Point{x, y})
			}
		}
	}
	return p, nil
}

// rectTouchesDisc reports whether the rectangle centred at (x, y) with
// half-sizes hw, hh intersects the disc.
func rectTouchesDisc(x, y, hw, hh float64, c Point, r float64) bool {
	dx := math.Max(math.Abs(x-c.X)-hw, 0)
	dy := math.Max(math.Abs(y-c.Y)-hh, 0)
	return dx*dx+dy*dy <= r*r
}
