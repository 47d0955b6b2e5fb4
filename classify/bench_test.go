package classify_test

import (
	"image"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"

	"papscan/classify"
	"papscan/classify/internal/dataset"
)

// BenchFields is the number of CRIC field images the field benchmarks (and
// bench/opencv_detect.py, run by scripts/bench.sh on the same files) use:
// the first ones of cric/fields/images in name order.
const benchFields = 8

// benchPixelUM is the robot camera's pixel size: the benchmarks treat each
// 1280x960 field as one camera tile.
const benchPixelUM = 0.5

func benchImages(b *testing.B) []*image.RGBA {
	b.Helper()
	dir := filepath.Join(dataDir(b), "cric", "fields", "images")
	names, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(names) == 0 {
		b.Skipf("no field images in %s", dir)
	}
	sort.Strings(names)
	names = names[:min(benchFields, len(names))]
	var imgs []*image.RGBA
	for _, n := range names {
		img, err := dataset.LoadRGBA(n)
		if err != nil {
			b.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	if os.Getenv("PAPSCAN_BENCH_LIST") != "" {
		for _, n := range names {
			b.Logf("bench image %s", n)
		}
	}
	return imgs
}

func megapixels(imgs []*image.RGBA) float64 {
	var px int
	for _, m := range imgs {
		px += m.Bounds().Dx() * m.Bounds().Dy()
	}
	return float64(px) / 1e6
}

// BenchmarkDetectFields: detection on real 1280x960 fields, one Detector,
// one goroutine (per-core figure; compare with bench/opencv_detect.py).
func BenchmarkDetectFields(b *testing.B) {
	imgs := benchImages(b)
	d := classify.NewDetector(classify.DetectOptions{PixelUM: benchPixelUM})
	nuclei := 0
	for _, m := range imgs {
		nuclei += len(d.Detect(m))
	}
	mp := megapixels(imgs) / float64(len(imgs))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Detect(imgs[i%len(imgs)])
		i++
	}
	b.ReportMetric(mp*float64(b.N)/b.Elapsed().Seconds(), "MP/s")
	b.ReportMetric(float64(nuclei), "nuclei/pass")
}

// BenchmarkDetectFieldsParallel: one Detector per goroutine (a scan's
// workers); run with -cpu 1,2 to see the scaling. MP/s is the total.
func BenchmarkDetectFieldsParallel(b *testing.B) {
	imgs := benchImages(b)
	mp := megapixels(imgs) / float64(len(imgs))
	// One warmed-up Detector per goroutine, made before the timer starts
	// (RunParallel runs GOMAXPROCS goroutines).
	dets := make(chan *classify.Detector, runtime.GOMAXPROCS(0))
	for range cap(dets) {
		d := classify.NewDetector(classify.DetectOptions{PixelUM: benchPixelUM})
		for _, m := range imgs {
			d.Detect(m)
		}
		dets <- d
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		d := <-dets
		defer func() { dets <- d }()
		for pb.Next() {
			d.Detect(imgs[int(next.Add(1))%len(imgs)])
		}
	})
	b.ReportMetric(mp*float64(b.N)/b.Elapsed().Seconds(), "MP/s")
}

type benchCell struct {
	img *image.RGBA
	n   classify.Nucleus
}

func benchCells(b *testing.B) []benchCell {
	imgs := benchImages(b)
	d := classify.NewDetector(classify.DetectOptions{PixelUM: benchPixelUM})
	var cells []benchCell
	for _, m := range imgs {
		for _, n := range d.Detect(m) {
			cells = append(cells, benchCell{m, n})
		}
	}
	if len(cells) == 0 {
		b.Skip("no cells")
	}
	return cells
}

// BenchmarkClassifyFields: per-cell features + model on the nuclei detected
// in real fields, one goroutine.
func BenchmarkClassifyFields(b *testing.B) {
	cells := benchCells(b)
	m, err := classify.DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := cells[i%len(cells)]
		m.Classify(c.img, c.n)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cells/s")
}

// stageOne returns the default model without its second stage (the model
// itself when it has none).
func stageOne(b *testing.B) *classify.Model {
	m, err := classify.DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	if !m.HasCascade() {
		return m
	}
	p := m.Params()
	p.Cascade = nil
	p.Folds = append([]classify.Fold(nil), p.Folds...)
	for k := range p.Folds {
		p.Folds[k].Cascade = nil
	}
	s, err := classify.NewModel(p)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkClassifyFieldsStageOne: BenchmarkClassifyFields with the
// first stage only (the cascade's gate sees these probabilities); gated
// is the fraction of these cells whose suspicion reaches the second
// stage's gate.
func BenchmarkClassifyFieldsStageOne(b *testing.B) {
	cells := benchCells(b)
	m := stageOne(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c := cells[i%len(cells)]
		m.Classify(c.img, c.n)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cells/s")
	if d, err := classify.DefaultModel(); err == nil && d.HasCascade() {
		gate := float32(d.Params().Cascade.Gate)
		n := 0
		for _, c := range cells {
			if m.Classify(c.img, c.n).Score >= gate {
				n++
			}
		}
		b.ReportMetric(float64(n)/float64(len(cells)), "gated")
	}
}

// BenchmarkClassifyFieldsParallel: the shared Model from several
// goroutines; run with -cpu 1,2. cells/s is the total.
func BenchmarkClassifyFieldsParallel(b *testing.B) {
	cells := benchCells(b)
	m, err := classify.DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := cells[int(next.Add(1))%len(cells)]
			m.Classify(c.img, c.n)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cells/s")
}
