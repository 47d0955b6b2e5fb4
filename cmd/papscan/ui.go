package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"papscan/classify"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"papscan/scan"
)

// isTerminal reports whether w is a character device (a person watching).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressBar shows a slide's progress: a redrawn bar on a terminal, a line
// per phase and per quarter of the tiles otherwise (logs, CI). It draws
// through a termWriter, which keeps other output (logs) off the bar line.
type progressBar struct {
	t     *termWriter
	mu    sync.Mutex
	last  scan.Progress
	shown int // quarter last printed, non-tty
	start time.Time
}

func newProgressBar(t *termWriter) *progressBar {
	return &progressBar{t: t}
}

func (b *progressBar) update(p scan.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.SlideID != b.last.SlideID {
		b.start, b.shown = time.Now(), -1
	}
	phaseChanged := p.Phase != b.last.Phase || p.SlideID != b.last.SlideID
	b.last = p
	if b.t.tty {
		b.t.drawBar(b.line(p))
		if p.Phase == "done" {
			b.t.endBar()
		}
		return
	}
	q := -1
	if p.Total > 0 {
		q = 4 * p.Done / p.Total
	}
	if phaseChanged || (p.Phase == "scan" && q > b.shown) {
		b.shown = q
		fmt.Fprintln(b.t, b.line(p))
	}
}

func (b *progressBar) line(p scan.Progress) string {
	const width = 30
	bar := ""
	if p.Total > 0 {
		n := width * p.Done / p.Total
		bar = fmt.Sprintf(" [%s%s] %d/%d", strings.Repeat("#", n), strings.Repeat(".", width-n), p.Done, p.Total)
	}
	return fmt.Sprintf("%-12s %-7s%s  %5.1fs", p.SlideID, p.Phase, bar, time.Since(b.start).Seconds())
}

// printTable writes the end-of-run summary, one row per slide.
func printTable(w io.Writer, reports []*scan.Report, paths map[string]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// HIGH* and ABN* are the cells counted at the fitted slide rule's
	// levels: they decide the verdict (the cell-threshold counts are in
	// the result).
	fmt.Fprintln(tw, "SLOT\tSLIDE\tVERDICT\tCELLS\tHIGH*\tABN*\tTILES\tEFF\tAF/FIELD\tFOCUS ERR\tMACHINE\tWALL\tFLAGS\tRESULT")
	for _, r := range reports {
		flags := strings.Join(r.Flags, ",")
		if r.Rerun && !strings.Contains(flags, "rerun") {
			flags = strings.TrimPrefix(flags+",rerun", ",")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d/%d\t%.3f\t%.3f\t%.2fµm\t%.0fs\t%.1fs\t%s\t%s\n",
			r.Slot, r.SlideID, r.Verdict, r.Result.Cells, r.Result.SlideHighGradeCells, r.Result.SlideAbnormalCells,
			r.TilesAnalysed, r.TilesPlanned, r.Measures.ScanEfficiency, r.Measures.AutofocusPerField, r.Measures.FocusErrorRMS,
			r.Timing.Machine.Seconds(), r.Timing.Wall.Seconds(), flags, paths[r.ResultID])
	}
	tw.Flush()
	if len(reports) > 0 {
		rule := reports[0].Result.Thresholds.Rule
		if rule == nil {
			rule, _ = classify.DefaultSlideRule()
		}
		if rule != nil {
			fmt.Fprintf(w, "HIGH*/ABN*: cells at the fitted slide rule's levels (P(high grade) ≥ %.3g, P(not NILM) ≥ %.3g; rule %s), whose excess over a negative slide's background decides the verdict\n",
				rule.High.Prob, rule.Abnormal.Prob, rule.Version)
		}
	}
}

// simJSONLine is the per-slide line of `papscan sim --json`: flat keys a
// program can check.
func simJSONLine(r *scan.Report) []byte {
	m := r.Measures
	b, _ := json.Marshal(map[string]any{
		"slide_id":                   r.SlideID,
		"result_id":                  r.ResultID,
		"supersedes":                 r.Supersedes,
		"magazine":                   r.Magazine,
		"slot":                       r.Slot,
		"label_read":                 r.Label.Read,
		"label_format":               r.Label.Format,
		"verdict":                    r.Verdict,
		"complete":                   r.Complete(),
		"rerun":                      r.Rerun,
		"rerun_reason":               r.RerunReason,
		"flags":                      r.Flags,
		"cells":                      r.Result.Cells,
		"high_grade_cells":           r.Result.HighGradeCells,
		"low_grade_cells":            r.Result.LowGradeCells,
		"tiles":                      r.TilesPlanned,
		"tiles_analysed":             r.TilesAnalysed,
		"frames":                     r.Frames,
		"scan_efficiency":            m.ScanEfficiency,
		"slide_efficiency":           m.SlideEfficiency,
		"lower_bound_seconds":        m.LowerBoundSeconds,
		"slide_bound_seconds":        m.SlideBoundSeconds,
		"slide_over_bound":           m.SlideOverBound,
		"fly":                        r.Fly,
		"tile_phase_seconds":         m.TilePhaseSeconds,
		"autofocus_per_field":        m.AutofocusPerField,
		"autofocus_ops":              r.Focus.Ops,
		"frames_per_autofocus":       m.FramesPerAutofocus,
		"refocus":                    r.Focus.Refocus,
		"focus_points_rejected":      r.Focus.Rejected,
		"focus_error_rms_um":         m.FocusErrorRMS,
		"focus_fit_rms_um":           r.Focus.FitRMS,
		"focus_map":                  focusMapJSON(r),
		"machine_seconds":            r.Timing.Machine.Seconds(),
		"load_seconds":               r.Timing.Load.Seconds(),
		"overview_seconds":           r.Timing.Spot.Seconds(),
		"focus_seconds":              r.Timing.Focus.Seconds(),
		"motion_seconds":             r.Timing.Motion.Seconds(),
		"settle_seconds":             r.Timing.Settle.Seconds(),
		"capture_seconds":            r.Timing.Capture.Seconds(),
		"exposure_seconds":           r.Timing.Exposure.Seconds(),
		"analysis_wait_wall_seconds": r.Timing.AnalysisWait.Seconds(),
		"wall_seconds":               r.Timing.Wall.Seconds(),
		"error":                      r.Error,
	})
	return b
}

// focusMapJSON is where the focus map's machine time went (scan.FocusStats).
func focusMapJSON(r *scan.Report) map[string]any {
	f := r.Focus
	return map[string]any{"points": f.Points, "failed": f.Failed, "hops": f.MapHops, "frames": f.MapFrames,
		"travel_seconds": f.MapTravelSeconds, "z_seconds": f.MapZSeconds, "capture_seconds": f.MapCaptureSeconds}
}

// printSelfTest prints a self-test's line ("before" or "after" magazine).
func printSelfTest(w io.Writer, magazine, when string, st *scan.SelfTestResult) {
	status := "passed"
	if !st.OK {
		status = "FAILED: " + strings.Join(st.Failures, "; ")
	}
	fmt.Fprintf(w, "self-test %s magazine %s: %s (%.1f s)\n", when, magazine, status, st.Seconds)
}

// printMagazine prints what was left of a magazine run (the self-tests are
// printed when they happen: printSelfTest).
func printMagazine(w io.Writer, m *scan.MagazineResult) {
	if m == nil {
		return
	}
	if len(m.Skipped) > 0 {
		fmt.Fprintf(w, "slots already done (journal): %v\n", m.Skipped)
	}
	if len(m.Pending) > 0 {
		fmt.Fprintf(w, "slots left in the magazine: %v\n", m.Pending)
	}
	if m.Rerun {
		fmt.Fprintf(w, "magazine %s must be rerun: %s\n", m.Magazine, m.RerunReason)
	}
}
