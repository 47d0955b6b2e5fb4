package command

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Error is a refusal: the reply code and a message for the fleet.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

func refuse(code Code, format string, a ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, a...)}
}

// CodeOf maps an error to its reply code: an *Error's code, or the code of
// a sentinel (ErrBusy, ErrInvalidState, ErrNotFound, ErrBadArgs,
// ErrTooLarge), else CodeInternal. nil is CodeOK.
func CodeOf(err error) Code {
	var ce *Error
	switch {
	case err == nil:
		return CodeOK
	case errors.As(err, &ce):
		return ce.Code
	case errors.Is(err, ErrBusy):
		return CodeBusy
	case errors.Is(err, ErrInvalidState):
		return CodeInvalidState
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrBadArgs):
		return CodeBadRequest
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	}
	return CodeInternal
}

// Sentinel errors an Agent returns (wrapped) to choose the reply code.
var (
	ErrBusy         = errors.New("busy")          // busy
	ErrInvalidState = errors.New("invalid state") // invalid_state
	ErrNotFound     = errors.New("not found")     // not_found
	ErrBadArgs      = errors.New("bad arguments") // bad_request (e.g. a reloaded config that does not validate)
	ErrTooLarge     = errors.New("too large")     // too_large
)

// Verifier authenticates and validates commands for one robot. It is
// stateless (replay protection is the ReplayGuard's job) and safe for
// concurrent use.
type Verifier struct {
	// RobotID is this robot; commands for others are refused.
	RobotID string
	// Keys are the trusted fleet keys; none = every command refused.
	Keys *KeyRing
	// MaxAge is how old (by issued_at) a command may be.
	MaxAge time.Duration
	// ClockSkew is how far issued_at may be in the future.
	ClockSkew time.Duration
}

// Verified is an authenticated, well-formed command with typed args.
type Verified struct {
	Command
	// KeyID is the fleet key that verified the signature.
	KeyID string
	// Parsed is the typed args value: NoArgs, StartMagazineArgs,
	// AbortArgs, SelfTestArgs, SetLogLevelArgs or FetchArgs.
	Parsed any
	// Body is the exact signed body, Sig the signature.
	Body, Sig []byte
}

// Expires is when the command stops being acceptable by its timestamp:
// issued_at + MaxAge. Its nonce must be remembered until then.
func (v *Verifier) expires(c Command) time.Time { return c.IssuedAt.Add(v.MaxAge) }

// Peek extracts what can be said about a message without trusting it:
// the correlation ID and type when they are well-formed (for the reply
// and the audit of a refused message), and the key ID. It never fails.
func Peek(msg []byte) (id, typ, keyID string) {
	var s Signed
	if len(msg) > MaxMessageBytes || json.Unmarshal(msg, &s) != nil {
		return "", "", ""
	}
	if keyIDRe.MatchString(s.KeyID) {
		keyID = s.KeyID
	}
	body, err := b64.DecodeString(s.Body)
	if err != nil {
		return "", "", keyID
	}
	var c struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if json.Unmarshal(body, &c) != nil {
		return "", "", keyID
	}
	if idRe.MatchString(c.ID) {
		id = c.ID
	}
	if keyRe.MatchString(c.Type) {
		typ = c.Type
	}
	return id, typ, keyID
}

// Verify checks a message received on the cmd topic at time now, in this
// order, and refuses with the first failure:
//
//  1. size, JSON envelope (strict), schema, base64 of body and sig
//     (bad_request);
//  2. the Ed25519 signature over the received body bytes (unauthorized);
//  3. the body: strict JSON, every field present and well-formed
//     (bad_request);
//  4. robot == RobotID (wrong_robot);
//  5. now-MaxAge <= issued_at <= now+ClockSkew (stale);
//  6. known type (unknown_command), then args strict and in range
//     (bad_request).
//
// Nothing is parsed before the signature verified except the outer
// envelope and base64. Replay is checked afterwards by the ReplayGuard.
func (v *Verifier) Verify(msg []byte, now time.Time) (*Verified, *Error) {
	if len(msg) > MaxMessageBytes {
		return nil, refuse(CodeBadRequest, "message of %d bytes, at most %d", len(msg), MaxMessageBytes)
	}
	var s Signed
	if err := strictUnmarshal(msg, &s); err != nil {
		return nil, refuse(CodeBadRequest, "command envelope: %v", err)
	}
	if s.Schema != Schema {
		return nil, refuse(CodeBadRequest, "schema: want %q, got %q", Schema, s.Schema)
	}
	if s.KeyID != "" && !keyIDRe.MatchString(s.KeyID) {
		return nil, refuse(CodeBadRequest, "key_id: want 1..64 of [A-Za-z0-9._-]")
	}
	// encoding/base64 skips CR and LF even in strict mode; the wire form
	// has none (one encoding per body and signature).
	if strings.ContainsAny(s.Body, "\r\n") || strings.ContainsAny(s.Sig, "\r\n") {
		return nil, refuse(CodeBadRequest, "body, sig: line breaks are not allowed in the base64")
	}
	body, err := b64.DecodeString(s.Body)
	if err != nil || len(body) == 0 {
		return nil, refuse(CodeBadRequest, "body: want non-empty standard base64 (padded)")
	}
	if len(body) > MaxBodyBytes {
		return nil, refuse(CodeBadRequest, "body of %d bytes, at most %d", len(body), MaxBodyBytes)
	}
	sig, err := b64.DecodeString(s.Sig)
	if err != nil || len(sig) != 64 {
		return nil, refuse(CodeBadRequest, "sig: want the standard base64 (padded) of a 64-byte Ed25519 signature")
	}
	keyID, err := v.Keys.verify(s.KeyID, signedBytes(body), sig)
	if err != nil {
		return nil, refuse(CodeUnauthorized, "%v", err)
	}

	var c Command
	if err := strictUnmarshal(body, &c); err != nil {
		return nil, refuse(CodeBadRequest, "command body: %v", err)
	}
	// encoding/json's time parsing is lenient (one-digit hours, ...):
	// hold issued_at to the documented form.
	var raw struct {
		IssuedAt string `json:"issued_at"`
	}
	if json.Unmarshal(body, &raw) != nil || !timestampRe.MatchString(raw.IssuedAt) {
		return nil, refuse(CodeBadRequest, "issued_at: required, RFC 3339 like 2026-11-21T08:00:00Z")
	}
	switch {
	case !idRe.MatchString(c.ID):
		return nil, refuse(CodeBadRequest, "id: required, 1..128 of [A-Za-z0-9._:-] starting with a letter or digit")
	case !keyRe.MatchString(c.Type):
		return nil, refuse(CodeBadRequest, "type: required, lowercase snake_case")
	case !robotRe.MatchString(c.Robot):
		return nil, refuse(CodeBadRequest, "robot: required, 1..64 of [A-Za-z0-9_-]")
	case c.IssuedAt.IsZero():
		return nil, refuse(CodeBadRequest, "issued_at: required (RFC 3339)")
	case !nonceRe.MatchString(c.Nonce):
		return nil, refuse(CodeBadRequest, "nonce: required, 16..128 of [A-Za-z0-9_-]")
	}
	if c.Robot != v.RobotID {
		return nil, refuse(CodeWrongRobot, "command is for robot %q, this is %q", c.Robot, v.RobotID)
	}
	if age := now.Sub(c.IssuedAt); age > v.MaxAge {
		return nil, refuse(CodeStale, "issued_at %s is %v old, more than the max age %v", c.IssuedAt.UTC().Format(time.RFC3339Nano), age.Round(time.Millisecond), v.MaxAge)
	} else if -age > v.ClockSkew {
		return nil, refuse(CodeStale, "issued_at %s is %v in the future, more than the clock skew %v", c.IssuedAt.UTC().Format(time.RFC3339Nano), (-age).Round(time.Millisecond), v.ClockSkew)
	}
	parsed, known, err := parseArgs(c.Type, c.Args)
	if !known {
		return nil, refuse(CodeUnknownCommand, "unknown command type %q", c.Type)
	}
	if err != nil {
		return nil, refuse(CodeBadRequest, "%s: %v", c.Type, err)
	}
	return &Verified{Command: c, KeyID: keyID, Parsed: parsed, Body: body, Sig: sig}, nil
}
