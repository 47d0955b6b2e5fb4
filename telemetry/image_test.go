package telemetry

import (
	"errors"
	"image"
	"image/color"
	"strings"
	"testing"
)

func testImage(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 128, 255})
		}
	}
	return img
}

func TestImageRoundTrip(t *testing.T) {
	m, err := NewImage("r1", "S-1", "res-1", ImageCrop, 0, 3, testImage(96, 80), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	m.Body.Score, m.Body.Class, m.Body.StageXUM, m.Body.StageYUM = 0.93, "HSIL", 1234.5, 678.25
	b, err := EncodeImage(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeImage(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.ImageID != m.ImageID || got.Body.Width != 96 || got.Body.Height != 80 || got.Body.Class != "HSIL" || len(got.Body.PNG) != len(m.Body.PNG) {
		t.Fatalf("round trip: %+v", got.Body)
	}
}

func TestImageBadInput(t *testing.T) {
	good, err := NewImage("r1", "S-1", "res-1", ImageCrop, 0, 1, testImage(16, 16), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		edit  func(*ImageMessage)
		field string
	}{
		{"not png", func(m *ImageMessage) { m.Body.PNG = []byte("GIF89a....") }, "body.png"},
		{"truncated png", func(m *ImageMessage) { m.Body.PNG = m.Body.PNG[:len(m.Body.PNG)/2] }, "body.png"},
		{"size mismatch", func(m *ImageMessage) { m.Body.Width = 17 }, "body.png"},
		{"crop too big", func(m *ImageMessage) { m.Body.Width = MaxCropSide + 1 }, "body.width"},
		{"png too big", func(m *ImageMessage) { m.Body.PNG = make([]byte, MaxImagePNGBytes+1) }, "body.png"},
		{"role", func(m *ImageMessage) { m.Body.Role = "thumbnail" }, "body.role"},
		{"robot", func(m *ImageMessage) { m.RobotID = "r/1" }, "robot_id"},
		{"result id", func(m *ImageMessage) { m.ResultID = "" }, "result_id"},
		{"score", func(m *ImageMessage) { m.Body.Score = 2 }, "body.score"},
		{"index", func(m *ImageMessage) { m.Body.Index = 5 }, "body.index"},
	}
	for _, c := range cases {
		m := good
		m.Body.PNG = append([]byte(nil), good.Body.PNG...)
		c.edit(&m)
		err := m.Validate()
		if err == nil || !strings.Contains(err.Error(), "field "+c.field) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.field)
		}
	}
	m := good
	m.Body.PNG = []byte("JFIF")
	if err := m.Validate(); !errors.Is(err, ErrNotPNG) {
		t.Errorf("not png: %v, want ErrNotPNG", err)
	}
	if _, err := DecodeImage(make([]byte, MaxImageMessageBytes+1)); err == nil {
		t.Error("oversized message accepted")
	}
	if _, err := DecodeImage([]byte(`{"schema":`)); err == nil {
		t.Error("malformed JSON accepted")
	}
}

func FuzzDecodeImage(f *testing.F) {
	good, _ := NewImage("r1", "S-1", "res-1", ImageOverview, 0, 1, testImage(8, 8), 10)
	b, _ := EncodeImage(good)
	f.Add(b)
	f.Add([]byte(`{"schema":"papscan.telemetry/v1","kind":"image","body":{"png":"iVBORw0KGgo="}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeImage(b)
		if err != nil {
			return
		}
		if m.Body.Width > MaxImageSide || len(m.Body.PNG) > MaxImagePNGBytes {
			t.Fatalf("accepted out of bounds: %dx%d %d bytes", m.Body.Width, m.Body.Height, len(m.Body.PNG))
		}
	})
}
