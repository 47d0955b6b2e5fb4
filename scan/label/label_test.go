package label_test

import (
	"errors"
	"image"
	"testing"

	"papscan/hal/sim/slide"
	"papscan/scan/label"
)

// overview renders the label end of a slide as the overview camera sees
// it: 25 µm per pixel, with the holder around it.
func overview(id string, code slide.LabelCode) *image.RGBA {
	s := slide.Synthetic(slide.Spec{ID: id, Seed: 3, Label: code, SpotDiameterUM: 2000})
	img := image.NewRGBA(image.Rect(0, 0, 900, 1100))
	slide.RenderOverviewAt(s, img, -1500, -1200, 25)
	return img
}

func TestReadSymbologies(t *testing.T) {
	for _, tc := range []struct {
		code   slide.LabelCode
		format string
	}{{slide.LabelCode128, "code128"}, {slide.LabelDataMatrix, "datamatrix"}, {slide.LabelQR, "qr"}} {
		id := "C26-00417-" + tc.format
		got, err := label.Read(overview(id, tc.code))
		if err != nil {
			t.Errorf("%s: %v", tc.format, err)
			continue
		}
		if got.Text != id || got.Format != tc.format {
			t.Errorf("%s: read %+v, want %q", tc.format, got, id)
		}
	}
}

func TestDamagedLabelIsUnreadable(t *testing.T) {
	_, err := label.Read(overview("C26-00418", slide.LabelDamaged))
	if !errors.Is(err, label.ErrUnreadable) {
		t.Fatalf("damaged label: err %v, want ErrUnreadable", err)
	}
	// Bare glass and an empty image are unreadable too, not a panic.
	for _, img := range []image.Image{image.NewRGBA(image.Rect(0, 0, 200, 100)), image.NewRGBA(image.Rect(0, 0, 0, 0)), nil} {
		if _, err := label.Read(img); !errors.Is(err, label.ErrUnreadable) {
			t.Errorf("blank image: err %v", err)
		}
	}
}
