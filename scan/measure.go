package scan

import (
	"math"
	"time"
)

// AxisModel is one axis's motion as configured: trapezoidal moves at
// Accel (µm/s²) up to Speed (µm/s), then Settle.
type AxisModel struct {
	Speed, Accel float64
	Settle       time.Duration
}

// MoveTime is the time a trapezoidal (or, for short moves, triangular)
// move over d µm takes, without settling; 0 for an unknown model.
func (a AxisModel) MoveTime(d float64) time.Duration {
	d = math.Abs(d)
	if d == 0 || !(a.Speed > 0) || !(a.Accel > 0) {
		return 0
	}
	var t float64
	if dAcc := a.Speed * a.Speed / a.Accel; d <= dAcc { // accelerate and brake
		t = 2 * math.Sqrt(d/a.Accel)
	} else {
		t = a.Speed/a.Accel + d/a.Speed
	}
	return time.Duration(t * float64(time.Second))
}

// MotionModel is the machine's motion and camera timing as configured.
type MotionModel struct {
	X, Y, Z       AxisModel
	Exposure      time.Duration
	FrameInterval time.Duration // 1 / frame rate
	// XStepUM is one microstep of X in µm (the resolution of its position
	// reads); 0 if unknown.
	XStepUM float64
}

func (m MotionModel) known() bool {
	return m.X.Speed > 0 && m.X.Accel > 0 && m.Y.Speed > 0 && m.Y.Accel > 0
}

// LowerBound is the physical lower bound of imaging the tile plan from
// the stage position from (and focus zFrom) with the focus heights zs (one
// per tile): for each tile the slowest axis's move plus its settle (axes
// move and settle in parallel), then the exposure, and never faster than
// the camera's frame rate allows. Z-stacks add their plane moves. It is
// the time the machine cannot beat, whatever the software.
func (m MotionModel) LowerBound(from Point, zFrom float64, tiles []Point, zs []float64, planes int, planeStep float64) time.Duration {
	var total time.Duration
	p, z := from, zFrom
	for i, t := range tiles {
		step := max(m.X.MoveTime(t.X-p.X)+settleIf(m.X, t.X-p.X),
			m.Y.MoveTime(t.Y-p.Y)+settleIf(m.Y, t.Y-p.Y))
		zt := z
		if i < len(zs) {
			zt = zs[i]
		}
		if planes > 1 {
			zt -= float64(planes/2) * planeStep
		}
		step = max(step, m.Z.MoveTime(zt-z)+settleIf(m.Z, zt-z))
		step += m.Exposure
		total += max(step, m.FrameInterval)
		for k := 1; k < planes; k++ {
			total += max(m.Z.MoveTime(planeStep)+m.Z.Settle+m.Exposure, m.FrameInterval)
		}
		if planes > 1 {
			zt += float64(planes-1) * planeStep
		}
		p, z = t, zt
	}
	return total
}

func settleIf(a AxisModel, d float64) time.Duration {
	if math.Abs(d) < 0.0005 {
		return 0
	}
	return a.Settle
}

// Measures are the figures a slide's scan is judged by.
type Measures struct {
	// ScanEfficiency is the machine time of the tile phase (first tile
	// move to last exposure, including refocusing and any wait for the
	// analysis) divided by its physical lower bound (MotionModel.LowerBound
	// of the plan): 1 is the physical limit.
	ScanEfficiency float64 `json:"scan_efficiency"`
	// SlideEfficiency is the whole slide's machine time from load to
	// unload divided by the same bound: it adds the overview, the focus
	// map and the loader.
	SlideEfficiency   float64 `json:"slide_efficiency"`
	LowerBoundSeconds float64 `json:"lower_bound_seconds"`
	// SlideBoundSeconds is the slide's physical bound: the tile phase's
	// lower bound plus loading; SlideOverBound the slide's machine time
	// over it.
	SlideBoundSeconds float64 `json:"slide_bound_seconds"`
	SlideOverBound    float64 `json:"slide_over_bound"`
	TilePhaseSeconds  float64 `json:"tile_phase_seconds"`
	// AutofocusPerField is autofocus operations (focus-map points plus
	// refocuses) per planned tile.
	AutofocusPerField float64 `json:"autofocus_per_field"`
	// FramesPerAutofocus is the frames one autofocus operation took on
	// average.
	FramesPerAutofocus float64 `json:"frames_per_autofocus"`
	// FocusErrorRMS is the RMS difference between the focus each tile was
	// imaged at and the true focus there (µm); only known in simulation
	// (Options.FocusTruth), else 0.
	FocusErrorRMS float64 `json:"focus_error_rms_um"`
}
