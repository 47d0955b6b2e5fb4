package render

import (
	"image"
	"testing"

	"papscan/classify"
)

// TestGalleryCaption: each gallery cell says what the model suspects (grade
// and score, class and P(high grade)) and the captions fit their column.
func TestGalleryCaption(t *testing.T) {
	var p [classify.NumClasses]float32
	p[classify.HSIL], p[classify.ASCH], p[classify.NILM] = 0.6, 0.2, 0.2
	c := classify.Cell{Probs: p, Score: classify.SuspicionScore(p)}
	c.Class = classify.HSIL
	got := Caption(c)
	if got[0] != "HIGH GRADE 0.80" || got[1] != "HSIL P(abn) 0.80" {
		t.Errorf("caption %q", got)
	}
	p = [classify.NumClasses]float32{}
	p[classify.LSIL], p[classify.NILM] = 0.55, 0.45
	if g := suspectedGrade(p); g != "LOW GRADE" {
		t.Errorf("low-grade cell suspected %s", g)
	}
	lc := classify.Cell{Probs: p, Score: classify.SuspicionScore(p), Class: classify.LSIL}
	if got := Caption(lc); got[0] != "LOW GRADE 0.55" || got[1] != "LSIL P(abn) 0.55" {
		t.Errorf("low-grade caption %q", got)
	}
	crop := image.NewRGBA(image.Rect(0, 0, 64, 64))
	c.Crop = crop
	img := Gallery([]classify.Cell{c, c})
	// Two cells, crops at 2x (128 px), six columns.
	if img == nil || img.Rect.Dx() < 2*(128+8) || img.Rect.Dy() < 128+2*13 {
		t.Fatalf("gallery %v", img.Rect)
	}
}
