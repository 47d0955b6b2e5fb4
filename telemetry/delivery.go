package telemetry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Kinds of the fleet -> robot delivery messages.
const (
	KindAck    = "ack"
	KindReplay = "replay"
	KindHealth = "health"
)

// Delivery is one durable outbox entry as it goes on the wire: a result or
// an event with a stable ID (result_id / event_id, the key the fleet acks)
// and its place in the robot's outbox stream (OutboxSession, OutboxSeq,
// OutboxFloor). Built by package outbox; published by PublishDelivery.
type Delivery struct {
	Kind          string // KindResult, KindEvent or KindImage
	ID            string // result_id (results), event_id (events) or image_id (images): the ack key
	SlideID       string // results and images: the slide (also the last topic level)
	ResultID      string // images: the result the image belongs to
	Event         string // events: the event kind
	Body          json.RawMessage
	OutboxSession string    // the outbox's persisted stream ID
	OutboxSeq     uint64    // persisted, strictly increasing within OutboxSession
	OutboxFloor   uint64    // lowest seq still held by the outbox when sent
	CommittedAt   time.Time // when the entry was committed to disk
	Attempt       int       // 1 on first send, then 2, 3, ... (replays)
}

// Ack is the fleet's application-level acknowledgement, published by the
// fleet on "<prefix>/<robot>/ack" (QoS 1) after its own durable commit:
//
//	{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"R",
//	 "receiver":"fleet-1","ids":["<result_id or event_id>", ...]}
//
// Only an Ack removes an entry from the robot's outbox; a PUBACK does not.
//
// A receiver that holds a signing key also sets KeyID and Sig, its Ed25519
// signature (standard base64) over SigningBytes; a robot configured with
// trusted receiver keys (agent.mqtt.ack_keys) refuses every other ack, so
// that a client able to publish on the ack topic cannot make it drop
// results the fleet never stored (see telemetry/command.SignAck).
type Ack struct {
	Schema   string   `json:"schema"`
	Kind     string   `json:"kind"`
	RobotID  string   `json:"robot_id"`
	Receiver string   `json:"receiver,omitempty"`
	IDs      []string `json:"ids"`
	KeyID    string   `json:"key_id,omitempty"`
	Sig      string   `json:"sig,omitempty"`
}

// ackDomain separates ack signatures from every other signed message.
const ackDomain = "papscan-ack/v1"

// SigningBytes are the bytes an ack's signature covers: a domain string,
// the robot, the receiver and every acked ID, each preceded by its length
// (uvarint), so no two different acks share them.
func (a Ack) SigningBytes() []byte {
	n := len(ackDomain) + len(a.RobotID) + len(a.Receiver) + 4*binary.MaxVarintLen64
	for _, id := range a.IDs {
		n += len(id) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	field := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	field(ackDomain)
	field(a.RobotID)
	field(a.Receiver)
	b = binary.AppendUvarint(b, uint64(len(a.IDs)))
	for _, id := range a.IDs {
		field(id)
	}
	return b
}

// Replay asks the robot to send again every entry it still holds in
// [FromSeq, ToSeq] of OutboxSession (ToSeq 0 = no upper bound), published
// by the fleet on "<prefix>/<robot>/replay" (QoS 1) when it sees a gap:
//
//	{"schema":"papscan.telemetry/v1","kind":"replay","robot_id":"R",
//	 "outbox_session":"...","from_seq":12,"to_seq":17}
//
// Entries the robot no longer holds were acked already; they are not sent.
//
// Like an ack it is signed by the fleet (KeyID, Sig over SigningBytes);
// the robot verifies it (Options.FleetAuth) before it resends anything.
type Replay struct {
	Schema        string `json:"schema"`
	Kind          string `json:"kind"`
	RobotID       string `json:"robot_id"`
	Receiver      string `json:"receiver,omitempty"`
	OutboxSession string `json:"outbox_session,omitempty"`
	FromSeq       uint64 `json:"from_seq"`
	ToSeq         uint64 `json:"to_seq,omitzero"`
	KeyID         string `json:"key_id,omitempty"`
	Sig           string `json:"sig,omitempty"`
}

// replayDomain separates replay signatures from every other signed
// message.
const replayDomain = "papscan-replay/v1"

// SigningBytes are the bytes a replay request's signature covers: a
// domain string, the robot, the receiver, the outbox session and the
// range, each length-prefixed (uvarint) or fixed width.
func (r Replay) SigningBytes() []byte {
	b := make([]byte, 0, len(replayDomain)+len(r.RobotID)+len(r.Receiver)+len(r.OutboxSession)+4*binary.MaxVarintLen64+16)
	for _, s := range []string{replayDomain, r.RobotID, r.Receiver, r.OutboxSession} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.BigEndian.AppendUint64(b, r.FromSeq)
	return binary.BigEndian.AppendUint64(b, r.ToSeq)
}

// maxAckIDs bounds the IDs of one ack message (a bigger one is refused).
const maxAckIDs = 4096

// ErrBadMessage wraps every decoding error of an inbound ack or replay.
var ErrBadMessage = errors.New("telemetry: bad inbound message")

// DecodeAck parses and validates an ack payload received for robotID.
func DecodeAck(robotID string, payload []byte) (Ack, error) {
	var a Ack
	if err := decodeStrict(payload, &a); err != nil {
		return Ack{}, fmt.Errorf("%w: ack: %w", ErrBadMessage, err)
	}
	if err := checkHeader(a.Schema, a.Kind, KindAck, a.RobotID, robotID); err != nil {
		return Ack{}, fmt.Errorf("%w: ack: %w", ErrBadMessage, err)
	}
	if len(a.IDs) == 0 || len(a.IDs) > maxAckIDs {
		return Ack{}, fmt.Errorf("%w: ack: field ids: want 1..%d IDs, got %d", ErrBadMessage, maxAckIDs, len(a.IDs))
	}
	for i, id := range a.IDs {
		if err := validateText("acked ID", id); err != nil {
			return Ack{}, fmt.Errorf("%w: ack: field ids[%d]: %w", ErrBadMessage, i, err)
		}
	}
	if a.Receiver != "" {
		if err := validateText("receiver", a.Receiver); err != nil {
			return Ack{}, fmt.Errorf("%w: ack: field receiver: %w", ErrBadMessage, err)
		}
	}
	if err := checkSig(a.KeyID, a.Sig); err != nil {
		return Ack{}, fmt.Errorf("%w: ack: %w", ErrBadMessage, err)
	}
	return a, nil
}

// checkSig checks the shape of an optional signature (key_id and sig).
func checkSig(keyID, sig string) error {
	if (keyID == "") != (sig == "") {
		return errors.New("fields key_id and sig: both or neither")
	}
	if sig == "" {
		return nil
	}
	if raw, err := base64.StdEncoding.Strict().DecodeString(sig); err != nil || len(raw) != 64 {
		return errors.New("field sig: want the standard base64 of a 64-byte Ed25519 signature")
	}
	if err := validateText("key_id", keyID); err != nil {
		return fmt.Errorf("field key_id: %w", err)
	}
	return nil
}

// DecodeReplay parses and validates a replay request received for robotID.
func DecodeReplay(robotID string, payload []byte) (Replay, error) {
	var r Replay
	if err := decodeStrict(payload, &r); err != nil {
		return Replay{}, fmt.Errorf("%w: replay: %w", ErrBadMessage, err)
	}
	if err := checkHeader(r.Schema, r.Kind, KindReplay, r.RobotID, robotID); err != nil {
		return Replay{}, fmt.Errorf("%w: replay: %w", ErrBadMessage, err)
	}
	if r.ToSeq != 0 && r.ToSeq < r.FromSeq {
		return Replay{}, fmt.Errorf("%w: replay: field to_seq %d < from_seq %d", ErrBadMessage, r.ToSeq, r.FromSeq)
	}
	if r.Receiver != "" {
		if err := validateText("receiver", r.Receiver); err != nil {
			return Replay{}, fmt.Errorf("%w: replay: field receiver: %w", ErrBadMessage, err)
		}
	}
	if r.OutboxSession != "" {
		if err := validateText("outbox_session", r.OutboxSession); err != nil {
			return Replay{}, fmt.Errorf("%w: replay: field outbox_session: %w", ErrBadMessage, err)
		}
	}
	if err := checkSig(r.KeyID, r.Sig); err != nil {
		return Replay{}, fmt.Errorf("%w: replay: %w", ErrBadMessage, err)
	}
	return r, nil
}

func decodeStrict(payload []byte, v any) error {
	if len(payload) > 1<<20 {
		return fmt.Errorf("payload of %d bytes exceeds 1 MiB", len(payload))
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func checkHeader(schema, kind, wantKind, robot, wantRobot string) error {
	switch {
	case schema != Schema:
		return fmt.Errorf("field schema: want %q, got %q", Schema, schema)
	case kind != wantKind:
		return fmt.Errorf("field kind: want %q, got %q", wantKind, kind)
	case robot != wantRobot:
		return fmt.Errorf("field robot_id: want %q, got %q", wantRobot, robot)
	}
	return nil
}

// PublishDelivery publishes an outbox entry at QoS 1 and waits for the
// broker's PUBACK (bounded by ctx and PublishTimeout): a result to
// "<prefix>/<robot>/result/<slide>", an event to "<prefix>/<robot>/event",
// an image (Body: its ImageBody) to ImageTopic as an ImageMessage.
// The envelope carries result_id or event_id (the ack key, stable across
// retries) and outbox_session / outbox_seq / outbox_floor / committed_at /
// attempt. A nil error means only that the broker has it; the entry stays
// in the outbox until the fleet's Ack names its ID.
func (c *Client) PublishDelivery(ctx context.Context, d Delivery) error {
	e := Envelope{
		Kind:          d.Kind,
		Body:          d.Body,
		OutboxSession: d.OutboxSession,
		OutboxSeq:     d.OutboxSeq,
		OutboxFloor:   d.OutboxFloor,
		CommittedAt:   d.CommittedAt.UTC(),
		Attempt:       d.Attempt,
	}
	var topic string
	switch d.Kind {
	case KindResult:
		t, err := c.topics.Result(d.SlideID)
		if err != nil {
			return err
		}
		topic = t
		e.SlideID, e.ResultID = d.SlideID, d.ID
		if err := validateText("result ID", d.ID); err != nil {
			return err
		}
		if !json.Valid(d.Body) {
			return fmt.Errorf("%w: result %s: body is not valid JSON", ErrInvalidPayload, d.ID)
		}
	case KindEvent:
		if err := validateText("event kind", d.Event); err != nil {
			return err
		}
		if err := validateText("event ID", d.ID); err != nil {
			return err
		}
		if len(d.Body) > 0 && !json.Valid(d.Body) {
			return fmt.Errorf("%w: event %s: body is not valid JSON", ErrInvalidPayload, d.ID)
		}
		topic = c.topics.Event()
		e.Event, e.EventID = d.Event, d.ID
	case KindImage:
		return c.publishImage(ctx, d)
	default:
		return fmt.Errorf("%w: delivery kind %q (want %q, %q or %q)", ErrInvalidPayload, d.Kind, KindResult, KindEvent, KindImage)
	}
	if c.isClosing() {
		return ErrClosed
	}
	b, err := c.envelope(e)
	if err != nil {
		return err
	}
	if err := c.publishWait(ctx, topic, false, b); err != nil {
		return fmt.Errorf("%s %s (outbox seq %d): %w", d.Kind, d.ID, d.OutboxSeq, err)
	}
	return nil
}

// publishImage publishes an image entry (Body: the ImageBody JSON) as an
// ImageMessage on ImageTopic, its image_id the ack key.
func (c *Client) publishImage(ctx context.Context, d Delivery) error {
	if err := ValidateSlideID(d.SlideID); err != nil {
		return err
	}
	m := ImageMessage{
		Schema: Schema, Kind: KindImage, MessageID: NewID(), RobotID: c.opts.RobotID, SessionID: c.session,
		SlideID: d.SlideID, ResultID: d.ResultID, ImageID: d.ID,
		OutboxSession: d.OutboxSession, OutboxSeq: d.OutboxSeq, OutboxFloor: d.OutboxFloor,
		CommittedAt: d.CommittedAt.UTC(), Attempt: d.Attempt,
	}
	if err := json.Unmarshal(d.Body, &m.Body); err != nil {
		return fmt.Errorf("%w: image %s: body: %w", ErrInvalidPayload, d.ID, err)
	}
	if c.isClosing() {
		return ErrClosed
	}
	m.Seq = c.seq.Add(1)
	m.SentAt = time.Now().UTC()
	b, err := EncodeImage(m)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidPayload, err)
	}
	if err := c.publishWait(ctx, ImageTopic(c.topics.Prefix(), c.topics.RobotID(), d.SlideID), false, b); err != nil {
		return fmt.Errorf("%s %s (outbox seq %d): %w", d.Kind, d.ID, d.OutboxSeq, err)
	}
	return nil
}
