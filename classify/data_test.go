package classify

import (
	"encoding/csv"
	"image"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

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

type point struct {
	x, y  float64
	class string
	area  float64
}

func readCSV(t testing.TB, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("open %s: %v", path, err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, k := range recs[0] {
			m[k] = r[i]
		}
		out = append(out, m)
	}
	return out
}

func atof(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }

// matchPoints greedily matches ground-truth points to detections within tol px
// (closest pairs first) and returns the matched count and per-GT match index.
func matchPoints(gt []point, det []Nucleus, tol float64) (int, []int) {
	type pair struct {
		d    float64
		g, k int
	}
	var ps []pair
	for g, p := range gt {
		for k, n := range det {
			dd := math.Hypot(p.x-n.X, p.y-n.Y)
			if dd <= tol {
				ps = append(ps, pair{dd, g, k})
			}
		}
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].d < ps[j].d })
	gm := make([]int, len(gt))
	for i := range gm {
		gm[i] = -1
	}
	dm := make([]bool, len(det))
	m := 0
	for _, p := range ps {
		if gm[p.g] >= 0 || dm[p.k] {
			continue
		}
		gm[p.g], dm[p.k] = p.k, true
		m++
	}
	return m, gm
}

// within reports whether any detection's box (grown by tol) contains p or its
// centre lies within tol of p: a labelled point sits a median 8 px from the
// nucleus's darkest pixel, so recall counts a point covered by a detection.
func nearDetection(p point, det []Nucleus, tol float64) (int, bool) {
	best, bi := math.Inf(1), -1
	for k, n := range det {
		if d := math.Hypot(p.x-n.X, p.y-n.Y); d < best {
			best, bi = d, k
		}
	}
	if best <= tol {
		return bi, true
	}
	for k, n := range det {
		if image.Pt(int(p.x), int(p.y)).In(n.Box) {
			return k, true
		}
	}
	return bi, false
}

func TestCRICFieldRecall(t *testing.T) {
	dir := dataDir(t)
	rows := readCSV(t, filepath.Join(dir, "cric", "fields", "nuclei.csv"))
	byImg := map[string][]point{}
	for _, r := range rows {
		c, err := ParseClass(r["bethesda_system"])
		if err != nil {
			t.Fatal(err)
		}
		byImg[r["image_filename"]] = append(byImg[r["image_filename"]], point{x: atof(r["x_img"]), y: atof(r["y_img"]), class: c.String()})
	}
	names := make([]string, 0, len(byImg))
	for k := range byImg {
		names = append(names, k)
	}
	sort.Strings(names)
	if testing.Short() && len(names) > 8 {
		names = names[:8]
	}
	det := NewDetector(DetectOptions{})
	hit, tot := map[string]int{}, map[string]int{}
	strict := 0
	var areas []float64
	for _, name := range names {
		img, err := dataset.LoadRGBA(filepath.Join(dir, "cric", "fields", "images", name))
		if err != nil {
			t.Fatal(err)
		}
		ns := det.Detect(img)
		for _, p := range byImg[name] {
			tot[p.class]++
			tot["all"]++
			if k, ok := nearDetection(p, ns, 10); ok {
				if math.Hypot(p.x-ns[k].X, p.y-ns[k].Y) <= 10 {
					strict++
				}
				hit[p.class]++
				hit["all"]++
				if p.class == "NILM" {
					areas = append(areas, float64(ns[k].AreaPx))
				}
			}
		}
	}
	for _, c := range []string{"NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC", "all"} {
		t.Logf("CRIC fields (%d images) recall@10px %-6s %4d/%4d = %.3f", len(names), c, hit[c], tot[c], float64(hit[c])/math.Max(1, float64(tot[c])))
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

// ISBIPixelUM is the pixel size assumed for the ISBI 2014 EDF images in tests.
const isbiPixelUM = 0.3

func TestISBIDetection(t *testing.T) {
	dir := dataDir(t)
	rows := readCSV(t, filepath.Join(dir, "isbi2014", "nuclei.csv"))
	byImg := map[string][]point{}
	for _, r := range rows {
		byImg[r["image"]] = append(byImg[r["image"]], point{x: atof(r["x"]), y: atof(r["y"]), area: atof(r["area_px"])})
	}
	names := make([]string, 0, len(byImg))
	for k := range byImg {
		names = append(names, k)
	}
	sort.Strings(names)
	det := NewDetector(DetectOptions{PixelUM: isbiPixelUM})
	var tp, nd, ng int
	var areaErr []float64
	for _, name := range names {
		img, err := dataset.LoadRGBA(filepath.Join(dir, "isbi2014", "images", name))
		if err != nil {
			t.Fatal(err)
		}
		ns := det.Detect(img)
		m, gm := matchPoints(byImg[name], ns, 10)
		for g, k := range gm {
			if k >= 0 {
				areaErr = append(areaErr, float64(ns[k].AreaPx)/byImg[name][g].area)
			}
		}
		p, r := float64(m)/math.Max(1, float64(len(ns))), float64(m)/float64(len(byImg[name]))
		t.Logf("ISBI %s: gt %d det %d tp %d P %.3f R %.3f", name, len(byImg[name]), len(ns), m, p, r)
		tp += m
		nd += len(ns)
		ng += len(byImg[name])
	}
	p, r := float64(tp)/float64(nd), float64(tp)/float64(ng)
	f1 := 2 * p * r / (p + r)
	sort.Float64s(areaErr)
	t.Logf("ISBI total (PixelUM %.2f, tol 10 px): P %.3f R %.3f F1 %.3f; det/gt area ratio median %.2f", isbiPixelUM, p, r, f1, areaErr[len(areaErr)/2])
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
	d := NewDetector(DetectOptions{})
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
	m, err := DefaultModel()
	if err != nil {
		b.Fatal(err)
	}
	a := NewAnalyzer(DetectOptions{}, m)
	n := len(a.Analyze(img))
	b.ReportAllocs()
	for b.Loop() {
		a.Analyze(img)
	}
	b.ReportMetric(float64(n), "cells/tile")
}
