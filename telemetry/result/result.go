package result

import (
	"time"

	"papscan/classify"
	"papscan/scan"
)

// Version is the result message's schema version (schema_version).
const Version = 1

// Message is one slide's result as the fleet receives it.
type Message struct {
	SchemaVersion int    `json:"schema_version"`
	ResultID      string `json:"result_id"`
	SlideID       string `json:"slide_id"`
	RobotID       string `json:"robot_id"`
	Magazine      string `json:"magazine"`
	Slot          int    `json:"slot"`
	Label         Label  `json:"label"`
	// Verdict: NILM, LOW_GRADE, HIGH_GRADE, INCOMPLETE or UNSATISFACTORY.
	// A slide that was not fully imaged is INCOMPLETE, never negative.
	Verdict string `json:"verdict"`
	// Flags name what needs a person's attention (label_unreadable,
	// spot_nominal, interrupted, selftest_failed).
	Flags       []string `json:"flags,omitempty"`
	Rerun       bool     `json:"rerun"`
	RerunReason string   `json:"rerun_reason,omitempty"`
	// Supersedes is the result this one replaces.
	Supersedes    string   `json:"supersedes,omitempty"`
	TilesPlanned  int      `json:"tiles_planned"`
	TilesCaptured int      `json:"tiles_captured"`
	TilesAnalysed int      `json:"tiles_analysed"`
	TilesMissing  int      `json:"tiles_missing"`
	Frames        int      `json:"frames"`
	Spot          Spot     `json:"spot"`
	Focus         Focus    `json:"focus"`
	Measures      Measures `json:"measures"`
	// Fly has the on-the-fly scan's figures; absent for stop-and-go.
	Fly        *Fly      `json:"fly,omitempty"`
	Result     Slide     `json:"result"`
	Timing     Timing    `json:"timing"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Error      string    `json:"error,omitempty"`
}

// Label is what was read from the slide's label.
type Label struct {
	Read   bool   `json:"read"`
	Text   string `json:"text,omitempty"`
	Format string `json:"format,omitempty"` // code128, datamatrix, qr
	Reason string `json:"reason,omitempty"` // why it was not read
}

// Spot is the cell spot that was scanned.
type Spot struct {
	CenterXUM    float64 `json:"center_x_um"`
	CenterYUM    float64 `json:"center_y_um"`
	DiameterUM   float64 `json:"diameter_um"`
	Found        bool    `json:"found"` // false: the nominal spot was used
	Probes       int     `json:"probes"`
	FromOverview bool    `json:"from_overview"`
}

// Focus describes how the focus map was built.
type Focus struct {
	Points       int          `json:"points"`
	Failed       int          `json:"failed"`
	Rejected     int          `json:"rejected"`
	AutofocusOps int          `json:"autofocus_ops"`
	Refocus      int          `json:"refocus"`
	Frames       int          `json:"frames"`
	ErrorRMSUM   float64      `json:"error_rms_um"`
	SurfaceTerms int          `json:"surface_terms"`
	FitRMSUM     float64      `json:"fit_rms_um"`
	Map          []FocusPoint `json:"map,omitempty"`
}

// FocusPoint is one point of the focus map, in stage micrometres.
type FocusPoint struct {
	XUM float64 `json:"x_um"`
	YUM float64 `json:"y_um"`
	ZUM float64 `json:"z_um"`
}

// Measures are the slide's efficiency figures.
type Measures struct {
	ScanEfficiency     float64 `json:"scan_efficiency"`
	SlideEfficiency    float64 `json:"slide_efficiency"`
	LowerBoundSeconds  float64 `json:"lower_bound_seconds"`
	TilePhaseSeconds   float64 `json:"tile_phase_seconds"`
	AutofocusPerField  float64 `json:"autofocus_per_field"`
	FramesPerAutofocus float64 `json:"frames_per_autofocus"`
	FocusErrorRMSUM    float64 `json:"focus_error_rms_um"`
	// SlideBoundSeconds is the slide's physical bound (tile phase bound
	// plus loading); SlideOverBound the slide's machine time over it.
	SlideBoundSeconds float64 `json:"slide_bound_seconds"`
	SlideOverBound    float64 `json:"slide_over_bound"`
}

// Fly is what an on-the-fly scan measured.
type Fly struct {
	Rows       int     `json:"rows"`
	Frames     int     `json:"frames"`
	Retakes    int     `json:"retakes"`
	Dropped    int     `json:"dropped"`
	Dark       int     `json:"dark"`
	OffPlace   int     `json:"off_place"`
	BlurPx     float64 `json:"blur_px"`
	SpeedUMPS  float64 `json:"speed_um_s"`
	MaxOffUM   float64 `json:"max_off_um"`
	TicDiffUM  float64 `json:"tic_diff_um"`
	RowSeconds float64 `json:"row_seconds"`
	Registered int     `json:"registered"`
	RegMaxPx   float64 `json:"reg_max_px"`
}

// Slide is the classification of the slide.
type Slide struct {
	Verdict        string         `json:"verdict"`
	Counts         map[string]int `json:"counts"` // cells per most probable class
	Cells          int            `json:"cells"`
	HighGradeCells int            `json:"high_grade_cells"` // at the cell threshold
	LowGradeCells  int            `json:"low_grade_cells"`
	// SlideHighGradeCells and SlideAbnormalCells are counted at the
	// fitted slide rule's levels and decide the verdict.
	SlideHighGradeCells int        `json:"slide_high_grade_cells"`
	SlideAbnormalCells  int        `json:"slide_abnormal_cells"`
	Top                 []Cell     `json:"top"` // most suspicious first
	Reason              string     `json:"reason"`
	ModelVersion        string     `json:"model_version"`
	ModelSHA256         string     `json:"model_sha256"`
	Thresholds          Thresholds `json:"thresholds"`
	// SlideRule names the fitted slide rule that gave the verdict.
	SlideRule SlideRule `json:"slide_rule"`
}

// SlideRule identifies the embedded slide rule by version and SHA-256.
type SlideRule struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// Cell is one of the most suspicious cells.
type Cell struct {
	Class    string    `json:"class"`
	Score    float32   `json:"score"`
	Probs    []float32 `json:"probs"` // by class, in classify's class order
	XPx      float64   `json:"x"`
	YPx      float64   `json:"y"`
	AreaUM2  float64   `json:"area_um2"`
	StageXUM float64   `json:"stage_x_um"`
	StageYUM float64   `json:"stage_y_um"`
	Tile     int       `json:"tile"`
}

// Thresholds are the classification thresholds in force.
type Thresholds struct {
	HighGrade        float64 `json:"high_grade"`
	LowGrade         float64 `json:"low_grade"`
	MinSquamousCells int     `json:"min_squamous_cells"`
	GallerySize      int     `json:"gallery_size"`
}

// Timing is where the slide's time went, in seconds.
type Timing struct {
	MachineSeconds          float64 `json:"machine_seconds"`
	LoadSeconds             float64 `json:"load_seconds"`
	SpotSeconds             float64 `json:"spot_seconds"`
	FocusSeconds            float64 `json:"focus_seconds"`
	RefocusSeconds          float64 `json:"refocus_seconds"`
	MotionSeconds           float64 `json:"motion_seconds"`
	SettleSeconds           float64 `json:"settle_seconds"`
	CaptureSeconds          float64 `json:"capture_seconds"`
	ExposureSeconds         float64 `json:"exposure_seconds"`
	TilePhaseSeconds        float64 `json:"tile_phase_seconds"`
	AnalysisWaitWallSeconds float64 `json:"analysis_wait_wall_seconds"`
	WallSeconds             float64 `json:"wall_seconds"`
}

// FromReport maps a scan report onto the wire: the one place where the
// scanner's and the classifier's types meet the fleet's contract.
func FromReport(r *scan.Report) *Message {
	m := &Message{
		SchemaVersion: Version,
		ResultID:      r.ResultID, SlideID: r.SlideID, RobotID: r.RobotID, Magazine: r.Magazine, Slot: r.Slot,
		Label:   Label{Read: r.Label.Read, Text: r.Label.Text, Format: r.Label.Format, Reason: r.Label.Reason},
		Verdict: string(r.Verdict), Flags: r.Flags, Rerun: r.Rerun, RerunReason: r.RerunReason, Supersedes: r.Supersedes,
		TilesPlanned: r.TilesPlanned, TilesCaptured: r.TilesCaptured, TilesAnalysed: r.TilesAnalysed, TilesMissing: r.TilesMissing,
		Frames: r.Frames,
		Spot: Spot{CenterXUM: r.Spot.CenterX, CenterYUM: r.Spot.CenterY, DiameterUM: r.Spot.Diameter, Found: r.Spot.Found,
			Probes: r.Spot.Probes, FromOverview: r.Spot.FromOverview},
		Focus: Focus{Points: r.Focus.Points, Failed: r.Focus.Failed, Rejected: r.Focus.Rejected, AutofocusOps: r.Focus.Ops,
			Refocus: r.Focus.Refocus, Frames: r.Focus.Frames, ErrorRMSUM: r.Focus.ErrorRMS, SurfaceTerms: r.Focus.Terms,
			FitRMSUM: r.Focus.FitRMS},
		Measures: Measures{ScanEfficiency: r.Measures.ScanEfficiency, SlideEfficiency: r.Measures.SlideEfficiency,
			LowerBoundSeconds: r.Measures.LowerBoundSeconds, TilePhaseSeconds: r.Measures.TilePhaseSeconds,
			AutofocusPerField: r.Measures.AutofocusPerField, FramesPerAutofocus: r.Measures.FramesPerAutofocus,
			FocusErrorRMSUM: r.Measures.FocusErrorRMS, SlideBoundSeconds: r.Measures.SlideBoundSeconds,
			SlideOverBound: r.Measures.SlideOverBound},
		Result: slide(r.Result),
		Timing: Timing{MachineSeconds: r.Timing.Machine.Seconds(), LoadSeconds: r.Timing.Load.Seconds(),
			SpotSeconds: r.Timing.Spot.Seconds(), FocusSeconds: r.Timing.Focus.Seconds(), RefocusSeconds: r.Timing.Refocus.Seconds(),
			MotionSeconds: r.Timing.Motion.Seconds(), SettleSeconds: r.Timing.Settle.Seconds(), CaptureSeconds: r.Timing.Capture.Seconds(),
			ExposureSeconds: r.Timing.Exposure.Seconds(), TilePhaseSeconds: r.Timing.TilePhase.Seconds(),
			AnalysisWaitWallSeconds: r.Timing.AnalysisWait.Seconds(), WallSeconds: r.Timing.Wall.Seconds()},
		StartedAt: r.StartedAt, FinishedAt: r.FinishedAt, Error: r.Error,
	}
	if f := r.Fly; f != nil {
		m.Fly = &Fly{Rows: f.Rows, Frames: f.Frames, Retakes: f.Retakes, Dropped: f.Dropped, Dark: f.Dark, OffPlace: f.OffPlace,
			BlurPx: f.BlurPx, SpeedUMPS: f.SpeedUMPS, MaxOffUM: f.MaxOffUM, TicDiffUM: f.TicDiffUM, RowSeconds: f.RowSeconds,
			Registered: f.Registered, RegMaxPx: f.RegMaxPx}
	}
	for _, p := range r.Focus.Map {
		m.Focus.Map = append(m.Focus.Map, FocusPoint{XUM: p.X, YUM: p.Y, ZUM: p.Z})
	}
	return m
}

func slide(s classify.SlideResult) Slide {
	t := s.Thresholds
	out := Slide{
		Verdict: string(s.Verdict), Counts: s.Counts, Cells: s.Cells, HighGradeCells: s.HighGradeCells, LowGradeCells: s.LowGradeCells,
		SlideHighGradeCells: s.SlideHighGradeCells, SlideAbnormalCells: s.SlideAbnormalCells,
		Top: []Cell{}, Reason: s.Reason, ModelVersion: s.ModelVersion, ModelSHA256: s.ModelSHA256,
		Thresholds: Thresholds{HighGrade: t.HighGrade, LowGrade: t.LowGrade,
			MinSquamousCells: t.MinSquamousCells, GallerySize: t.GallerySize},
		SlideRule: SlideRule{Version: s.SlideRule.Version, SHA256: s.SlideRule.SHA256},
	}
	if out.Counts == nil {
		out.Counts = map[string]int{}
	}
	for _, c := range s.Top {
		out.Top = append(out.Top, Cell{Class: c.Class.String(), Score: c.Score, Probs: append([]float32(nil), c.Probs[:]...),
			XPx: c.X, YPx: c.Y, AreaUM2: c.AreaUM2, StageXUM: c.StageX, StageYUM: c.StageY, Tile: c.Tile})
	}
	return out
}
