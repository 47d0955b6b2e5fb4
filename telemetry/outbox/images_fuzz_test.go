package outbox_test

import (
	"encoding/json"
	"image"
	"os"
	"path/filepath"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

// FuzzRederiveImages: whatever a result's images.json holds, Rederive
// never panics, and every image it commits is a valid image of that
// result whose PNG is the stored file.
func FuzzRederiveImages(f *testing.F) {
	m, err := telemetry.NewImage("r1", "M1-S00", "cc01", telemetry.ImageCrop, 0, 1, image.NewRGBA(image.Rect(0, 0, 4, 4)), 0.25)
	if err != nil {
		f.Fatal(err)
	}
	m.ImageID = "cc01.img00"
	png := m.Body.PNG
	m.Body.PNG = nil
	good, _ := json.Marshal([]telemetry.ImageMessage{m})
	f.Add(good)
	f.Add([]byte(`[{"image_id":"../../x","slide_id":"M1-S00","result_id":"cc01"}]`))
	f.Add([]byte(`[null,{}]`))
	f.Add([]byte(`{"a":1}`))
	// One outbox for all inputs (opening one per input fsyncs too much
	// to fuzz); each input's entries are acked at its end.
	state := f.TempDir()
	ob, err := outbox.Open(filepath.Join(state, "outbox.db"), outbox.Options{MinFreeBytes: -1, Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ob.Close() })
	f.Fuzz(func(t *testing.T, manifest []byte) {
		dir := filepath.Join(state, "slides", "M1-S00", "cc01")
		if err := os.MkdirAll(filepath.Join(dir, "images"), 0o750); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string][]byte{
			"result.json":           []byte(`{"slide_id":"M1-S00","result_id":"cc01"}`),
			"images.json":           manifest,
			"images/cc01.img00.png": png,
		} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o640); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = ob.Rederive(state, time.Time{})
		es, err := ob.Pending(0, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if _, err := ob.Ack(e.ID); err != nil {
				t.Fatal(err)
			}
			if e.Kind != telemetry.KindImage {
				continue
			}
			var b telemetry.ImageBody
			if err := json.Unmarshal(e.Body, &b); err != nil || e.ID != "cc01.img00" || e.ResultID != "cc01" || e.SlideID != "M1-S00" || string(b.PNG) != string(png) {
				t.Fatalf("committed %+v (%v)", e, err)
			}
		}
	})
}
