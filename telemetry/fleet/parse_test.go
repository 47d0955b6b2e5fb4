package fleet_test

import (
	"strings"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/fleet"
)

func TestParse(t *testing.T) {
	at := time.Now()
	for _, c := range []struct {
		name, payload string
		ok            bool
		kind, id      string
		reject        bool
	}{
		{"result", `{"schema":"papscan.telemetry/v1","kind":"result","robot_id":"r1","slide_id":"S","result_id":"x1"}`, true, "result", "x1", false},
		{"event", `{"schema":"papscan.telemetry/v1","kind":"event","robot_id":"r1","event":"door","event_id":"e1"}`, true, "event", "e1", false},
		{"state (no ack key)", `{"schema":"papscan.telemetry/v1","kind":"state","robot_id":"r1","state":"online"}`, false, "state", "", false},
		{"not json", `{"schema":`, true, fleet.KindInvalid, "", true},
		{"other schema", `{"schema":"v0","kind":"result","robot_id":"r1","result_id":"x"}`, true, fleet.KindInvalid, "", true},
		{"bad robot", `{"schema":"papscan.telemetry/v1","kind":"result","robot_id":"r/1","result_id":"x"}`, true, fleet.KindInvalid, "", true},
		{"image not png", `{"schema":"papscan.telemetry/v1","kind":"image","robot_id":"r1","slide_id":"S","result_id":"x1","image_id":"i1","body":{"role":"crop","width":1,"height":1,"png":"R0lGODlh","pixel_um":1}}`, true, "image", "i1", true},
	} {
		it, ok := fleet.Parse("papscan/r1/result/S", []byte(c.payload), "", at)
		if ok != c.ok || it.Kind != c.kind || it.ID != c.id || (it.Reject != "") != c.reject {
			t.Errorf("%s: ok %v kind %q id %q reject %q", c.name, ok, it.Kind, it.ID, it.Reject)
		}
	}
	big := `{"schema":"papscan.telemetry/v1","kind":"result","robot_id":"r1","result_id":"x","body":"` + strings.Repeat("a", telemetry.MaxImageMessageBytes) + `"}`
	it, ok := fleet.Parse("t", []byte(big), "", at)
	if !ok || it.Kind != fleet.KindInvalid || len(it.Raw) != fleet.MaxInvalidBytes {
		t.Errorf("oversized: ok %v kind %q, %d bytes kept", ok, it.Kind, len(it.Raw))
	}
}

// FuzzParse: any payload parses without a panic into an item that is
// either refused (kept, bounded) or carries a bounded ack key.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"schema":"papscan.telemetry/v1","kind":"result","robot_id":"r1","slide_id":"S","result_id":"x1","outbox_session":"s","outbox_seq":3}`))
	f.Add([]byte(`{"schema":"papscan.telemetry/v1","kind":"image","robot_id":"r1","slide_id":"S","result_id":"x1","image_id":"i","body":{"png":"iVBORw0KGgo="}}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, b []byte) {
		it, ok := fleet.Parse("papscan/r1/result/S", b, "site", time.Now())
		if !ok {
			return
		}
		if it.Kind == fleet.KindInvalid {
			if it.Reject == "" || len(it.Raw) > fleet.MaxInvalidBytes {
				t.Fatalf("refused item without reason or too long: %q %d", it.Reject, len(it.Raw))
			}
			return
		}
		if it.ID == "" || len(it.ID) > 128 || it.RobotID == "" {
			t.Fatalf("item %q/%q accepted", it.RobotID, it.ID)
		}
		if it.Kind == telemetry.KindImage && it.Image == nil && it.Reject == "" {
			t.Fatal("image neither decoded nor refused")
		}
	})
}
