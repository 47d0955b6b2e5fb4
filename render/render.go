package render

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"papscan/classify"
	"papscan/scan"
)

// File names of a slide's images in its result directory.
const (
	OverviewFile = "overview.png"
	GalleryFile  = "gallery.png"
)

// WriteFiles stores r under stateDir/slides/<slide>/<result_id>/ with its
// images: scan.Report.WriteFiles with Images(r).
func WriteFiles(r *scan.Report, stateDir string) (scan.Files, error) {
	return r.WriteFiles(stateDir, Images(r)...)
}

// Images are r's images as PNG files for scan.Report.WriteFiles: the
// overview when a tile was scanned, then the gallery when a top cell has
// a crop.
func Images(r *scan.Report) []scan.ImageFile {
	var out []scan.ImageFile
	if m, ok := r.Mosaic(); ok {
		out = append(out, pngFile(OverviewFile, Overview(m, r.Result.Top)))
	}
	if img := Gallery(r.Result.Top); img != nil {
		out = append(out, pngFile(GalleryFile, img))
	}
	return out
}

func pngFile(name string, img image.Image) scan.ImageFile {
	return scan.ImageFile{Name: name, Encode: func(w io.Writer) error { return png.Encode(w, img) }}
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

// Overview returns a copy of the mosaic m with cells ringed by class
// colour at their stage position, or nil when m has no image.
func Overview(m scan.Mosaic, cells []classify.Cell) *image.RGBA {
	if m.Image == nil || m.UMPerPixel <= 0 {
		return nil
	}
	img := image.NewRGBA(m.Image.Rect)
	copy(img.Pix, m.Image.Pix)
	for _, c := range cells {
		x := (c.StageX - m.OriginX) / m.UMPerPixel
		y := (c.StageY - m.OriginY) / m.UMPerPixel
		ring(img, x, y, 9, 2, classColor(c.Class))
	}
	return img
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

// Gallery lays out the crops of top (the cells without a crop are left
// out) in a grid, most suspicious first,
// each enlarged 2x (nearest neighbour, so a cytologist sees the nucleus at
// 100 % zoom), framed in the colour of the grade the model suspects and
// captioned with Caption, or nil when there are none.
func Gallery(top []classify.Cell) *image.RGBA {
	var cells []classify.Cell
	for _, c := range top {
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
		for _, s := range Caption(c) {
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
		for l, s := range Caption(c) {
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

// Caption is what the model suspects of a gallery cell, in two lines: the
// grade it suspects with that grade's probability, then the most probable
// class and the ranking score P(abn) = 1 − P(NILM) (the gallery's order).
func Caption(c classify.Cell) [2]string {
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
