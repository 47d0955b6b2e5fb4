package command

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestAcceptsEveryType(t *testing.T) {
	cases := []struct {
		typ       string
		args      any
		call      string
		hasResult bool
	}{
		{TypeStartMagazine, StartMagazineArgs{Magazine: "M0001"}, "start_magazine:M0001", false},
		{TypePause, nil, "pause", false},
		{TypeResume, map[string]any{}, "resume", false},
		{TypeAbort, AbortArgs{Reason: "operator request"}, "abort:operator request", false},
		{TypeAbort, nil, "abort:", false},
		{TypeStatus, nil, "status", true},
		{TypeSelfTest, SelfTestArgs{Level: "full"}, "self_test:full", true},
		{TypeSelfTest, nil, "self_test:", true},
		{TypeSetLogLevel, SetLogLevelArgs{Level: "debug"}, "set_log_level:debug", false},
		{TypeReloadConfig, nil, "reload_config", false},
		{TypeFetch, FetchArgs{SlideID: "M0001-S03", ResultID: "0192f3c4-aaaa", Item: ItemGallery}, "fetch:slides/M0001-S03/0192f3c4-aaaa/gallery.png", true},
		{TypeFetch, FetchArgs{SlideID: "M0001-S03", ResultID: "r1", Item: ItemTile, Tile: "tile_003_007.png"}, "fetch:slides/M0001-S03/r1/tiles/tile_003_007.png", true},
	}
	seen := map[string]bool{}
	for _, tc := range cases {
		t.Run(tc.call, func(t *testing.T) {
			seen[tc.typ] = true
			r := newRig(t, nil)
			msg, cmd := mustSign(t, fleetKey, testRobot, tc.typ, tc.args, t0.Add(-time.Second))
			rep := r.d.Handle(t.Context(), msg)
			if !rep.OK || rep.Code != CodeOK || rep.ID != cmd.ID || rep.Type != tc.typ || rep.Robot != testRobot {
				t.Fatalf("reply %s", describe(rep))
			}
			if got := r.agent.Calls(); len(got) != 1 || got[0] != tc.call {
				t.Errorf("agent calls %q, want [%q]", got, tc.call)
			}
			if (rep.Result != nil) != tc.hasResult {
				t.Errorf("result %s, want present=%v", rep.Result, tc.hasResult)
			}
			a := r.lastAudit(t)
			if !a.Accepted || a.Code != CodeOK || a.ID != cmd.ID || a.KeyID != "fleet-a" || a.Nonce != cmd.Nonce || len(a.PayloadSHA256) != 64 {
				t.Errorf("audit %+v", a)
			}
		})
	}
	for _, typ := range Types {
		if !seen[typ] {
			t.Errorf("type %s not covered", typ)
		}
	}
}

func TestRotatedKeyWithoutKeyID(t *testing.T) {
	r := newRig(t, nil)
	c, _ := NewCommand(testRobot, TypeStatus, nil, t0)
	k := otherKey
	k.ID = "" // no key_id hint: every key is tried
	msg, err := Sign(SigningKey{ID: "", Key: k.Key}, c)
	if err != nil {
		t.Fatal(err)
	}
	if rep := r.d.Handle(t.Context(), msg); !rep.OK {
		t.Fatalf("reply %s", describe(rep))
	}
	if a := r.lastAudit(t); a.KeyID != "fleet-b" {
		t.Errorf("audit key %q, want fleet-b", a.KeyID)
	}
}

// envelope builds a Signed message by hand.
func envelope(keyID string, body, sig []byte) []byte {
	b, _ := json.Marshal(Signed{Schema: Schema, KeyID: keyID, Body: b64.EncodeToString(body), Sig: b64.EncodeToString(sig)})
	return b
}

// signRaw signs an arbitrary body (as the fleet would, correctly).
func signRaw(key SigningKey, body string) []byte {
	return envelope(key.ID, []byte(body), ed25519.Sign(key.Key, signedBytes([]byte(body))))
}

func bodyJSON(fields map[string]any) string {
	base := map[string]any{"id": "c-1", "type": "status", "robot": testRobot,
		"issued_at": t0.Format(time.RFC3339Nano), "nonce": "AAAAAAAAAAAAAAAAAAAAAA"}
	for k, v := range fields {
		if v == nil {
			delete(base, k)
		} else {
			base[k] = v
		}
	}
	b, _ := json.Marshal(base)
	return string(b)
}

func TestRefusals(t *testing.T) {
	good := bodyJSON(nil)
	goodSig := ed25519.Sign(fleetKey.Key, signedBytes([]byte(good)))
	tampered := []byte(good)
	tampered[len(tampered)-3] ^= 1

	cases := []struct {
		name   string
		msg    []byte
		code   Code
		msgHas string
		id     string // expected reply ID (peeked)
	}{
		{"too large", []byte(`{"schema":"` + strings.Repeat("x", MaxMessageBytes) + `"}`), CodeBadRequest, "at most", ""},
		{"not json", []byte(`{"schema":`), CodeBadRequest, "envelope", ""},
		{"empty", nil, CodeBadRequest, "envelope", ""},
		{"array", []byte(`[]`), CodeBadRequest, "envelope", ""},
		{"unknown envelope field", []byte(`{"schema":"papscan.command/v1","body":"e30=","sig":"","extra":1}`), CodeBadRequest, "extra", ""},
		{"duplicate envelope key", []byte(`{"schema":"papscan.command/v1","schema":"papscan.command/v1","body":"e30=","sig":""}`), CodeBadRequest, "duplicate", ""},
		{"uppercase envelope key", []byte(`{"Schema":"papscan.command/v1","body":"e30=","sig":""}`), CodeBadRequest, "snake_case", ""},
		{"trailing data", append(signRaw(fleetKey, good), []byte(` {}`)...), CodeBadRequest, "trailing", ""},
		{"wrong schema", []byte(`{"schema":"papscan.command/v0","body":"e30=","sig":""}`), CodeBadRequest, "schema", ""},
		{"body not base64", []byte(`{"schema":"papscan.command/v1","body":"!!","sig":""}`), CodeBadRequest, "body", ""},
		{"body unpadded", []byte(`{"schema":"papscan.command/v1","body":"e30","sig":""}`), CodeBadRequest, "body", ""},
		{"sig short", envelope("fleet-a", []byte(good), goodSig[:63]), CodeBadRequest, "sig", "c-1"},
		{"bad key_id shape", envelope("../x", []byte(good), goodSig), CodeBadRequest, "key_id", "c-1"},
		{"untrusted key claiming trusted ID", signRaw(evilKey, good), CodeUnauthorized, `key "fleet-a"`, "c-1"},
		{"untrusted key, no key_id", signRaw(SigningKey{Key: evilKey.Key}, good), CodeUnauthorized, "any fleet key", "c-1"},
		{"unknown key_id", signRaw(SigningKey{ID: "fleet-z", Key: fleetKey.Key}, good), CodeUnauthorized, "unknown key_id", "c-1"},
		{"tampered body", envelope("fleet-a", tampered, goodSig), CodeUnauthorized, "does not verify", "c-1"},
		{"signature without context", envelope("fleet-a", []byte(good), ed25519.Sign(fleetKey.Key, []byte(good))), CodeUnauthorized, "does not verify", "c-1"},
		{"body not json", signRaw(fleetKey, `{"id":`), CodeBadRequest, "command body", ""},
		{"body unknown field", signRaw(fleetKey, bodyJSON(map[string]any{"admin": true})), CodeBadRequest, "admin", "c-1"},
		{"body uppercase key", signRaw(fleetKey, strings.Replace(good, `"type"`, `"TYPE"`, 1)), CodeBadRequest, "snake_case", "c-1"},
		{"body duplicate key", signRaw(fleetKey, strings.Replace(good, `{`, `{"type":"abort",`, 1)), CodeBadRequest, "duplicate", "c-1"},
		{"body trailing", signRaw(fleetKey, good+"{}"), CodeBadRequest, "trailing", ""},
		{"id missing", signRaw(fleetKey, bodyJSON(map[string]any{"id": nil})), CodeBadRequest, "id:", ""},
		{"id bad", signRaw(fleetKey, bodyJSON(map[string]any{"id": "a b"})), CodeBadRequest, "id:", ""},
		{"type missing", signRaw(fleetKey, bodyJSON(map[string]any{"type": nil})), CodeBadRequest, "type:", "c-1"},
		{"robot missing", signRaw(fleetKey, bodyJSON(map[string]any{"robot": nil})), CodeBadRequest, "robot:", "c-1"},
		{"issued_at missing", signRaw(fleetKey, bodyJSON(map[string]any{"issued_at": nil})), CodeBadRequest, "issued_at", "c-1"},
		{"issued_at not a time", signRaw(fleetKey, bodyJSON(map[string]any{"issued_at": "yesterday"})), CodeBadRequest, "command body", "c-1"},
		{"issued_at number", signRaw(fleetKey, bodyJSON(map[string]any{"issued_at": 5})), CodeBadRequest, "command body", "c-1"},
		{"nonce missing", signRaw(fleetKey, bodyJSON(map[string]any{"nonce": nil})), CodeBadRequest, "nonce", "c-1"},
		{"nonce short", signRaw(fleetKey, bodyJSON(map[string]any{"nonce": "abc"})), CodeBadRequest, "nonce", "c-1"},
		{"id wrong type", signRaw(fleetKey, bodyJSON(map[string]any{"id": 7})), CodeBadRequest, `"id"`, ""},
		{"wrong robot", signRaw(fleetKey, bodyJSON(map[string]any{"robot": "robot-08"})), CodeWrongRobot, "robot-08", "c-1"},
		{"stale", signRaw(fleetKey, bodyJSON(map[string]any{"issued_at": t0.Add(-2*time.Minute - time.Millisecond)})), CodeStale, "max age", "c-1"},
		{"future", signRaw(fleetKey, bodyJSON(map[string]any{"issued_at": t0.Add(30*time.Second + time.Millisecond)})), CodeStale, "future", "c-1"},
		{"unknown type", signRaw(fleetKey, bodyJSON(map[string]any{"type": "format_disk"})), CodeUnknownCommand, "format_disk", "c-1"},
		{"args unknown field", signRaw(fleetKey, bodyJSON(map[string]any{"type": "start_magazine", "args": map[string]any{"magazine": "M1", "slots": 3}})), CodeBadRequest, "slots", "c-1"},
		{"args missing required", signRaw(fleetKey, bodyJSON(map[string]any{"type": "start_magazine"})), CodeBadRequest, "args.magazine", "c-1"},
		{"args wrong type", signRaw(fleetKey, bodyJSON(map[string]any{"type": "start_magazine", "args": map[string]any{"magazine": 5}})), CodeBadRequest, "magazine", "c-1"},
		{"args not object", signRaw(fleetKey, bodyJSON(map[string]any{"type": "status", "args": []int{1}})), CodeBadRequest, "object", "c-1"},
		{"args string", signRaw(fleetKey, bodyJSON(map[string]any{"type": "pause", "args": "now"})), CodeBadRequest, "object", "c-1"},
		{"args on no-arg command", signRaw(fleetKey, bodyJSON(map[string]any{"type": "pause", "args": map[string]any{"force": true}})), CodeBadRequest, "force", "c-1"},
		{"log level out of range", signRaw(fleetKey, bodyJSON(map[string]any{"type": "set_log_level", "args": map[string]any{"level": "trace"}})), CodeBadRequest, "args.level", "c-1"},
		{"self test level", signRaw(fleetKey, bodyJSON(map[string]any{"type": "self_test", "args": map[string]any{"level": "deep"}})), CodeBadRequest, "args.level", "c-1"},
		{"abort reason control char", signRaw(fleetKey, bodyJSON(map[string]any{"type": "abort", "args": map[string]any{"reason": "a\x1b[2J"}})), CodeBadRequest, "args.reason", "c-1"},
		{"abort reason too long", signRaw(fleetKey, bodyJSON(map[string]any{"type": "abort", "args": map[string]any{"reason": strings.Repeat("x", 257)}})), CodeBadRequest, "args.reason", "c-1"},
	}
	fetch := func(slide, result, item, tile string) []byte {
		a := map[string]any{"slide_id": slide, "result_id": result, "item": item}
		if tile != "" {
			a["tile"] = tile
		}
		return signRaw(fleetKey, bodyJSON(map[string]any{"type": "fetch", "args": a}))
	}
	for _, f := range []struct {
		name                      string
		slide, result, item, tile string
		field                     string
	}{
		{"slide ..", "..", "r", "gallery", "", "slide_id"},
		{"slide .", ".", "r", "gallery", "", "slide_id"},
		{"slide traversal", "../../etc", "r", "gallery", "", "slide_id"},
		{"slide absolute", "/etc", "r", "gallery", "", "slide_id"},
		{"slide backslash", `..\..\x`, "r", "gallery", "", "slide_id"},
		{"slide NUL", "a\x00b", "r", "gallery", "", "slide_id"},
		{"slide empty", "", "r", "gallery", "", "slide_id"},
		{"result traversal", "S1", "../../../root", "gallery", "", "result_id"},
		{"result hidden", "S1", ".ssh", "gallery", "", "result_id"},
		{"tile traversal", "S1", "r", "tile", "../../passwd", "tile"},
		{"tile dotdot inside", "S1", "r", "tile", "a..b", "tile"},
		{"tile hidden", "S1", "r", "tile", ".x", "tile"},
		{"tile missing", "S1", "r", "tile", "", "tile"},
		{"tile with gallery", "S1", "r", "gallery", "t.png", "tile"},
		{"item unknown", "S1", "r", "config", "", "item"},
	} {
		cases = append(cases, struct {
			name   string
			msg    []byte
			code   Code
			msgHas string
			id     string
		}{"fetch " + f.name, fetch(f.slide, f.result, f.item, f.tile), CodeBadRequest, "args." + f.field, "c-1"})
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, nil)
			rep := r.d.Handle(t.Context(), tc.msg)
			if rep.OK || rep.Code != tc.code || !strings.Contains(rep.Message, tc.msgHas) {
				t.Fatalf("reply %s; want code %s with %q", describe(rep), tc.code, tc.msgHas)
			}
			if rep.ID != tc.id {
				t.Errorf("reply id %q, want %q", rep.ID, tc.id)
			}
			if calls := r.agent.Calls(); len(calls) != 0 {
				t.Errorf("agent called %q for a refused command", calls)
			}
			if r.guard.Len() != 0 {
				t.Errorf("refused command consumed a nonce")
			}
			a := r.Audits()
			if len(a) != 1 || a[0].Accepted || a[0].Code != tc.code || a[0].Message != rep.Message || a[0].PayloadSHA256 != digest(tc.msg) {
				t.Errorf("audit %+v", a)
			}
			if _, err := EncodeReply(rep); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestTimeWindowEdgesAccepted(t *testing.T) {
	for _, at := range []time.Time{t0.Add(-2 * time.Minute), t0.Add(30 * time.Second)} {
		r := newRig(t, nil)
		msg, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, at)
		if rep := r.d.Handle(t.Context(), msg); !rep.OK {
			t.Errorf("issued %v: %s", at.Sub(t0), describe(rep))
		}
	}
}

func TestNoKeysConfigured(t *testing.T) {
	r := newRig(t, func(o *DispatcherOptions) { o.Verifier.Keys = nil })
	msg, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
	rep := r.d.Handle(t.Context(), msg)
	if rep.Code != CodeUnauthorized || !strings.Contains(rep.Message, "disabled") || len(r.agent.Calls()) != 0 {
		t.Fatalf("reply %s", describe(rep))
	}
}

func TestReplayRefused(t *testing.T) {
	r := newRig(t, nil)
	msg, cmd := mustSign(t, fleetKey, testRobot, TypeStartMagazine, StartMagazineArgs{Magazine: "M1"}, t0)
	if rep := r.d.Handle(t.Context(), msg); !rep.OK {
		t.Fatal(describe(rep))
	}
	// The same message again, later but within max age: replay.
	r.clk.Advance(time.Minute)
	rep := r.d.Handle(t.Context(), msg)
	if rep.Code != CodeReplay || rep.ID != cmd.ID {
		t.Fatalf("replay: %s", describe(rep))
	}
	// Same nonce, new signature and ID (a fleet bug or an attacker with
	// the key): still refused by nonce.
	c2 := cmd
	c2.ID = "c-other"
	msg2, err := Sign(fleetKey, c2)
	if err != nil {
		t.Fatal(err)
	}
	if rep := r.d.Handle(t.Context(), msg2); rep.Code != CodeReplay {
		t.Fatalf("same nonce: %s", describe(rep))
	}
	// After max age, the stale check refuses it (the nonce may be gone).
	r.clk.Advance(61 * time.Second)
	if rep := r.d.Handle(t.Context(), msg); rep.Code != CodeStale {
		t.Fatalf("late replay: %s", describe(rep))
	}
	if got := r.agent.Calls(); len(got) != 1 {
		t.Errorf("agent calls %q, want one", got)
	}
	a := r.Audits()
	if len(a) != 4 || a[1].Code != CodeReplay || a[1].Accepted || a[1].Nonce != cmd.Nonce {
		t.Errorf("audits %+v", a)
	}
}

func TestReplayStoreFullIsBusyNotEvicting(t *testing.T) {
	r := newRig(t, nil) // capacity 8
	var first []byte
	for i := range 8 {
		msg, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
		if i == 0 {
			first = msg
		}
		if rep := r.d.Handle(t.Context(), msg); !rep.OK {
			t.Fatal(describe(rep))
		}
	}
	msg, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
	if rep := r.d.Handle(t.Context(), msg); rep.Code != CodeBusy {
		t.Fatalf("9th: %s", describe(rep))
	}
	if rep := r.d.Handle(t.Context(), first); rep.Code != CodeReplay {
		t.Fatalf("first replayed while full: %s", describe(rep))
	}
	// Once the first ones expire there is room again.
	r.clk.Advance(2*time.Minute + time.Millisecond)
	msg, _ = mustSign(t, fleetKey, testRobot, TypeStatus, nil, r.clk.Now())
	if rep := r.d.Handle(t.Context(), msg); !rep.OK {
		t.Fatalf("after expiry: %s", describe(rep))
	}
	if r.guard.Len() != 1 {
		t.Errorf("guard holds %d nonces, want 1 after pruning", r.guard.Len())
	}
}

func TestHandlerErrorsMapToCodes(t *testing.T) {
	cases := []struct {
		err  error
		code Code
	}{
		{fmt.Errorf("scanning magazine M1: %w", ErrBusy), CodeBusy},
		{fmt.Errorf("not running: %w", ErrInvalidState), CodeInvalidState},
		{fmt.Errorf("x: %w", ErrNotFound), CodeNotFound},
		{fmt.Errorf("agent.mqtt.keepalive: must be >= 5s: %w", ErrBadArgs), CodeBadRequest},
		{fmt.Errorf("x: %w", ErrTooLarge), CodeTooLarge},
		{errors.New("disk on fire"), CodeInternal},
		{&Error{Code: CodeInvalidState, Message: "door open"}, CodeInvalidState},
	}
	for _, tc := range cases {
		r := newRig(t, nil)
		r.agent.err = tc.err
		msg, _ := mustSign(t, fleetKey, testRobot, TypePause, nil, t0)
		rep := r.d.Handle(t.Context(), msg)
		if rep.OK || rep.Code != tc.code || rep.Message == "" || rep.Result != nil {
			t.Errorf("%v: reply %s, want %s", tc.err, describe(rep), tc.code)
		}
		if a := r.lastAudit(t); !a.Accepted || a.Code != tc.code {
			t.Errorf("%v: audit %+v", tc.err, a)
		}
	}
}

func TestHandlerTimeout(t *testing.T) {
	r := newRig(t, func(o *DispatcherOptions) { o.HandlerTimeout = 20 * time.Millisecond })
	r.agent.block = make(chan struct{}) // never released: honours ctx
	msg, _ := mustSign(t, fleetKey, testRobot, TypeSelfTest, nil, t0)
	rep := r.d.Handle(t.Context(), msg)
	if rep.Code != CodeTimeout {
		t.Fatalf("reply %s", describe(rep))
	}
}

// panicAgent panics in Status.
type panicAgent struct{ fakeAgent }

func (p *panicAgent) Status(context.Context) (Status, error) { panic("boom") }

func TestHandlerPanicIsInternal(t *testing.T) {
	r := newRig(t, func(o *DispatcherOptions) { o.Agent = &panicAgent{} })
	msg, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
	if rep := r.d.Handle(t.Context(), msg); rep.Code != CodeInternal || !strings.Contains(rep.Message, "boom") {
		t.Fatalf("reply %s", describe(rep))
	}
}

func TestFetchLimit(t *testing.T) {
	r := newRig(t, func(o *DispatcherOptions) { o.MaxFetchBytes = 4 })
	r.agent.fetch = func(a FetchArgs) (FetchResult, error) { return FetchResult{Data: []byte("12345")}, nil }
	msg, _ := mustSign(t, fleetKey, testRobot, TypeFetch, FetchArgs{SlideID: "S1", ResultID: "r", Item: ItemOverview}, t0)
	if rep := r.d.Handle(t.Context(), msg); rep.Code != CodeTooLarge {
		t.Fatalf("reply %s", describe(rep))
	}
}

func TestStatusResultInReply(t *testing.T) {
	r := newRig(t, nil)
	msg, cmd := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
	b, err := EncodeReply(r.d.Handle(t.Context(), msg))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := DecodeReply(b)
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(rep.Result, &st); err != nil || st.State != "idle" || st.SlidesDone != 3 || rep.ID != cmd.ID {
		t.Fatalf("reply %s: %v", describe(rep), err)
	}
}

func TestDecodeReplyStrict(t *testing.T) {
	for _, s := range []string{
		`{"schema":"papscan.reply/v1","id":"a","robot":"r","ok":true,"code":"ok","sent_at":"2026-01-01T00:00:00Z","x":1}`,
		`{"schema":"papscan.reply/v2","id":"a","robot":"r","ok":true,"code":"ok","sent_at":"2026-01-01T00:00:00Z"}`,
		`{"schema":"papscan.reply/v1","id":"a","robot":"r","ok":true,"code":"busy","sent_at":"2026-01-01T00:00:00Z"}`,
		`{"schema":"papscan.reply/v1","id":"a","robot":"r","ok":false,"sent_at":"2026-01-01T00:00:00Z"}`,
		`{"schema":"papscan.reply/v1","id":"a","robot":"r","ok":"yes","code":"ok","sent_at":"2026-01-01T00:00:00Z"}`,
	} {
		if _, err := DecodeReply([]byte(s)); err == nil {
			t.Errorf("accepted %s", s)
		}
	}
	if _, err := EncodeReply(Reply{Result: json.RawMessage(`{`)}); err == nil {
		t.Error("EncodeReply accepted an invalid result")
	}
}

func TestCheckKeys(t *testing.T) {
	ok := []string{`{}`, `[]`, `1`, `{"a":{"b":[{"c":1},{"c":2}]},"d":[]}`, `{"a_1":null}`, `[{"a":1},{"a":1}]`}
	bad := []string{`{"a":1,"a":2}`, `{"a":{"b":1,"b":1}}`, `{"A":1}`, `{"a-b":1}`, `{"":1}`, `[{"a":1,"a":1}]`, `{"1a":1}`, `{"a":[1,2}`}
	for _, s := range ok {
		if err := checkKeys([]byte(s)); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range bad {
		if err := checkKeys([]byte(s)); err == nil {
			t.Errorf("%s accepted", s)
		}
	}
}

func TestDispatcherOptionsChecked(t *testing.T) {
	base := func() DispatcherOptions {
		g, _ := OpenReplayGuard("", 0, t0, 0)
		return DispatcherOptions{Verifier: testVerifier(t), Replay: g, Agent: &fakeAgent{},
			Publish: func(context.Context, []byte) error { return nil }}
	}
	for name, mod := range map[string]func(*DispatcherOptions){
		"no agent":   func(o *DispatcherOptions) { o.Agent = nil },
		"no replay":  func(o *DispatcherOptions) { o.Replay = nil },
		"no publish": func(o *DispatcherOptions) { o.Publish = nil },
		"bad robot":  func(o *DispatcherOptions) { o.Verifier.RobotID = "a/b" },
		"no max age": func(o *DispatcherOptions) { o.Verifier.MaxAge = 0 },
		"neg skew":   func(o *DispatcherOptions) { o.Verifier.ClockSkew = -1 },
	} {
		o := base()
		mod(&o)
		if _, err := NewDispatcher(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewDispatcher(base()); err != nil {
		t.Error(err)
	}
}

func TestRefusalRateLimit(t *testing.T) {
	r := newRig(t, func(o *DispatcherOptions) { o.RefusalBurst = 5; o.RefusalEvery = time.Second })
	garbage := []byte(`{"schema":"papscan.command/v1"}`)
	for i := range 8 {
		rep, send := r.d.handle(t.Context(), garbage)
		if send != (i < 5) {
			t.Fatalf("refusal %d: send=%v (%s)", i, send, describe(rep))
		}
	}
	if n := len(r.Audits()); n != 5 {
		t.Fatalf("%d audit records, want 5", n)
	}
	// Accepted commands are never limited.
	msg, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
	if rep, send := r.d.handle(t.Context(), msg); !rep.OK || !send {
		t.Fatalf("accepted command limited: %s", describe(rep))
	}
	// The next record reports what was dropped.
	if a := r.lastAudit(t); a.Suppressed != 3 || !a.Accepted {
		t.Errorf("audit %+v, want 3 suppressed", a)
	}
	// One token per second.
	if _, send := r.d.handle(t.Context(), garbage); send {
		t.Error("refusal sent before the refill")
	}
	r.clk.Advance(time.Second)
	if rep, send := r.d.handle(t.Context(), garbage); !send || rep.Code != CodeBadRequest {
		t.Fatalf("after refill: send=%v %s", send, describe(rep))
	}
	if a := r.lastAudit(t); a.Suppressed != 1 || a.Accepted {
		t.Errorf("audit %+v, want 1 suppressed", a)
	}
	if _, send := r.d.handle(t.Context(), garbage); send {
		t.Error("second refusal after one refill was sent")
	}
	r.clk.Advance(time.Hour) // refill caps at the burst
	for i := range 6 {
		if _, send := r.d.handle(t.Context(), garbage); send != (i < 5) {
			t.Fatalf("after a long pause, refusal %d: send=%v", i, send)
		}
	}
}

func TestBase64LineBreaksRefused(t *testing.T) {
	r := newRig(t, nil)
	msg, _ := mustSign(t, fleetKey, testRobot, TypeStatus, nil, t0)
	var s Signed
	if err := json.Unmarshal(msg, &s); err != nil {
		t.Fatal(err)
	}
	s.Body = s.Body[:8] + "\n" + s.Body[8:]
	bad, _ := json.Marshal(s)
	if rep := r.d.Handle(t.Context(), bad); rep.Code != CodeBadRequest || !strings.Contains(rep.Message, "line breaks") {
		t.Fatalf("reply %s", describe(rep))
	}
}

func TestLongMessagesTruncated(t *testing.T) {
	r := newRig(t, nil)
	body := bodyJSON(map[string]any{"type": "start_magazine", "args": map[string]any{"magazine": strings.Repeat("é", 5000)}})
	rep := r.d.Handle(t.Context(), signRaw(fleetKey, body))
	if rep.Code != CodeBadRequest || len(rep.Message) > maxMessageBytes+len("…") || !utf8.ValidString(rep.Message) {
		t.Fatalf("reply message of %d bytes: %s", len(rep.Message), describe(rep))
	}
	if a := r.lastAudit(t); a.Message != rep.Message {
		t.Error("audit and reply messages differ")
	}
}
