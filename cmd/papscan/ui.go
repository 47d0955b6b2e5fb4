package main

import (
	"fmt"
	"io"
	"os"
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
// per phase and per quarter of the tiles otherwise (logs, CI).
type progressBar struct {
	w     io.Writer
	tty   bool
	mu    sync.Mutex
	last  scan.Progress
	shown int // quarter last printed, non-tty
	start time.Time
}

func newProgressBar(w io.Writer) *progressBar {
	return &progressBar{w: w, tty: isTerminal(w)}
}

func (b *progressBar) update(p scan.Progress) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p.SlideID != b.last.SlideID {
		b.start, b.shown = time.Now(), -1
	}
	phaseChanged := p.Phase != b.last.Phase || p.SlideID != b.last.SlideID
	b.last = p
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", b.line(p))
		if p.Phase == "done" {
			fmt.Fprintln(b.w)
		}
		return
	}
	q := -1
	if p.Total > 0 {
		q = 4 * p.Done / p.Total
	}
	if phaseChanged || (p.Phase == "scan" && q > b.shown) {
		b.shown = q
		fmt.Fprintln(b.w, b.line(p))
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
	fmt.Fprintln(tw, "SLOT\tSLIDE\tVERDICT\tCELLS\tHIGH\tLOW\tTILES\tFOCUS RMS\tMACHINE\tWALL\tRESULT")
	for _, r := range reports {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%d/%d\t%.2fµm\t%.0fs\t%.1fs\t%s\n",
			r.Slot, r.SlideID, r.Verdict, r.Result.Cells, r.Result.HighGradeCells, r.Result.LowGradeCells,
			r.TilesAnalysed, r.TilesPlanned, r.Focus.FitRMS, r.Timing.Machine.Seconds(), r.Timing.Wall.Seconds(),
			paths[r.ResultID])
	}
	tw.Flush()
}
