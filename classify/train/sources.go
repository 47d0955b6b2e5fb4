package train

import (
	"context"
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"

	"papscan/classify"
	"papscan/classify/eval"
	"papscan/classify/internal/dataset"
)

// MoreFieldsPixelUM is the pixel size of cric/more-fields (the stored
// fields reduced 2x).
const MoreFieldsPixelUM = 2 * CRICPixelUM

// LoadMoreFields reads dataDir/cric/more-fields at the model's pixel size
// and returns two kinds of samples:
//
//   - every labelled point (NILM, ASC-US, LSIL) whose cell has no crop in
//     cric/cells (skip holds the crops' cell ids), measured at the
//     detection covering the point (or the point itself), marked Aux:
//     trained on, not scored with the crops;
//   - field negatives (Extra, NILM): detected objects farther than 6 µm
//     from every labelled point, all of them (up to allCap) on fields whose
//     points are all NILM (CRIC labels every abnormal cell of a field, so
//     every object there is a negative), up to perField on the others.
func LoadMoreFields(ctx context.Context, dataDir string, fm *classify.Model, skip map[string]bool, perField, allCap int, seed int64) (labelled, negatives []Sample, err error) {
	dir := filepath.Join(dataDir, "cric", "more-fields")
	path := filepath.Join(dir, "nuclei.csv")
	rows, names, err := eval.ReadPoints(path, "image_filename", "x_img", "y_img", "bethesda_system")
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	ids, err := readCellIDs(path)
	if err != nil {
		return nil, nil, err
	}
	px := fm.Params().PixelUM
	det := classify.NewDetector(detectOptions(px))
	rng := rand.New(rand.NewSource(seed))
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		img, err := dataset.LoadRGBA(filepath.Join(dir, "images", name))
		if err != nil {
			return nil, nil, err
		}
		k := MoreFieldsPixelUM / px
		img = classify.Rescale(img, MoreFieldsPixelUM, px)
		ns := det.Detect(img)
		img = fm.ForModelOwnGlass(img, nil)
		onlyNILM := true
		for i, p := range rows[name] {
			c, _ := classify.ParseClass(p.Class)
			if c != classify.NILM {
				onlyNILM = false
			}
			id := ids[name][i]
			if skip[id] {
				continue
			}
			q := eval.Point{X: (p.X+0.5)*k - 0.5, Y: (p.Y+0.5)*k - 0.5}
			n := classify.Nucleus{X: q.X, Y: q.Y, PixelUM: px}
			if j := eval.Covering(q, ns, eval.MatchTolUM/px); j >= 0 {
				n = ns[j]
			}
			f, ok := fm.Features(img, n)
			if !ok {
				continue
			}
			labelled = append(labelled, Sample{ID: "more/" + id, Field: name, Class: c, F: f, Aux: true,
				Crop: cutCrop(img, n.X, n.Y, px, CNNPixelUM), Wide: cutWide(img, n.X, n.Y, px, CNNPixelUM)})
		}
		var cand []classify.Nucleus
		for _, n := range ns {
			if n.Edge {
				continue
			}
			far := true
			for _, p := range rows[name] {
				if math.Hypot((p.X+0.5)*k-0.5-n.X, (p.Y+0.5)*k-0.5-n.Y)*px < 6 {
					far = false
					break
				}
			}
			if far {
				cand = append(cand, n)
			}
		}
		rng.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
		lim := perField
		if onlyNILM {
			lim = allCap
		}
		for i, n := range cand[:min(lim, len(cand))] {
			f, ok := fm.Features(img, n)
			if !ok {
				continue
			}
			negatives = append(negatives, Sample{ID: fmt.Sprintf("more/%s#%d", name, i), Field: name, Class: classify.NILM, F: f, Extra: true,
				Crop: cutCrop(img, n.X, n.Y, px, CNNPixelUM), Wide: cutWide(img, n.X, n.Y, px, CNNPixelUM)})
		}
	}
	return labelled, negatives, nil
}

// readCellIDs returns the cell_id column of a nuclei CSV per image, in
// file order (as eval.ReadPoints returns the points).
func readCellIDs(path string) (map[string][]string, error) {
	rows, _, err := eval.ReadPointsColumn(path, "image_filename", "cell_id")
	return rows, err
}

// SIPaKMeDClass maps a grade of the sipakmed manifest to the class the
// model is trained with: normal NILM, low (koilocytes, the hallmark of
// LSIL) LSIL, high (dyskeratocytes) HSIL; excluded cells (metaplastic) are
// trained as NILM, benign cells that mimic high grade.
func SIPaKMeDClass(g eval.CellGrade) classify.Class {
	switch g {
	case eval.GradeLow:
		return classify.LSIL
	case eval.GradeHigh:
		return classify.HSIL
	default:
		return classify.NILM
	}
}

// LoadCellSet reads the labelled-cell directory dir (with its manifest,
// see eval.FindManifest) with padding filled by the lab's glass colour and
// returns its cells as Aux samples whose Field is eval.Key(set, group).
func LoadCellSet(ctx context.Context, dir string, fm *classify.Model) ([]Sample, error) {
	m, _, err := eval.FindManifest(dir)
	if err != nil {
		return nil, err
	}
	cells, err := eval.ReadCellDir(dir, m)
	if err != nil {
		return nil, err
	}
	det := classify.NewDetector(detectOptions(m.PixelUM))
	var out []Sample
	for _, c := range cells {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := eval.LoadCellImage(dir, m, c, "glass")
		if err != nil {
			return nil, err
		}
		n, _ := eval.CentreNucleus(det, img)
		n.PixelUM = m.PixelUM
		g, hasGlass := m.Glass()
		img = fm.ForModel(img, g, hasGlass, nil)
		f, ok := fm.Features(img, n)
		if !ok {
			continue
		}
		out = append(out, Sample{ID: m.Name + "/" + c.File, Field: eval.Key(m.Name, c.Group), Class: SIPaKMeDClass(c.Grade), F: f, Aux: true, Other: true,
			Crop: cutCrop(img, n.X, n.Y, m.PixelUM, CNNPixelUM)})
	}
	return out, nil
}
