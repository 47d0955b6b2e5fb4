package telemetry_test

import (
	"errors"
	"strings"
	"testing"

	"papscan/telemetry"
)

func TestDecodeAckReplay(t *testing.T) {
	a, err := telemetry.DecodeAck("r1", []byte(`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","receiver":"f","ids":["a","b"]}`))
	if err != nil || len(a.IDs) != 2 {
		t.Fatalf("%+v %v", a, err)
	}
	for _, c := range []struct{ in, field string }{
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r2","ids":["a"]}`, "robot_id"},
		{`{"schema":"x","kind":"ack","robot_id":"r1","ids":["a"]}`, "schema"},
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":[]}`, "ids"},
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":[""]}`, "ids[0]"},
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":["a"],"evil":1}`, "evil"},
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":["a"]} {}`, "trailing"},
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":["a"],"key_id":"k"}`, "key_id and sig"},
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":["a"],"key_id":"k","sig":"AAAA"}`, "field sig"},
		{`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","receiver":"f\u0000","ids":["a"]}`, "receiver"},
	} {
		_, err := telemetry.DecodeAck("r1", []byte(c.in))
		if !errors.Is(err, telemetry.ErrBadMessage) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v, want an error naming %q", c.in, err, c.field)
		}
	}
	r, err := telemetry.DecodeReplay("r1", []byte(`{"schema":"papscan.telemetry/v1","kind":"replay","robot_id":"r1","outbox_session":"s","from_seq":3,"to_seq":5}`))
	if err != nil || r.FromSeq != 3 || r.ToSeq != 5 {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := telemetry.DecodeReplay("r1", []byte(`{"schema":"papscan.telemetry/v1","kind":"replay","robot_id":"r1","from_seq":5,"to_seq":3}`)); err == nil || !strings.Contains(err.Error(), "to_seq") {
		t.Errorf("reversed range: %v", err)
	}
}

func FuzzDecodeInbound(f *testing.F) {
	f.Add([]byte(`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":["a"]}`))
	f.Add([]byte(`{"schema":"papscan.telemetry/v1","kind":"replay","robot_id":"r1","from_seq":1}`))
	f.Add([]byte(`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r1","ids":["a"],"key_id":"k","sig":"` + strings.Repeat("A", 86) + `=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, err := telemetry.DecodeAck("r1", b); err == nil && (a.RobotID != "r1" || len(a.IDs) == 0) {
			t.Fatalf("accepted a bad ack: %+v", a)
		}
		if r, err := telemetry.DecodeReplay("r1", b); err == nil && r.ToSeq != 0 && r.ToSeq < r.FromSeq {
			t.Fatalf("accepted a bad replay: %+v", r)
		}
	})
}
