package scan

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

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

// overview is a downscaled mosaic of the scanned tiles.
type overview struct {
	mu       sync.Mutex
	img      *image.RGBA
	x0, y0   float64 // stage µm at the mosaic's top-left pixel
	umPerPix float64
	factor   int
}

func newOverview(p TilePlan, pixelUM float64) *overview {
	wUM := float64(p.Cols-1)*p.StepX + p.FieldW
	hUM := float64(p.Rows-1)*p.StepY + p.FieldH
	f := int(math.Ceil(math.Max(wUM, hUM) / pixelUM / 1600))
	if f < 1 {
		f = 1
	}
	o := &overview{factor: f, umPerPix: pixelUM * float64(f)}
	if len(p.Tiles) > 0 {
		minX, minY := math.Inf(1), math.Inf(1)
		for _, t := range p.Tiles {
			minX, minY = math.Min(minX, t.X), math.Min(minY, t.Y)
		}
		// Grid origin: the top-left corner of the grid's first column/row.
		o.x0 = minX - p.FieldW/2
		o.y0 = minY - p.FieldH/2
	}
	w := int(wUM/o.umPerPix) + 1
	h := int(hUM/o.umPerPix) + 1
	o.img = image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(o.img, o.img.Bounds(), image.NewUniform(color.RGBA{40, 40, 40, 255}), image.Point{}, draw.Src)
	return o
}

// paste box-downsamples tile (whose top-left is at stage x, y µm) into the
// mosaic.
func (o *overview) paste(tile *image.RGBA, x, y float64) {
	f := o.factor
	ox := int(math.Round((x - o.x0) / o.umPerPix))
	oy := int(math.Round((y - o.y0) / o.umPerPix))
	tw, th := tile.Rect.Dx()/f, tile.Rect.Dy()/f
	o.mu.Lock()
	defer o.mu.Unlock()
	for j := 0; j < th; j++ {
		dy := oy + j
		if dy < 0 || dy >= o.img.Rect.Dy() {
			continue
		}
		for i := 0; i < tw; i++ {
			dx := ox + i
			if dx < 0 || dx >= o.img.Rect.Dx() {
				continue
			}
			var sr, sg, sb int
			for yy := 0; yy < f; yy++ {
				p := tile.Pix[(j*f+yy)*tile.Stride+i*f*4:]
				for xx := 0; xx < f; xx++ {
					sr += int(p[xx*4])
					sg += int(p[xx*4+1])
					sb += int(p[xx*4+2])
				}
			}
			n := f * f
			d := o.img.Pix[dy*o.img.Stride+dx*4:]
			d[0], d[1], d[2], d[3] = uint8(sr/n), uint8(sg/n), uint8(sb/n), 255
		}
	}
}

// classColor is how a class is marked in the overview and the gallery.
func classColor(c classify.Class) color.RGBA {
	switch c {
	case classify.HSIL, classify.SCC, classify.ASCH:
		return color.RGBA{230, 20, 20, 255}
	case classify.LSIL, classify.ASCUS:
		return color.RGBA{250, 160, 0, 255}
	}
	return color.RGBA{0, 160, 60, 255}
}

// Overview returns the mosaic with the top cells ringed by class colour, or
// nil when no tile was scanned.
func (r *Report) Overview() *image.RGBA {
	if r.overview == nil {
		return nil
	}
	o := r.overview
	o.mu.Lock()
	defer o.mu.Unlock()
	img := image.NewRGBA(o.img.Rect)
	copy(img.Pix, o.img.Pix)
	for _, c := range r.Result.Top {
		x := (c.StageX - o.x0) / o.umPerPix
		y := (c.StageY - o.y0) / o.umPerPix
		ring(img, x, y, 9, 2, classColor(c.Class))
	}
	return img
}

// ImageScale returns the scale of the images a report carries: the
// gallery crops' (the camera's pixel size, µm per pixel), the overview's
// (µm per pixel) and the stage position of the overview's top-left pixel
// (µm); ok is false when no tile was scanned.
func (r *Report) ImageScale() (cropUM, overviewUM, originX, originY float64, ok bool) {
	o := r.overview
	if o == nil {
		return 0, 0, 0, 0, false
	}
	return o.umPerPix / float64(o.factor), o.umPerPix, o.x0, o.y0, true
}

// ring draws a circle outline of radius rad and width w.
func ring(img *image.RGBA, cx, cy, rad, w float64, col color.RGBA) {
	for y := int(cy - rad - w); y <= int(cy+rad+w); y++ {
		for x := int(cx - rad - w); x <= int(cx+rad+w); x++ {
			d := math.Hypot(float64(x)-cx, float64(y)-cy)
			if math.Abs(d-rad) <= w/2 && image.Pt(x, y).In(img.Rect) {
				img.SetRGBA(x, y, col)
			}
		}
	}
}

// Gallery lays out the top cells' crops in a grid, most suspicious first,
// each enlarged 2x (nearest neighbour, so a cytologist sees the nucleus at
// 100 % zoom), framed in the colour of the grade the model suspects and
// captioned with galleryCaption, or nil when there are none.
func (r *Report) Gallery() *image.RGBA {
	var cells []classify.Cell
	for _, c := range r.Result.Top {
		if c.Crop != nil {
			cells = append(cells, c)
		}
	}
	if len(cells) == 0 {
		return nil
	}
	const cols, pad, line, zoom = 6, 8, 13, 2
	cw, ch := 0, 0
	for _, c := range cells {
		cw = max(cw, zoom*c.Crop.Rect.Dx())
		ch = max(ch, zoom*c.Crop.Rect.Dy())
		for _, s := range galleryCaption(c) {
			cw = max(cw, 7*len(s)) // basicfont.Face7x13 advances 7 px
		}
	}
	caption := 2*line + 4
	rows := (len(cells) + cols - 1) / cols
	img := image.NewRGBA(image.Rect(0, 0, cols*(cw+pad)+pad, rows*(ch+pad+caption)+pad))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.RGBA{255, 255, 255, 255}), image.Point{}, draw.Src)
	for i, c := range cells {
		x := pad + (i%cols)*(cw+pad)
		y := pad + (i/cols)*(ch+pad+caption)
		col := gradeColor(c.Probs)
		w, h := zoom*c.Crop.Rect.Dx(), zoom*c.Crop.Rect.Dy()
		draw.Draw(img, image.Rect(x-2, y-2, x+w+2, y+h+2), image.NewUniform(col), image.Point{}, draw.Src)
		for j := range h {
			for k := range w {
				img.SetRGBA(x+k, y+j, c.Crop.RGBAAt(c.Crop.Rect.Min.X+k/zoom, c.Crop.Rect.Min.Y+j/zoom))
			}
		}
		for l, s := range galleryCaption(c) {
			d := font.Drawer{Dst: img, Src: image.NewUniform(color.RGBA{0, 0, 0, 255}), Face: basicfont.Face7x13,
				Dot: fixed.P(x, y+h+2+(l+1)*line)}
			if l == 0 {
				d.Src = image.NewUniform(col)
			}
			d.DrawString(s)
		}
	}
	return img
}

// galleryCaption is what the model suspects of a gallery cell: the grade
// with its suspicion score (P(high) + P(low)/2, the gallery's order), then
// the most probable class and P(high grade).
func galleryCaption(c classify.Cell) [2]string {
	g := suspectedGrade(c.Probs)
	var pg float32
	switch g {
	case "HIGH GRADE":
		pg = classify.HighGradeProb(c.Probs)
	case "LOW GRADE":
		pg = classify.LowGradeProb(c.Probs)
	default:
		pg = c.Probs[classify.NILM]
	}
	// Line 1: the grade the model suspects and its probability; line 2:
	// the most probable class and the ranking score, P(not NILM).
	return [2]string{
		fmt.Sprintf("%s %.2f", g, pg),
		fmt.Sprintf("%s P(abn) %.2f", c.Class, c.Score),
	}
}

// suspectedGrade is the grade of largest probability: high (ASC-H, HSIL,
// SCC), low (ASC-US, LSIL) or negative.
func suspectedGrade(p [classify.NumClasses]float32) string {
	hi, lo := classify.HighGradeProb(p), classify.LowGradeProb(p)
	switch {
	case hi >= lo && hi >= p[classify.NILM]:
		return "HIGH GRADE"
	case lo >= p[classify.NILM]:
		return "LOW GRADE"
	}
	return "NILM"
}

func gradeColor(p [classify.NumClasses]float32) color.RGBA {
	switch suspectedGrade(p) {
	case "HIGH GRADE":
		return classColor(classify.HSIL)
	case "LOW GRADE":
		return classColor(classify.LSIL)
	}
	return classColor(classify.NILM)
}

// Files names the files WriteFiles wrote.
type Files struct {
	Dir      string `json:"dir"`
	Result   string `json:"result"`
	Overview string `json:"overview,omitempty"`
	Gallery  string `json:"gallery,omitempty"`
}

// ErrBadReportID: a report's slide or result ID is not a safe path
// element (WriteFiles refuses it before building any path).
var ErrBadReportID = errors.New("report: bad slide or result ID")

// WriteFiles stores the report under stateDir/slides/<slide>/<result_id>/:
// result.json, overview.png and gallery.png. Each file is written to a
// temporary name, synced and renamed, so a crash never leaves a torn file.
// The IDs are checked first (ErrBadReportID) and every file is opened
// through an os.Root on stateDir: nothing is written outside it, even
// through a symlink.
func (r *Report) WriteFiles(stateDir string) (Files, error) {
	if !validSlideID.MatchString(r.SlideID) {
		return Files{}, fmt.Errorf("%w: slide_id %q", ErrBadReportID, r.SlideID)
	}
	if !validResultID.MatchString(r.ResultID) {
		return Files{}, fmt.Errorf("%w: result_id %q", ErrBadReportID, r.ResultID)
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
	if img := r.Overview(); img != nil {
		f.Overview = filepath.Join(dir, "overview.png")
		if err := writeAtomicIn(root, filepath.Join(rel, "overview.png"), func(w *os.File) error { return png.Encode(w, img) }); err != nil {
			return f, err
		}
	}
	if img := r.Gallery(); img != nil {
		f.Gallery = filepath.Join(dir, "gallery.png")
		if err := writeAtomicIn(root, filepath.Join(rel, "gallery.png"), func(w *os.File) error { return png.Encode(w, img) }); err != nil {
			return f, err
		}
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return f, fmt.Errorf("report: encode: %w", err)
	}
	return f, writeAtomicIn(root, filepath.Join(rel, "result.json"), func(w *os.File) error { _, err := w.Write(append(b, '\n')); return err })
}

// writeAtomicIn is writeAtomic for a path relative to root.
func writeAtomicIn(root *os.Root, rel string, fill func(*os.File) error) error {
	tmp := filepath.Join(filepath.Dir(rel), ".tmp-"+newID())
	w, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	defer root.Remove(tmp)
	if err := fill(w); err != nil {
		w.Close()
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := w.Sync(); err != nil {
		w.Close()
		return fmt.Errorf("write %s: sync: %w", rel, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	if err := root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("write %s: %w", rel, err)
	}
	return nil
}

func writeAtomic(path string, fill func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := fill(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: sync: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
