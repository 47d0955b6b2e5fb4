package render

import (
	"image"
	"testing"

	"papscan/classify"
	"papscan/scan"
)

// TestOverviewRingsCells: a cell is ringed in its class colour where its
// stage position falls on the mosaic, and the mosaic itself is not drawn on.
func TestOverviewRingsCells(t *testing.T) {
	m := scan.Mosaic{Image: image.NewRGBA(image.Rect(0, 0, 100, 80)), OriginX: 1000, OriginY: 2000, UMPerPixel: 4}
	// Pixel (50, 40) is stage (1200, 2160) µm.
	cells := []classify.Cell{{Class: classify.HSIL, StageX: 1200, StageY: 2160}}
	img := Overview(m, cells)
	if img == nil || img.Rect != m.Image.Rect {
		t.Fatalf("overview %v", img)
	}
	if got := img.RGBAAt(59, 40); got != classColor(classify.HSIL) {
		t.Errorf("ring pixel (59, 40) = %v, want %v", got, classColor(classify.HSIL))
	}
	if got := img.RGBAAt(50, 40); got.A != 0 {
		t.Errorf("centre (50, 40) drawn on: %v", got)
	}
	for _, v := range m.Image.Pix {
		if v != 0 {
			t.Fatal("Overview drew on the mosaic it was given")
		}
	}
	if Overview(scan.Mosaic{}, cells) != nil {
		t.Error("an empty mosaic gave an overview")
	}
	if Gallery(cells) != nil {
		t.Error("cells without crops gave a gallery")
	}
}
