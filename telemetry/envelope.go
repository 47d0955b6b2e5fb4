package telemetry

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Schema identifies the envelope format. A breaking change to Envelope bumps
// the version; adding optional fields does not.
const Schema = "papscan.telemetry/v1"

// Message kinds (Envelope.Kind).
const (
	KindState    = "state"
	KindResult   = "result"
	KindEvent    = "event"
	KindProgress = "progress"
)

// Robot states carried on the state topic. Other states (for example
// "scanning" or "fault") may be published with PublishState; any state other
// than StateOffline implies the robot is connected.
const (
	StateOnline  = "online"
	StateOffline = "offline"
)

// Envelope is the JSON object published on every papscan topic:
//
//	{
//	  "schema":     "papscan.telemetry/v1",
//	  "kind":       "result" | "event" | "state" | "progress",
//	  "message_id": "0192f3c4-...",  // unique per publish call (NewID)
//	  "robot_id":   "robot-07",
//	  "session_id": "0192f3c0-...",  // one per Client (process start); resets seq
//	  "seq":        42,              // per-session counter, starts at 1
//	  "sent_at":    "2026-11-21T07:47:00.123456789Z",
//	  "slide_id":   "S-2026-000123", // result, progress
//	  "result_id":  "0192f3c4-...",  // result: stable identity, the dedup key
//	  "event":      "door_opened",   // event: event type
//	  "state":      "online",        // state
//	  "body":       {...}            // kind-specific JSON, produced by the caller
//	  "event_id":       "0192...",    // event from the outbox: stable identity, ack key
//	  "outbox_session": "0192...",    // outbox stream (persisted in the state dir)
//	  "outbox_seq":     17,           // persisted, +1 per committed result/event
//	  "outbox_floor":   12,           // lowest seq still unacked when sent
//	  "committed_at":   "...",        // when the entry reached the disk
//	  "attempt":        1             // 1 = first send, >1 = replay
//	}
//
// Optional fields are omitted when empty. The Last Will has no message_id,
// seq or sent_at (it is fixed when the connection is made).
//
// Delivery is at least once: the same result can arrive more than once (with
// different message_id values). Receivers deduplicate on (robot_id, result_id).
type Envelope struct {
	Schema    string          `json:"schema"`
	Kind      string          `json:"kind"`
	MessageID string          `json:"message_id,omitempty"`
	RobotID   string          `json:"robot_id"`
	SessionID string          `json:"session_id,omitempty"`
	Seq       uint64          `json:"seq,omitzero"`
	SentAt    time.Time       `json:"sent_at,omitzero"`
	SlideID   string          `json:"slide_id,omitempty"`
	ResultID  string          `json:"result_id,omitempty"`
	Event     string          `json:"event,omitempty"`
	State     string          `json:"state,omitempty"`
	Body      json.RawMessage `json:"body,omitempty"`

	// Durable delivery (results and events sent from the outbox, see
	// PublishDelivery and docs/telemetry-delivery.md).
	EventID       string    `json:"event_id,omitempty"`       // event: stable identity, the ack key
	OutboxSession string    `json:"outbox_session,omitempty"` // the outbox's persisted stream ID
	OutboxSeq     uint64    `json:"outbox_seq,omitzero"`      // strictly increasing within outbox_session, persisted
	OutboxFloor   uint64    `json:"outbox_floor,omitzero"`    // lowest seq the outbox still held when sent
	CommittedAt   time.Time `json:"committed_at,omitzero"`    // when the entry reached the disk
	Attempt       int       `json:"attempt,omitzero"`         // 1 = first send; higher = replay
}

// ProgressBody is the body of a progress message.
type ProgressBody struct {
	Done  int `json:"done"`
	Total int `json:"total"`
}

// NewID returns a new unique identifier in UUIDv7 layout (RFC 9562): a 48-bit
// Unix millisecond timestamp followed by 74 random bits from crypto/rand,
// formatted as 8-4-4-4-12 lowercase hex. IDs sort by creation time (to the
// millisecond), which keeps them friendly as keys in an ordered store.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error (Go 1.24+).
	ms := uint64(time.Now().UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(b[0:6], ts[2:8])
	b[6] = (b[6] & 0x0f) | 0x70 // version 7
	b[8] = (b[8] & 0x3f) | 0x80 // RFC 9562 variant
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:36], b[10:16])
	return string(out[:])
}
