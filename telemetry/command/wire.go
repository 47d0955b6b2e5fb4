package command

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"time"
)

// Wire-format identifiers.
const (
	// Schema is the "schema" of a signed command envelope.
	Schema = "papscan.command/v1"
	// ReplySchema is the "schema" of a reply.
	ReplySchema = "papscan.reply/v1"

	// signContext is prepended to the body bytes before signing
	// (domain separation): a signature made for anything else with the
	// same key can never pass as a command signature.
	signContext = "papscan.command/v1\x00"
)

// Size limits. A command is small; anything larger is refused before it
// is parsed.
const (
	// MaxMessageBytes bounds a whole command message on the wire.
	MaxMessageBytes = 64 << 10
	// MaxBodyBytes bounds the decoded signed body.
	MaxBodyBytes = 32 << 10
	// maxKeys bounds the fleet keys a robot trusts (tried in turn when a
	// command names no key_id).
	maxKeys = 16
)

// Code is a reply's result code.
type Code string

// Reply codes. Every refusal audits the command and changes nothing.
const (
	CodeOK             Code = "ok"
	CodeBadRequest     Code = "bad_request"     // malformed, unknown fields, wrong types, out of range, path refused, too large
	CodeUnauthorized   Code = "unauthorized"    // no or bad signature, unknown key_id, no fleet keys configured
	CodeWrongRobot     Code = "wrong_robot"     // signed for another robot
	CodeStale          Code = "stale"           // issued_at older than max age, or further in the future than the clock skew
	CodeReplay         Code = "replay"          // nonce already used within the acceptance window
	CodeUnknownCommand Code = "unknown_command" // signed, well-formed, but a type this robot does not know
	CodeBusy           Code = "busy"            // agent busy, command queue or replay store full: retry later with a new nonce
	CodeInvalidState   Code = "invalid_state"   // not possible in the current state (e.g. pause while idle)
	CodeNotFound       Code = "not_found"       // fetch: no such stored file
	CodeTooLarge       Code = "too_large"       // fetch: file larger than the configured limit
	CodeTimeout        Code = "timeout"         // handler did not finish within the handler timeout
	CodeInternal       Code = "internal"        // anything else (I/O error, replay store not persisted, ...)
)

// Codes lists every reply code (documentation, schema test).
var Codes = []Code{CodeOK, CodeBadRequest, CodeUnauthorized, CodeWrongRobot, CodeStale,
	CodeReplay, CodeUnknownCommand, CodeBusy, CodeInvalidState, CodeNotFound, CodeTooLarge,
	CodeTimeout, CodeInternal}

// Signed is the message published on <prefix>/<robot>/cmd:
//
//	{"schema":"papscan.command/v1","key_id":"fleet-2026",
//	 "body":"<base64 of the exact body bytes>","sig":"<base64 Ed25519 signature>"}
//
// sig = Ed25519(priv, "papscan.command/v1" || 0x00 || body bytes). The
// robot verifies the signature over the bytes it received, before it parses
// them, so no JSON canonicalisation is involved anywhere.
type Signed struct {
	Schema string `json:"schema"`
	// KeyID names the fleet key that signed (optional: without it every
	// configured key is tried). It is a hint, not part of the signature.
	KeyID string `json:"key_id,omitempty"`
	// Body is the standard base64 (RFC 4648 §4, padded) of the body JSON.
	Body string `json:"body"`
	// Sig is the standard base64 of the 64-byte Ed25519 signature.
	Sig string `json:"sig"`
}

// Command is the signed body: one JSON object whose keys are lowercase
// snake_case and unique (checked byte for byte; see parseBody).
type Command struct {
	// ID is the correlation ID chosen by the fleet, echoed in the reply:
	// 1..128 of [A-Za-z0-9._:-], starting with a letter or digit.
	ID string `json:"id"`
	// Type is the command (TypeStatus, ...).
	Type string `json:"type"`
	// Robot is the robot ID the command is for; others refuse it.
	Robot string `json:"robot"`
	// IssuedAt is when the fleet signed it (RFC 3339).
	IssuedAt time.Time `json:"issued_at"`
	// Nonce is unique per command: 16..128 of [A-Za-z0-9_-] (Sign uses
	// 16 random bytes in unpadded base64url).
	Nonce string `json:"nonce"`
	// Args are the type's arguments (an object; absent or null for
	// commands without arguments).
	Args json.RawMessage `json:"args,omitempty"`
}

// Reply answers one command on <prefix>/<robot>/cmd/reply.
type Reply struct {
	Schema string `json:"schema"`
	// ID is the command's correlation ID; "" when the message was too
	// malformed to carry one.
	ID string `json:"id"`
	// Type is the command type when known.
	Type  string `json:"type,omitempty"`
	Robot string `json:"robot"`
	OK    bool   `json:"ok"`
	Code  Code   `json:"code"`
	// Message explains a refusal or failure (empty on success).
	Message string `json:"message,omitempty"`
	// Result is the command's result object (success only, optional).
	Result json.RawMessage `json:"result,omitempty"`
	SentAt time.Time       `json:"sent_at"`
}

var (
	idRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)
	robotRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	nonceRe = regexp.MustCompile(`^[A-Za-z0-9_-]{16,128}$`)
	keyIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	keyRe   = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	// timestampRe is the documented issued_at form (docs/schemas/common.json).
	timestampRe = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`)
)

// b64 is strict standard base64: padding required, no newlines, and
// non-zero trailing bits rejected (so one signature has one encoding).
var b64 = base64.StdEncoding.Strict()

// EncodeReply marshals a reply, filling Schema.
func EncodeReply(r Reply) ([]byte, error) {
	r.Schema = ReplySchema
	if r.Result != nil && !json.Valid(r.Result) {
		return nil, errors.New("command: reply result is not valid JSON")
	}
	return json.Marshal(r)
}

// DecodeReply parses a reply strictly (unknown fields refused); for the
// fleet side.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	if err := strictUnmarshal(b, &r); err != nil {
		return Reply{}, fmt.Errorf("command: reply: %w", err)
	}
	if r.Schema != ReplySchema {
		return Reply{}, fmt.Errorf("command: reply: schema %q, want %q", r.Schema, ReplySchema)
	}
	if r.Code == "" {
		return Reply{}, errors.New("command: reply: code missing")
	}
	if r.OK != (r.Code == CodeOK) {
		return Reply{}, fmt.Errorf("command: reply: ok=%v contradicts code %q", r.OK, r.Code)
	}
	return r, nil
}

// strictUnmarshal decodes exactly one JSON value into v: unknown fields,
// duplicate or non-snake_case object keys, and trailing data are errors.
func strictUnmarshal(b []byte, v any) error {
	if err := checkKeys(b); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// describeJSONError names the field of a type error.
func describeJSONError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Errorf("field %q: want %s, got JSON %s", te.Field, te.Type, te.Value)
		}
		return fmt.Errorf("want %s, got JSON %s", te.Type, te.Value)
	}
	return err
}

// checkKeys walks a JSON document and refuses object keys that are not
// lowercase snake_case ([a-z][a-z0-9_]*, at most 64 bytes) or repeat
// within an object. encoding/json matches keys case-insensitively and lets
// the last duplicate win; other parsers (the fleet's) may differ. Refusing
// both makes the signed bytes mean one thing to every parser.
func checkKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	type frame struct {
		obj    bool
		keys   map[string]bool
		expect bool // next token in an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return describeJSONError(err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.obj && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].obj {
					stack[len(stack)-1].expect = true
				}
				continue
			}
			k, _ := tok.(string)
			if !keyRe.MatchString(k) {
				return fmt.Errorf("object key %q: want lowercase snake_case", k)
			}
			if top.keys[k] {
				return fmt.Errorf("duplicate object key %q", k)
			}
			top.keys[k] = true
			top.expect = false
			continue
		}
		switch d, _ := tok.(json.Delim); d {
		case '{':
			stack = append(stack, &frame{obj: true, keys: map[string]bool{}, expect: true})
			continue
		case '[':
			stack = append(stack, &frame{})
			continue
		case ']':
			stack = stack[:len(stack)-1]
		}
		// A value (scalar or a closed array) ends: an enclosing object
		// expects its next key.
		if len(stack) > 0 && stack[len(stack)-1].obj {
			stack[len(stack)-1].expect = true
		}
	}
}
