package schematest

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"papscan/telemetry/command"
)

// schemaBlind lists refusals the JSON Schema cannot express: the time
// window and target robot depend on the receiving robot, JSON Schema sees
// duplicate keys after a parser already merged them, and maxLength counts
// characters where the robot bounds IDs in bytes.
func schemaBlind(e *command.Error) bool {
	switch e.Code {
	case command.CodeStale, command.CodeWrongRobot:
		return true
	}
	return strings.Contains(e.Message, "duplicate object key") || strings.Contains(e.Message, "bytes")
}

// FuzzSchemaMatchesVerifier signs arbitrary body bytes with a trusted key
// and checks the robot's verifier against docs/schemas/command.json:
// everything the robot accepts, the schema accepts (the document never
// calls a working command invalid), and everything the schema accepts,
// the robot accepts unless the refusal is one the schema cannot express.
func FuzzSchemaMatchesVerifier(f *testing.F) {
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	corpus, _ := filepath.Glob("../command/testdata/fuzz/FuzzBody/*")
	for _, p := range corpus {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		_, lit, _ := strings.Cut(string(b), "\n")
		lit = strings.TrimSuffix(strings.TrimSpace(lit), ")")
		s, err := strconv.Unquote(strings.TrimPrefix(lit, "[]byte("))
		if err != nil {
			f.Fatalf("%s: %v", p, err)
		}
		f.Add([]byte(s))
	}
	head := `{"id":"c-1","robot":"robot-07","issued_at":"2026-11-21T08:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA",`
	for _, tail := range []string{
		`"type":"self_test","args":{"level":""}}`,
		`"type":"self_test","args":null}`,
		`"type":"abort","args":{"reason":""}}`,
		`"type":"abort","args":{"reason":"` + strings.Repeat("é", 256) + `"}}`,
		`"type":"abort","args":{"reason":"` + strings.Repeat("é", 257) + `"}}`,
		`"type":"fetch","args":{"slide_id":"S1","result_id":"r","item":"gallery","tile":""}}`,
		`"type":"fetch","args":{"slide_id":"S1","result_id":"r","item":"tile","tile":""}}`,
		`"type":"fetch","args":{"slide_id":"S\u00a01","result_id":"r","item":"result"}}`,
		`"type":"fetch","args":{"slide_id":"` + strings.Repeat("é", 100) + `","result_id":"r","item":"result"}}`,
		`"type":"start_magazine","args":null}`,
		`"type":"status","args":{}}`,
		`"type":"status","args":[]}`,
		`"type":"pause","args":{"x":1}}`,
	} {
		f.Add([]byte(head + tail))
	}
	f.Add([]byte(`{"id":"c-1","type":"status","robot":"robot-07","issued_at":"2026-11-21t08:00:00z","nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`))
	f.Add([]byte(`{"id":"c-1","type":"status","robot":"robot-07","issued_at":"2026-11-21T09:00:00+01:00","nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`))

	s := loadSpec(f)
	cmd := s.channels["cmd"]
	if cmd == nil || len(cmd.schemas) == 0 {
		f.Fatal("no cmd channel schema")
	}
	key := command.SigningKey{ID: "fleet-1", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))}
	ring, _ := command.NewKeyRing(key.Public())
	v := command.Verifier{RobotID: robot, Keys: ring, MaxAge: 2 * time.Minute, ClockSkew: 30 * time.Second}
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) == 0 || len(body) > command.MaxBodyBytes {
			return
		}
		msg, err := command.SignBody(key, body)
		if err != nil {
			t.Fatal(err)
		}
		_, verr := v.Verify(msg, t0)
		serr := cmd.validate(msg)
		switch {
		case verr == nil && serr != nil:
			t.Fatalf("robot accepts a command the schema refuses:\n%s\n%v", body, serr)
		case verr != nil && serr == nil && !schemaBlind(verr):
			t.Fatalf("schema accepts a command the robot refuses (%v):\n%s", verr, body)
		}
	})
}

// FuzzEnvelopeMatchesVerifier mutates whole signed messages: whatever the
// robot accepts (only envelope-level variations survive the signature:
// spacing, key order, escapes, key_id), the command schema accepts too.
func FuzzEnvelopeMatchesVerifier(f *testing.F) {
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	key := command.SigningKey{ID: "fleet-1", Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))}
	for _, typ := range []string{command.TypeStatus, command.TypePause} {
		c := command.Command{ID: "c-1", Type: typ, Robot: robot, IssuedAt: t0, Nonce: "AAAAAAAAAAAAAAAAAAAAAA"}
		m, err := command.Sign(key, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m)
		f.Add(bytes.ReplaceAll(m, []byte(`,`), []byte(" ,\n\t")))
		f.Add(bytes.Replace(m, []byte(`"key_id":"fleet-1"`), []byte(`"key_id":""`), 1))
	}
	s := loadSpec(f)
	cmd := s.channels["cmd"]
	ring, _ := command.NewKeyRing(key.Public())
	v := command.Verifier{RobotID: robot, Keys: ring, MaxAge: 2 * time.Minute, ClockSkew: 30 * time.Second}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if _, verr := v.Verify(msg, t0); verr == nil {
			if err := cmd.validate(msg); err != nil {
				t.Fatalf("robot accepts a message the schema refuses:\n%s\n%v", msg, err)
			}
		}
	})
}
