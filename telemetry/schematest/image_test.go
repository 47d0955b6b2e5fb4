package schematest

import (
	"image"
	"image/color"
	"testing"
	"time"

	"papscan/telemetry"
)

// TestImageMessageValidates: what telemetry.EncodeImage produces (the robot
// does not publish images yet; see realProducers) validates against
// docs/schemas/image.json, and the schema refuses a payload that is not a
// PNG.
func TestImageMessageValidates(t *testing.T) {
	s := loadSpec(t)
	ch := s.channels["image"]
	if ch == nil {
		t.Fatal("no image channel in docs/asyncapi.yaml")
	}
	img := image.NewRGBA(image.Rect(0, 0, 100, 100))
	for i := range img.Pix {
		img.Pix[i] = uint8(i)
	}
	img.Set(0, 0, color.RGBA{1, 2, 3, 255})
	for _, role := range []string{telemetry.ImageCrop, telemetry.ImageOverview} {
		m, err := telemetry.NewImage(robot, "S-1", telemetry.NewID(), role, 0, 2, img, 0.25)
		if err != nil {
			t.Fatal(err)
		}
		m.MessageID, m.SessionID, m.Seq, m.SentAt = telemetry.NewID(), telemetry.NewID(), 3, time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
		m.OutboxSession, m.OutboxSeq, m.OutboxFloor, m.Attempt = telemetry.NewID(), 9, 1, 1
		m.Body.Score, m.Body.Class, m.Body.StageXUM = 0.5, "LSIL", 1000
		b, err := telemetry.EncodeImage(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.validate(b); err != nil {
			t.Errorf("%s: %v\n%s", role, err, b[:200])
		}
	}
	bad := []byte(`{"schema":"papscan.telemetry/v1","kind":"image","robot_id":"` + robot + `","slide_id":"S","result_id":"r","image_id":"i","body":{"role":"crop","index":0,"of":1,"width":1,"height":1,"png":"R0lGODlh","pixel_um":0.5}}`)
	if err := ch.validate(bad); err == nil {
		t.Error("a GIF passed as png validates")
	}
}
