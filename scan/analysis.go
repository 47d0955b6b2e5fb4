package scan

import (
	"context"
	"image"
	"math"
	"sync"
	"time"

	"papscan/classify"
)

// analysisPool is the analysis behind both capture loops (stop-and-go in
// tiles.go, on the fly in onthefly.go): Options.Workers goroutines, each
// with its own classify.Analyzer, fed through a bounded queue, and a
// fixed set of recycled frame buffers (a tile's focal planes), so memory
// stays flat whatever the slide. The capture loop takes a buffer (get),
// fills it and hands it over (submit) or gives it back unused (put); the
// workers count each cell once (only nuclei in the tile's core, the part
// not shared with a neighbour), paste the tile into the overview and
// return the buffer. drain waits for the last tile.
type analysisPool struct {
	s       *Scanner
	r       *Report
	plan    TilePlan
	summary *classify.SlideSummary
	j       *journal
	ov      *overview

	free chan []*image.RGBA
	jobs chan analysisJob
	wg   sync.WaitGroup
	mu   sync.Mutex // guards r.TilesAnalysed, r.cellsSoFar

	// wait is the real (wall) time the capture loop stood still because
	// every buffer was still being analysed: the virtual clock of a
	// simulation cannot see CPU time, so it is measured here.
	wait    time.Duration
	drained bool
	done    int // tiles submitted
}

// analysisJob is one tile for the workers: its planes were imaged centred
// at stage (x, y) and it owns the core of the tile planned at (cx, cy).
type analysisJob struct {
	i      int
	x, y   float64
	cx, cy float64
	planes []*image.RGBA
}

// newAnalysisPool starts the workers; each buffer holds planes frames
// (allocated on first capture). It sets r.overview. Call drain when done.
func (s *Scanner) newAnalysisPool(r *Report, plan TilePlan, planes int, summary *classify.SlideSummary, j *journal) *analysisPool {
	p := &analysisPool{
		s: s, r: r, plan: plan, summary: summary, j: j,
		ov:   newOverview(plan, um(s.m.Camera.PixelSize())),
		free: make(chan []*image.RGBA, s.o.Workers+2),
		jobs: make(chan analysisJob, s.o.Workers),
	}
	r.overview = p.ov
	for range cap(p.free) {
		p.free <- make([]*image.RGBA, planes)
	}
	for range s.o.Workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *analysisPool) work() {
	defer p.wg.Done()
	s := p.s
	fw, fh := s.fieldUM()
	a := classify.NewAnalyzer(s.o.Detect, s.o.Model)
	for jb := range p.jobs {
		img := jb.planes[0]
		if len(jb.planes) > 1 {
			img = MergePlanes(jb.planes)
		}
		cells := a.Analyze(img)
		kept := cells[:0]
		for _, c := range cells {
			cx := jb.x + (c.X-float64(img.Rect.Dx())/2)*s.o.Detect.PixelUM
			cy := jb.y + (c.Y-float64(img.Rect.Dy())/2)*s.o.Detect.PixelUM
			if math.Abs(cx-jb.cx) > p.plan.StepX/2 || math.Abs(cy-jb.cy) > p.plan.StepY/2 {
				continue // in a neighbour's core
			}
			c.StageX, c.StageY, c.Tile = cx, cy, jb.i
			kept = append(kept, c)
		}
		if s.o.CellsSeen != nil {
			s.o.CellsSeen(jb.cx, jb.cy, kept)
		}
		p.summary.Add(kept)
		p.ov.paste(img, jb.x-fw/2, jb.y-fh/2)
		p.mu.Lock()
		p.r.TilesAnalysed++
		p.r.cellsSoFar += len(kept)
		p.mu.Unlock()
		p.free <- jb.planes
	}
}

// get takes a free buffer, waiting for the workers if every one is in use.
func (p *analysisPool) get(ctx context.Context) ([]*image.RGBA, error) {
	t0 := time.Now()
	defer func() { p.wait += time.Since(t0) }()
	select {
	case b := <-p.free:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// put gives back a buffer that is not to be analysed.
func (p *analysisPool) put(b []*image.RGBA) { p.free <- b }

// submit counts tile i captured, hands its planes (imaged at (x, y)) to
// the workers and records the progress.
func (p *analysisPool) submit(ctx context.Context, i int, x, y float64, planes []*image.RGBA) error {
	t := p.plan.Tiles[i]
	p.r.TilesCaptured++
	p.done++
	select {
	case p.jobs <- analysisJob{i: i, x: x, y: y, cx: t.X, cy: t.Y, planes: planes}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.j != nil {
		p.mu.Lock()
		an, cells := p.r.TilesAnalysed, p.r.cellsSoFar
		p.mu.Unlock()
		p.j.progress(p.r, p.done, an, cells)
	}
	p.s.progress(Progress{SlideID: p.r.SlideID, Phase: "scan", Done: p.done, Total: len(p.plan.Tiles)})
	return nil
}

// drain waits for the workers to finish the queue (once) and records the
// capture loop's wait in r.Timing.AnalysisWait.
func (p *analysisPool) drain() {
	if !p.drained {
		p.drained = true
		close(p.jobs)
		t0 := time.Now()
		p.wg.Wait()
		p.wait += time.Since(t0)
	}
	p.r.Timing.AnalysisWait = p.wait
}
