package scan

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"papscan/classify"
	"papscan/hal"
)

// Report is everything known about one slide's scan: the classification
// result plus how the slide was imaged. It is what is stored in the state
// directory and published to the fleet.
type Report struct {
	ResultID string           `json:"result_id"`
	SlideID  string           `json:"slide_id"`
	RobotID  string           `json:"robot_id"`
	Magazine string           `json:"magazine"`
	Slot     int              `json:"slot"`
	Label    Label            `json:"label"`
	Verdict  classify.Verdict `json:"verdict"`
	// Flags name what needs a person's attention (label_unreadable,
	// spot_nominal, interrupted, selftest_failed).
	Flags []string `json:"flags,omitempty"`
	// Rerun: the slide must be scanned again (interrupted, or its
	// magazine's self-test failed); RerunReason says why.
	Rerun       bool   `json:"rerun"`
	RerunReason string `json:"rerun_reason,omitempty"`
	// Supersedes is the result this one replaces (the same slide, now
	// marked for rerun).
	Supersedes    string               `json:"supersedes,omitempty"`
	TilesPlanned  int                  `json:"tiles_planned"`
	TilesCaptured int                  `json:"tiles_captured"`
	TilesAnalysed int                  `json:"tiles_analysed"`
	TilesMissing  int                  `json:"tiles_missing"`
	Frames        int                  `json:"frames"`
	Spot          Spot                 `json:"spot"`
	Focus         FocusStats           `json:"focus"`
	Measures      Measures             `json:"measures"`
	Result        classify.SlideResult `json:"result"`
	Timing        Timing               `json:"timing"`
	// Fly has the on-the-fly scan's figures; nil for stop-and-go.
	Fly        *FlyStats `json:"fly,omitempty"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Error      string    `json:"error,omitempty"`

	overview   *overview
	material   *materialMap // where the overview shows specimen (nil: unknown)
	wallT0     time.Time
	lowerBound time.Duration
	moves      int // tile moves (XY and/or Z together), for the settle estimate
	cellsSoFar int // cells counted by the workers so far
}

// flag adds f to the report's flags once.
func (r *Report) flag(f string) {
	for _, g := range r.Flags {
		if g == f {
			return
		}
	}
	r.Flags = append(r.Flags, f)
}

// rerunCopy is a new result for the same slide, superseding r and marked
// for rerun; it shares r's images.
func (r *Report) rerunCopy(reason string) *Report {
	c := *r
	c.Flags = append([]string(nil), r.Flags...)
	c.ResultID = newID()
	c.Supersedes = r.ResultID
	c.MarkRerun(reason)
	return &c
}

// MarkRerun flags the slide for a rerun and says why.
func (r *Report) MarkRerun(reason string) {
	r.Rerun = true
	if r.RerunReason == "" {
		r.RerunReason = reason
	} else if r.RerunReason != reason {
		r.RerunReason += "; " + reason
	}
}

// FocusStats describes how the focus map was built.
type FocusStats struct {
	Points int `json:"points"`
	Failed int `json:"failed"`
	// Rejected points were implausible (slope, residual).
	Rejected int `json:"rejected"`
	// Ops counts autofocus operations: map points (a sweep widened after
	// a miss is the same operation) and refocuses; Frames all the frames
	// they took.
	Ops     int `json:"autofocus_ops"`
	Refocus int `json:"refocus"`
	Frames  int `json:"frames"`
	// ErrorRMS is the RMS error of the focus tiles were imaged at against
	// the truth (simulation only), µm.
	ErrorRMS float64      `json:"error_rms_um"`
	Terms    int          `json:"surface_terms"`
	FitRMS   float64      `json:"fit_rms_um"`
	Map      []FocusPoint `json:"map,omitempty"`
	// Where the focus map's machine time went: the stage's travel to
	// the points (Z moving along), the focus moves of the autofocus
	// operations, and their frames (seconds; MapFrames frames).
	MapTravelSeconds  float64 `json:"map_travel_seconds"`
	MapZSeconds       float64 `json:"map_z_seconds"`
	MapCaptureSeconds float64 `json:"map_capture_seconds"`
	MapFrames         int     `json:"map_frames"`
	// MapHops counts moves of a focus point to a neighbouring field
	// because its frame showed bare glass.
	MapHops int `json:"map_hops"`
}

// Timing is where a slide's machine time went. Durations marshal as
// seconds.
//
// Machine is load to unload. Load is the loader's time; Spot the overview
// (label, spot) or spot probing; Focus the focus map; Refocus re-focusing
// during the tile phase. Motion and Capture are all stage/focus moves and
// frames (autofocus sweeps included); Settle is the part of Motion spent
// settling (moves waited for times the configured settle); Exposure the
// part of Capture spent exposing. TilePhase is the first tile move to the
// last frame. AnalysisWait is real (wall) time the capture loop waited for
// the analysis (a free buffer, the final drain): a virtual clock cannot
// see CPU time, so in simulation it is measured on the host.
type Timing struct {
	Machine      time.Duration `json:"-"`
	Load         time.Duration `json:"-"`
	Spot         time.Duration `json:"-"`
	Focus        time.Duration `json:"-"`
	Refocus      time.Duration `json:"-"`
	Motion       time.Duration `json:"-"`
	Settle       time.Duration `json:"-"`
	Capture      time.Duration `json:"-"`
	Exposure     time.Duration `json:"-"`
	TilePhase    time.Duration `json:"-"`
	AnalysisWait time.Duration `json:"-"`
	Wall         time.Duration `json:"-"`
}

// MarshalJSON writes the durations in seconds.
func (t Timing) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]float64{
		"machine_seconds":            t.Machine.Seconds(),
		"load_seconds":               t.Load.Seconds(),
		"spot_seconds":               t.Spot.Seconds(),
		"focus_seconds":              t.Focus.Seconds(),
		"refocus_seconds":            t.Refocus.Seconds(),
		"motion_seconds":             t.Motion.Seconds(),
		"settle_seconds":             t.Settle.Seconds(),
		"capture_seconds":            t.Capture.Seconds(),
		"exposure_seconds":           t.Exposure.Seconds(),
		"tile_phase_seconds":         t.TilePhase.Seconds(),
		"analysis_wait_wall_seconds": t.AnalysisWait.Seconds(),
		"wall_seconds":               t.Wall.Seconds(),
	})
}

// newID returns a random 128-bit identifier in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

func newReport(robot, slide string, slot int, now time.Time) *Report {
	return &Report{
		ResultID:  newID(),
		SlideID:   slide,
		RobotID:   robot,
		Slot:      slot,
		StartedAt: now,
		wallT0:    time.Now(),
	}
}

// Complete reports whether every planned tile was imaged and analysed.
func (r *Report) Complete() bool {
	return r.TilesPlanned > 0 && r.TilesAnalysed == r.TilesPlanned && r.TilesMissing == 0
}

func (r *Report) finish(c hal.Clock, mm MotionModel) {
	r.FinishedAt = c.Now()
	r.Timing.Machine = r.FinishedAt.Sub(r.StartedAt)
	r.Timing.Wall = time.Since(r.wallT0)
	r.Timing.Settle = time.Duration(r.moves) * max(mm.X.Settle, mm.Y.Settle)
	r.Timing.Exposure = time.Duration(r.Frames) * mm.Exposure
	m := &r.Measures
	if r.lowerBound > 0 {
		m.LowerBoundSeconds = r.lowerBound.Seconds()
		m.ScanEfficiency = r.Timing.TilePhase.Seconds() / m.LowerBoundSeconds
		m.SlideEfficiency = r.Timing.Machine.Seconds() / m.LowerBoundSeconds
	}
	m.TilePhaseSeconds = r.Timing.TilePhase.Seconds()
	if r.lowerBound > 0 {
		m.SlideBoundSeconds = (r.lowerBound + r.Timing.Load).Seconds()
		m.SlideOverBound = r.Timing.Machine.Seconds() / m.SlideBoundSeconds
	}
	if r.TilesPlanned > 0 {
		m.AutofocusPerField = float64(r.Focus.Ops) / float64(r.TilesPlanned)
	}
	if r.Focus.Ops > 0 {
		m.FramesPerAutofocus = float64(r.Focus.Frames) / float64(r.Focus.Ops)
	}
	m.FocusErrorRMS = r.Focus.ErrorRMS
	r.Verdict = r.Result.Verdict
	if !r.Complete() {
		// Belt and braces: whatever the summary said, a slide that was
		// not fully imaged is never reported negative.
		r.Verdict = classify.VerdictIncomplete
		r.Result.Verdict = classify.VerdictIncomplete
	}
}

// Files names the files WriteFiles wrote.
type Files struct {
	Dir    string `json:"dir"`
	Result string `json:"result"`
	// Images are the paths of the images written, in the order given.
	Images []string `json:"images,omitempty"`
}

// ImageFile is an image of a slide that WriteFiles stores beside its
// result: Name is a plain file name (overview.png, gallery.png), Encode
// writes its bytes. Package render draws them.
type ImageFile struct {
	Name   string
	Encode func(io.Writer) error
}

// ErrBadReportID: a report's slide or result ID is not a safe path
// element (WriteFiles refuses it before building any path).
var ErrBadReportID = errors.New("report: bad slide or result ID")

// validImageName is what an ImageFile may be called: one path element,
// not a hidden or temporary file.
var validImageName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.[a-z]{1,8}$`)

// WriteFiles stores the report under stateDir/slides/<slide>/<result_id>/:
// the images (render.Images draws overview.png and gallery.png), then
// result.json, so a result.json on disk always has its images. Each file
// is written to a temporary name, synced and renamed, so a crash never
// leaves a torn file. The IDs and image names are checked first
// (ErrBadReportID) and every file is opened through an os.Root on
// stateDir: nothing is written outside it, even through a symlink.
func (r *Report) WriteFiles(stateDir string, images ...ImageFile) (Files, error) {
	if !validSlideID.MatchString(r.SlideID) {
		return Files{}, fmt.Errorf("%w: slide_id %q", ErrBadReportID, r.SlideID)
	}
	if !validResultID.MatchString(r.ResultID) {
		return Files{}, fmt.Errorf("%w: result_id %q", ErrBadReportID, r.ResultID)
	}
	for _, im := range images {
		if !validImageName.MatchString(im.Name) || im.Name == "result.json" || im.Encode == nil {
			return Files{}, fmt.Errorf("report: bad image file name %q", im.Name)
		}
	}
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		return Files{}, fmt.Errorf("report: %w", err)
	}
	defer root.Close()
	rel := filepath.Join("slides", r.SlideID, r.ResultID)
	if err := root.MkdirAll(rel, 0o750); err != nil {
		return Files{}, fmt.Errorf("report: %w", err)
	}
	dir := filepath.Join(stateDir, rel)
	f := Files{Dir: dir, Result: filepath.Join(dir, "result.json")}
	for _, im := range images {
		if err := writeAtomicIn(root, filepath.Join(rel, im.Name), func(w *os.File) error { return im.Encode(w) }); err != nil {
			return f, err
		}
		f.Images = append(f.Images, filepath.Join(dir, im.Name))
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return f, fmt.Errorf("report: encode: %w", err)
	}
	return f, writeAtomicIn(root, filepath.Join(rel, "result.json"), func(w *os.File) error { _, err := w.Write(append(b, '\n')); return err })
}

// writeAtomicIn writes rel (relative to root) through fill: to a new
// temporary name beside it, synced, then renamed over rel, so a crash
// never leaves a torn file.
func writeAtomicIn(root *os.Root, rel string, fill func(*os.File) error) error {
	return writeAtomicAs(root, rel, rel, 0o640, fill)
}

// writeAtomic is writeAtomicIn for a path, through a root on its
// directory; the file is the owner's only (0600).
func writeAtomic(path string, fill func(*os.File) error) error {
	root, err := os.OpenRoot(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer root.Close()
	return writeAtomicAs(root, filepath.Base(path), path, 0o600, fill)
}

// writeAtomicAs is writeAtomicIn with the file's mode, naming the file
// name in its errors.
func writeAtomicAs(root *os.Root, rel, name string, perm os.FileMode, fill func(*os.File) error) error {
	tmp := filepath.Join(filepath.Dir(rel), ".tmp-"+newID())
	w, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer root.Remove(tmp)
	if err := fill(w); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return fmt.Errorf("write %s: sync: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}
