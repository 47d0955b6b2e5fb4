package outbox_test

import (
	"errors"
	"image"
	"path/filepath"
	"testing"

	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

// TestPutImage: an image is a durable entry keyed by its image_id (a
// retry returns the held entry), survives a reopen, becomes a delivery
// carrying its result ID, and goes on an ack. An image the disk cannot
// hold beside the room kept for results is refused with ErrFull without
// stopping new slides (Admit).
func TestPutImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	free := uint64(1 << 40)
	mod := func(o *outbox.Options) {
		o.MinFreeBytes = 1 << 20
		o.FreeSpace = func(string) (uint64, error) { return free, nil }
	}
	ob := open(t, path, mod)
	m, err := telemetry.NewImage("r1", "S-1", "res-1", telemetry.ImageCrop, 0, 2, image.NewRGBA(image.Rect(0, 0, 64, 48)), 0.25)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ob.PutImage(m)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := ob.PutImage(m); err != nil || again.Seq != e.Seq || ob.Depth() != 1 {
		t.Fatalf("retry: %+v %v depth %d", again, err, ob.Depth())
	}
	ob.Close()
	ob = open(t, path, mod)
	got, err := ob.Pending(0, 10)
	if err != nil || len(got) != 1 {
		t.Fatalf("after reopen: %v %v", got, err)
	}
	d := ob.Delivery(got[0], 1, 1)
	if d.Kind != telemetry.KindImage || d.ID != m.ImageID || d.ResultID != "res-1" || d.SlideID != "S-1" {
		t.Fatalf("delivery %+v", d)
	}
	if n, err := ob.Ack(m.ImageID); n != 1 || err != nil {
		t.Fatalf("ack: %d %v", n, err)
	}
	bad := m
	bad.Body.PNG = []byte("GIF89a")
	if _, err := ob.PutImage(bad); !errors.Is(err, telemetry.ErrInvalidPayload) {
		t.Fatalf("not a PNG: %v", err)
	}
	free = 1<<20 + 100 // room for results only
	m.ImageID = "img-2"
	if _, err := ob.PutImage(m); !errors.Is(err, outbox.ErrFull) {
		t.Fatalf("image on a nearly full disk: %v, want ErrFull", err)
	}
	if err := ob.Admit(); err != nil {
		t.Fatalf("a refused image must not stop new slides: %v", err)
	}
}
