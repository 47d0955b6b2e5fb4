package outbox_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

// fill commits n results to a fresh outbox at path and closes it; it
// returns their IDs by seq (ids[0] is seq 1).
func fill(t *testing.T, path string, n int) []string {
	t.Helper()
	ob, err := outbox.Open(path, outbox.Options{MinFreeBytes: -1, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range n {
		e, err := ob.PutResult(fmt.Sprintf("M1-S%02d", i), telemetry.NewID(), []byte(`{"verdict":"NILM","pad":"`+strings.Repeat("x", 300)+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.ID)
	}
	if err := ob.Close(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// lossEvent returns the body of the outbox's "outbox_damaged" event, or
// fails: a damaged outbox must tell the fleet what it lost.
func lossEvent(t *testing.T, ob *outbox.Outbox) map[string]any {
	t.Helper()
	es, err := ob.Pending(0, 1000)
	if err != nil {
		t.Fatalf("pending after recovery: %v", err)
	}
	for _, e := range es {
		if e.Kind == telemetry.KindEvent && e.Event == outbox.EventDamaged {
			var body map[string]any
			if err := json.Unmarshal(e.Body, &body); err != nil {
				t.Fatal(err)
			}
			return body
		}
	}
	t.Fatalf("no %q event in the reopened outbox (%d entries): the loss is silent", outbox.EventDamaged, len(es))
	return nil
}

func quarantined(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestZeroByteOutboxIsNotFresh (finding 2): a 0-byte outbox.db (a file
// system that lost the data of a file it had created) used to open as a
// fresh outbox: 4 results gone without a word. Now it is kept aside, the
// damage is reported (Damage, an error wrapping ErrStorage) and an event
// naming the lost sequence range goes to the fleet.
func TestZeroByteOutboxIsNotFresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	fill(t, path, 4)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	ob := open(t, path, nil)
	d := ob.Damage()
	if d == nil {
		t.Fatal("a 0-byte outbox opened as a fresh one without reporting damage")
	}
	if !errors.Is(d, outbox.ErrStorage) {
		t.Fatalf("damage %v does not wrap ErrStorage (the agent latches a storage fault on it)", d)
	}
	if len(quarantined(t, path)) != 1 {
		t.Fatalf("damaged file not kept aside: %v", quarantined(t, path))
	}
	body := lossEvent(t, ob)
	if body["lost_from_seq"] != float64(1) || body["lost_to_seq"] != float64(4) {
		t.Fatalf("loss event %v: want seq 1..4 lost", body)
	}
	// Sequence numbers go on after the lost ones: the fleet never sees a
	// seq twice for different entries.
	e, err := ob.PutResult("M1-S99", telemetry.NewID(), []byte(`{}`))
	if err != nil || e.Seq <= 5 {
		t.Fatalf("next seq %d (%v), want > 5", e.Seq, err)
	}
}

// TestTruncatedOutboxRecovered (finding 2): a truncated file used to open
// "ready" and stall the sender at the first bad entry. Now what is
// readable is recovered into a new file, the original is kept aside, and
// the loss is announced.
func TestTruncatedOutboxRecovered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	ids := fill(t, path, 40)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	ob := open(t, path, nil)
	if ob.Damage() == nil {
		t.Fatal("a truncated outbox opened without reporting damage")
	}
	if len(quarantined(t, path)) != 1 {
		t.Fatal("damaged file not kept aside")
	}
	lossEvent(t, ob)
	if err := ob.Check(); err != nil {
		t.Fatalf("recovered outbox: %v", err)
	}
	es, err := ob.Pending(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Kind == telemetry.KindResult && ids[e.Seq-1] != e.ID {
			t.Fatalf("recovered entry seq %d has ID %s, want %s", e.Seq, e.ID, ids[e.Seq-1])
		}
	}
}

// TestOverwrittenPageRecovered (finding 2): garbage over a data page used
// to leave the outbox "ready" with the sender stuck forever on the bad
// entry. Now the damaged entries are named in the loss event and the
// others are kept.
func TestOverwrittenPageRecovered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	fill(t, path, 40)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	junk := []byte(strings.Repeat("\xff{garbage}", 400))
	// Pages 2 and 3 are the initial freelist and root bucket; overwrite
	// from page 4 on, where bbolt put the entries.
	for off := int64(4 * 4096); off < st.Size(); off += 3 * 4096 {
		if _, err := f.WriteAt(junk, off+100); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	ob := open(t, path, nil)
	if ob.Damage() == nil {
		t.Fatal("an overwritten outbox opened without reporting damage")
	}
	lossEvent(t, ob)
	if err := ob.Check(); err != nil {
		t.Fatalf("recovered outbox: %v", err)
	}
	if _, err := ob.Pending(0, 1000); err != nil {
		t.Fatalf("sender would stall: %v", err)
	}
}

// TestMetaRollbackDetected (finding 2): bbolt keeps two meta pages and
// silently falls back to the older one when the newer is damaged, which
// rolls back the last commit (a result gone without a trace). The outbox
// keeps its high-water sequence in a second file and reports the rollback.
func TestMetaRollbackDetected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	ids := fill(t, path, 3)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// The meta pages are pages 0 and 1; txid at byte 64 of each.
	var buf [8]byte
	txid := func(page int64) uint64 {
		if _, err := f.ReadAt(buf[:], page*4096+64); err != nil {
			t.Fatal(err)
		}
		return binary.LittleEndian.Uint64(buf[:])
	}
	newest := int64(0)
	if txid(1) > txid(0) {
		newest = 1
	}
	if _, err := f.WriteAt([]byte("overwritten"), newest*4096+20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	ob := open(t, path, nil)
	if ob.Damage() == nil {
		t.Fatal("a rolled-back outbox opened without reporting damage")
	}
	body := lossEvent(t, ob)
	// The rolled-back commit's pages are still on disk: the raw scan
	// brings the result back. Were they gone, the event would name seq 3.
	es, err := ob.Pending(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	held := false
	for _, e := range es {
		held = held || e.ID == ids[2]
	}
	if !held && body["lost_to_seq"] != float64(3) {
		t.Fatalf("the rolled-back result is neither recovered nor named lost: %v", body)
	}
	if !held {
		t.Log("rolled-back result lost and announced")
	}
}

// TestSoundOutboxNoDamage: a sound file reopens without a damage report
// or an extra event, also when the high-water record is missing (an
// outbox written by an older version).
func TestSoundOutboxNoDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	fill(t, path, 3)
	if err := os.Remove(path + ".hwm"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		ob, err := outbox.Open(path, outbox.Options{MinFreeBytes: -1, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		if d := ob.Damage(); d != nil || ob.Depth() != 3 {
			t.Fatalf("sound file: damage %v, depth %d", d, ob.Depth())
		}
		ob.Close()
	}
	if m := quarantined(t, path); len(m) != 0 {
		t.Fatalf("sound file quarantined: %v", m)
	}
}

// TestRederive: results stored as <state>/slides/<slide>/<id>/result.json
// are committed again (once), the rest is left alone, and files that lie
// about their IDs or point outside the state directory are skipped.
func TestRederive(t *testing.T) {
	state := t.TempDir()
	put := func(slide, id, body string) {
		d := filepath.Join(state, "slides", slide, id)
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "result.json"), []byte(body), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	put("M1-S00", "aa01", `{"slide_id":"M1-S00","result_id":"aa01","verdict":"NILM"}`)
	put("M1-S01", "aa02", "{\n  \"slide_id\": \"M1-S01\",\n  \"result_id\": \"aa02\",\n  \"verdict\": \"INCOMPLETE\"\n}\n")
	put("M1-S02", "aa03", `{"slide_id":"M1-S09","result_id":"aa03"}`) // lies about its slide
	outside := filepath.Join(t.TempDir(), "result.json")
	if err := os.WriteFile(outside, []byte(`{"slide_id":"M1-S03","result_id":"aa04"}`), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "slides", "M1-S03", "aa04"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(state, "slides", "M1-S03", "aa04", "result.json")); err != nil {
		t.Fatal(err)
	}
	ob := open(t, filepath.Join(state, "outbox.db"), nil)
	if _, err := ob.PutResult("M1-S00", "aa01", []byte(`{"slide_id":"M1-S00","result_id":"aa01","verdict":"NILM"}`)); err != nil {
		t.Fatal(err)
	}
	n, err := ob.Rederive(state, time.Time{})
	if n != 1 {
		t.Fatalf("rederived %d results, want 1 (aa02; aa01 is held)", n)
	}
	if err == nil || !strings.Contains(err.Error(), "2 result or image files skipped") {
		t.Fatalf("error %v, want the lying and the symlinked file named", err)
	}
	es, err := ob.Pending(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[1].ID != "aa02" || es[1].SlideID != "M1-S01" || !json.Valid(es[1].Body) || strings.Contains(string(es[1].Body), "\n") {
		t.Fatalf("entries %+v", es)
	}
	if n, _ := ob.Rederive(state, time.Time{}); n != 0 {
		t.Fatalf("second rederive committed %d, want 0", n)
	}
}

// TestRederiveImages: the images StoreImages kept beside a result are
// committed again after it under their image IDs; a manifest entry that
// names another result, or whose PNG is a symlink, is skipped and named.
func TestRederiveImages(t *testing.T) {
	state := t.TempDir()
	slide, res := "M1-S00", "bb01"
	var msgs []telemetry.ImageMessage
	for i := range 2 {
		m, err := telemetry.NewImage("r1", slide, res, telemetry.ImageCrop, i, 2, image.NewRGBA(image.Rect(0, 0, 8+i, 8)), 0.25)
		if err != nil {
			t.Fatal(err)
		}
		m.ImageID = fmt.Sprintf("%s.img%02d", res, i)
		msgs = append(msgs, m)
	}
	if err := outbox.StoreImages(state, msgs); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(state, "slides", slide, res)
	if err := os.WriteFile(filepath.Join(dir, "result.json"), []byte(`{"slide_id":"M1-S00","result_id":"bb01"}`), 0o640); err != nil {
		t.Fatal(err)
	}
	ob := open(t, filepath.Join(state, "outbox.db"), nil)
	n, err := ob.Rederive(state, time.Time{})
	if n != 3 || err != nil {
		t.Fatalf("rederived %d (%v), want 3 (the result and its 2 images)", n, err)
	}
	es, err := ob.Pending(0, 10)
	if err != nil || len(es) != 3 || es[0].Kind != telemetry.KindResult || es[1].ID != msgs[0].ImageID || es[2].ID != msgs[1].ImageID || es[2].ResultID != res {
		t.Fatalf("entries %+v, %v", es, err)
	}
	if n, err := ob.Rederive(state, time.Time{}); n != 0 || err != nil {
		t.Fatalf("second rederive: %d, %v", n, err)
	}
	// Hostile files: the manifest names another result; a PNG points
	// outside the state directory.
	outside := filepath.Join(t.TempDir(), "x.png")
	if err := os.WriteFile(outside, msgs[0].Body.PNG, 0o640); err != nil {
		t.Fatal(err)
	}
	png1 := filepath.Join(dir, "images", msgs[1].ImageID+".png")
	if err := os.Remove(png1); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, png1); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "images.json"))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`"result_id":"bb01","image_id":"bb01.img00"`), []byte(`"result_id":"bb02","image_id":"bb01.img00"`), 1)
	if err := os.WriteFile(filepath.Join(dir, "images.json"), b, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Ack(res, msgs[0].ImageID, msgs[1].ImageID); err != nil {
		t.Fatal(err)
	}
	n, err = ob.Rederive(state, time.Time{})
	if n != 1 || err == nil || !strings.Contains(err.Error(), "bb02") || !strings.Contains(err.Error(), "img01.png") {
		t.Fatalf("rederived %d, err %v; want the result only, the two bad images named", n, err)
	}
}
