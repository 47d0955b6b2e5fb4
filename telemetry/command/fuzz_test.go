package command

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// seedMessages are valid and malformed command messages: the fuzz seeds
// (also written to testdata/fuzz by TestWriteFuzzCorpus).
func seedMessages(t testing.TB) [][]byte {
	at := t0.Add(-time.Second)
	var out [][]byte
	add := func(key SigningKey, c Command) {
		b, err := Sign(key, c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	for i, tc := range []struct {
		typ  string
		args string
	}{
		{TypeStartMagazine, `{"magazine":"M0001"}`},
		{TypePause, ``},
		{TypeResume, `null`},
		{TypeAbort, `{"reason":"operator"}`},
		{TypeStatus, `{}`},
		{TypeSelfTest, `{"level":"full"}`},
		{TypeSetLogLevel, `{"level":"warn"}`},
		{TypeReloadConfig, ``},
		{TypeFetch, `{"slide_id":"M0001-S03","result_id":"0192f3c4-0000-7000-8000-000000000001","item":"gallery"}`},
		{TypeFetch, `{"slide_id":"M0001-S03","result_id":"r1","item":"tile","tile":"tile_001_002.png"}`},
		{TypeFetch, `{"slide_id":"..","result_id":"r1","item":"tile","tile":"../../etc/passwd"}`},
		{"format_disk", ``},
	} {
		c := Command{ID: fmt.Sprintf("c-%d", i), Type: tc.typ, Robot: testRobot, IssuedAt: at,
			Nonce: fmt.Sprintf("seed-nonce-%06d-aaaa", i)}
		if tc.args != "" {
			c.Args = json.RawMessage(tc.args)
		}
		add(fleetKey, c)
	}
	c := Command{ID: "c-x", Type: TypeStatus, Robot: "robot-08", IssuedAt: at, Nonce: "seed-nonce-wrong-robot"}
	add(fleetKey, c)
	c.Robot = testRobot
	add(evilKey, c)
	add(SigningKey{Key: otherKey.Key}, c)
	c.IssuedAt = t0.Add(-time.Hour)
	add(fleetKey, c)
	out = append(out,
		signRaw(fleetKey, `{"id":"c-1","type":"status","TYPE":"abort","robot":"robot-07","issued_at":"2026-11-21T08:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`),
		signRaw(fleetKey, `{"id":"c-1","type":"status","type":"abort","robot":"robot-07","issued_at":"2026-11-21T08:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA"}`),
		[]byte(`{"schema":"papscan.command/v1","body":"e30=","sig":"`+strings.Repeat("A", 86)+`=="}`),
		[]byte(`{"schema":"papscan.command/v1","key_id":"fleet-a","body":"","sig":""}`),
		[]byte(`{}`), []byte(`null`), []byte(`[`), []byte(``),
	)
	return out
}

// FuzzDecode feeds arbitrary messages to the verifier: it must never
// panic, and anything it accepts must re-verify: the signature checks
// out under the key it names, the fields are in range for this robot at
// this time, and a second Verify gives the same command.
func FuzzDecode(f *testing.F) {
	for _, m := range seedMessages(f) {
		f.Add(m)
	}
	v := testVerifier(f)
	keys := map[string]ed25519.PublicKey{}
	for _, k := range v.Keys.Keys() {
		keys[k.ID] = k.Key
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _, _ = Peek(msg)
		got, verr := v.Verify(msg, t0)
		if verr != nil {
			if verr.Code == "" || verr.Code == CodeOK || verr.Message == "" {
				t.Fatalf("refusal without code or message: %+v", verr)
			}
			return
		}
		pub, ok := keys[got.KeyID]
		if !ok || !ed25519.Verify(pub, signedBytes(got.Body), got.Sig) {
			t.Fatalf("accepted a message whose signature does not verify under %q", got.KeyID)
		}
		if got.Robot != testRobot || !idRe.MatchString(got.ID) || !nonceRe.MatchString(got.Nonce) ||
			got.IssuedAt.Before(t0.Add(-v.MaxAge)) || got.IssuedAt.After(t0.Add(v.ClockSkew)) {
			t.Fatalf("accepted out-of-range command %+v", got.Command)
		}
		again, verr := v.Verify(msg, t0)
		if verr != nil || !reflect.DeepEqual(got, again) {
			t.Fatalf("second Verify differs: %v", verr)
		}
	})
}

// FuzzBody signs arbitrary body bytes with a trusted key, so the fuzzer
// reaches the body and args parsers. Anything accepted must survive a
// round trip: re-encoding the parsed command, signing and verifying it
// gives the same command and args.
func FuzzBody(f *testing.F) {
	for _, m := range seedMessages(f) {
		var s Signed
		if json.Unmarshal(m, &s) == nil {
			if b, err := b64.DecodeString(s.Body); err == nil {
				f.Add(b)
			}
		}
	}
	v := testVerifier(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > MaxBodyBytes {
			return
		}
		msg, err := SignBody(fleetKey, body)
		if err != nil {
			t.Fatal(err)
		}
		got, verr := v.Verify(msg, t0)
		if verr != nil {
			return
		}
		msg2, err := Sign(fleetKey, got.Command)
		if err != nil {
			t.Fatalf("re-sign accepted command: %v", err)
		}
		again, verr := v.Verify(msg2, t0)
		if verr != nil {
			t.Fatalf("re-encoded command refused: %v\nbody %q", verr, body)
		}
		if again.ID != got.ID || again.Type != got.Type || again.Robot != got.Robot || again.Nonce != got.Nonce ||
			!again.IssuedAt.Equal(got.IssuedAt) || !reflect.DeepEqual(again.Parsed, got.Parsed) {
			t.Fatalf("round trip differs:\n%+v\n%+v", got.Command, again.Command)
		}
	})
}

// TestWriteFuzzCorpus writes the seed messages to testdata/fuzz when
// PAPSCAN_WRITE_CORPUS=1 (run it after changing seedMessages), and
// otherwise checks that the committed corpus is there.
func TestWriteFuzzCorpus(t *testing.T) {
	for _, target := range []string{"FuzzDecode", "FuzzBody"} {
		dir := filepath.Join("testdata", "fuzz", target)
		if os.Getenv("PAPSCAN_WRITE_CORPUS") != "1" {
			if ents, err := os.ReadDir(dir); err != nil || len(ents) == 0 {
				t.Errorf("no seed corpus in %s (run with PAPSCAN_WRITE_CORPUS=1): %v", dir, err)
			}
			continue
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, m := range seedMessages(t) {
			if target == "FuzzBody" {
				var s Signed
				if json.Unmarshal(m, &s) != nil {
					continue
				}
				b, err := b64.DecodeString(s.Body)
				if err != nil {
					continue
				}
				m = b
			}
			data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", m)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
