package classify_test

import (
	"context"
	"math"
	"path/filepath"
	"sort"
	"testing"

	"papscan/classify"
	"papscan/classify/eval"
	"papscan/classify/internal/dataset"
)

func dataDir(t testing.TB) string {
	t.Helper()
	d := dataset.Dir()
	if d == "" {
		t.Skip("shared data not found (set PAPSCAN_DATA or place ../shared/data beside the repo)")
	}
	return d
}

// readPoints is eval.ReadPoints, skipping the test when the file is absent.
func readPoints(t testing.TB, path, imgCol, xCol, yCol, classCol string) (map[string][]eval.Point, []string) {
	t.Helper()
	by, names, err := eval.ReadPoints(path, imgCol, xCol, yCol, classCol)
	if err != nil {
		t.Skipf("%s: %v", path, err)
	}
	return by, names
}

// TestCRICFieldRecall: at the CRIC images' own pixel size, a labelled point
// counts as found when a detection's centre lies within 10 px of it or its
// box contains it (eval.Covered: a point sits a median 8 px from the
// nucleus's darkest pixel).
func TestCRICFieldRecall(t *testing.T) {
	dir := filepath.Join(dataDir(t), "cric", "fields")
	by, names := readPoints(t, filepath.Join(dir, "nuclei.csv"), "image_filename", "x_img", "y_img", "bethesda_system")
	if testing.Short() && len(names) > 8 {
		names = names[:8]
	}
	det := classify.NewDetector(classify.DetectOptions{})
	hit, tot := map[string]int{}, map[string]int{}
	strict := 0
	var areas []float64
	n, err := eval.EachField(context.Background(), dir, by, names, eval.CRICPixelUM, 0, func(f eval.Field) error {
		ns := det.Detect(f.Image)
		for _, p := range f.Points {
			tot[p.Class]++
			tot["all"]++
			k := eval.Covering(p, ns, 10)
			if k < 0 {
				continue
			}
			if math.Hypot(p.X-ns[k].X, p.Y-ns[k].Y) <= 10 {
				strict++
			}
			hit[p.Class]++
			hit["all"]++
			if p.Class == "NILM" {
				areas = append(areas, float64(ns[k].AreaPx))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC", "all"} {
		t.Logf("CRIC fields (%d images) recall@10px %-6s %4d/%4d = %.3f", n, c, hit[c], tot[c], float64(hit[c])/math.Max(1, float64(tot[c])))
	}
	t.Logf("hit = labelled point within 10 px of a detection's centre or inside its box; centre within 10 px only: %d/%d = %.3f", strict, tot["all"], float64(strict)/float64(tot["all"]))
	sort.Float64s(areas)
	if len(areas) > 0 {
		t.Logf("matched NILM nucleus area px: p10 %.0f median %.0f p90 %.0f", areas[len(areas)/10], areas[len(areas)/2], areas[len(areas)*9/10])
	}
	if r := float64(hit["all"]) / float64(tot["all"]); r < 0.6 {
		t.Errorf("CRIC labelled-nucleus recall %.3f < 0.6", r)
	}
}

// TestISBIDetection: detection precision, recall and F1 against the
// exhaustive ISBI 2014 nuclei at the images' own pixel size (matches within
// 10 px, eval.MatchPoints).
func TestISBIDetection(t *testing.T) {
	dir := filepath.Join(dataDir(t), "isbi2014")
	by, names := readPoints(t, filepath.Join(dir, "nuclei.csv"), "image", "x", "y", "")
	det := classify.NewDetector(classify.DetectOptions{PixelUM: eval.ISBIPixelUM})
	var tp, nd, ng int
	var areaErr []float64
	_, err := eval.EachField(context.Background(), dir, by, names, eval.ISBIPixelUM, 0, func(f eval.Field) error {
		ns := det.Detect(f.Image)
		m, gm := eval.MatchPoints(f.Points, ns, 10)
		for g, k := range gm {
			if k >= 0 {
				areaErr = append(areaErr, float64(ns[k].AreaPx)/f.Points[g].Area)
			}
		}
		p, r := float64(m)/math.Max(1, float64(len(ns))), float64(m)/float64(len(f.Points))
		t.Logf("ISBI %s: gt %d det %d tp %d P %.3f R %.3f", f.Name, len(f.Points), len(ns), m, p, r)
		tp += m
		nd += len(ns)
		ng += len(f.Points)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p, r := float64(tp)/float64(nd), float64(tp)/float64(ng)
	f1 := 2 * p * r / (p + r)
	sort.Float64s(areaErr)
	t.Logf("ISBI total (PixelUM %.2f, tol 10 px): P %.3f R %.3f F1 %.3f; det/gt area ratio median %.2f", eval.ISBIPixelUM, p, r, f1, areaErr[len(areaErr)/2])
	if f1 < 0.6 {
		t.Errorf("ISBI F1 %.3f < 0.6", f1)
	}
}

func BenchmarkDetectCRIC(b *testing.B) {
	dir := dataDir(b)
	img, err := dataset.LoadRGBA(filepath.Join(dir, "cric", "fields", "images", "ce95aaf77e8e7bcd44e4d1f731dea349.png"))
	if err != nil {
		b.Fatal(err)
	}
	d := classify.NewDetector(classify.DetectOptions{})
	d.Detect(img)
	b.SetBytes(int64(len(img.Pix)))
	b.ReportAllocs()
	for b.Loop() {
		d.Detect(img)
	}
	px := float64(img.Bounds().Dx() * img.Bounds().Dy())
	b.ReportMetric(px*float64(b.N)/b.Elapsed().Seconds()/1e6, "MP/s")
}

func BenchmarkAnalyzeCRIC(b *testing.B) {
	dir := dataDir(b)
	img, err := dataset.LoadRGBA(filepath.Join(dir, "cric", "fields", "images", "ce95aaf77e8e7bcd44e4d1f731dea349.png"))
	if err != nil {
		b.Fatal(err)
	}
	m, err := classify.DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	a := classify.NewAnalyzer(classify.DetectOptions{}, m)
	n := len(a.Analyze(img))
	b.ReportAllocs()
	for b.Loop() {
		a.Analyze(img)
	}
	b.ReportMetric(float64(n), "cells/tile")
}
