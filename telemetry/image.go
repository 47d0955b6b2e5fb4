package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"time"
)

// KindImage is the kind of an image message (ImageMessage).
const KindImage = "image"

// Image roles (ImageBody.Role).
const (
	ImageCrop     = "crop"     // one gallery cell at the camera's full resolution
	ImageOverview = "overview" // the whole slide with the hits marked
)

// Size bounds of an image message. A message over MaxImageMessageBytes is
// refused by EncodeImage and DecodeImage; brokers should set
// message_size_limit to at least this (Mosquitto's default is 256 MB).
const (
	MaxImageMessageBytes = 4 << 20 // whole JSON message
	MaxImagePNGBytes     = 3 << 20 // the PNG file (base64 in the JSON adds a third)
	MaxImageSide         = 4096    // pixels, width and height
	MaxCropSide          = 512     // pixels, a gallery crop
)

// ImageTopic is where a robot publishes the images of a slide's result:
// "<prefix>/<robot>/image/<slide>" (QoS 1, durable like results).
func ImageTopic(prefix, robot, slide string) string {
	return prefix + "/" + robot + "/image/" + slide
}

// ImageBody is the body of an image message: one PNG and what it shows.
type ImageBody struct {
	Role  string `json:"role"`  // ImageCrop or ImageOverview
	Index int    `json:"index"` // crop: gallery rank (0 = most suspicious); overview: 0
	// Of is the number of images the result has (crops + overview), so a
	// receiver can tell when it holds them all.
	Of     int    `json:"of"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	PNG    []byte `json:"png"` // base64 in JSON
	// PixelUM is the image's scale, µm per pixel.
	PixelUM float64 `json:"pixel_um"`
	// Crop: the cell's suspicion score, class and stage position (nucleus
	// centre, µm).
	Score    float64 `json:"score,omitempty"`
	Class    string  `json:"class,omitempty"`
	StageXUM float64 `json:"stage_x_um,omitempty"`
	StageYUM float64 `json:"stage_y_um,omitempty"`
	// Overview: the stage position of the image's top-left pixel (µm), so
	// hits can be placed on it.
	OriginXUM float64 `json:"origin_x_um,omitempty"`
	OriginYUM float64 `json:"origin_y_um,omitempty"`
}

// ImageMessage is published on ImageTopic. Its header fields are those of
// Envelope (same names); ImageID is its stable identity and ack key, as
// result_id is a result's. It belongs to the result ResultID.
type ImageMessage struct {
	Schema        string    `json:"schema"`
	Kind          string    `json:"kind"`
	MessageID     string    `json:"message_id,omitempty"`
	RobotID       string    `json:"robot_id"`
	SessionID     string    `json:"session_id,omitempty"`
	Seq           uint64    `json:"seq,omitzero"`
	SentAt        time.Time `json:"sent_at,omitzero"`
	SlideID       string    `json:"slide_id"`
	ResultID      string    `json:"result_id"`
	ImageID       string    `json:"image_id"`
	OutboxSession string    `json:"outbox_session,omitempty"`
	OutboxSeq     uint64    `json:"outbox_seq,omitzero"`
	OutboxFloor   uint64    `json:"outbox_floor,omitzero"`
	CommittedAt   time.Time `json:"committed_at,omitzero"`
	Attempt       int       `json:"attempt,omitzero"`
	Body          ImageBody `json:"body"`
}

// NewImage builds the image message of a result from an image; role is
// ImageCrop or ImageOverview. The PNG is encoded at the image's full
// resolution (BestSpeed compression).
func NewImage(robot, slide, resultID string, role string, index, of int, img image.Image, pixelUM float64) (ImageMessage, error) {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&buf, img); err != nil {
		return ImageMessage{}, fmt.Errorf("telemetry: image %s %d: %w", role, index, err)
	}
	b := img.Bounds()
	m := ImageMessage{
		Schema: Schema, Kind: KindImage, RobotID: robot, SlideID: slide, ResultID: resultID, ImageID: NewID(),
		Body: ImageBody{Role: role, Index: index, Of: of, Width: b.Dx(), Height: b.Dy(), PNG: buf.Bytes(), PixelUM: pixelUM},
	}
	return m, m.Validate()
}

// EncodeImage validates m and returns its JSON, at most MaxImageMessageBytes.
func EncodeImage(m ImageMessage) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("telemetry: image %s: %w", m.ImageID, err)
	}
	if len(b) > MaxImageMessageBytes {
		return nil, fmt.Errorf("telemetry: image %s: message is %d bytes, more than %d", m.ImageID, len(b), MaxImageMessageBytes)
	}
	return b, nil
}

// DecodeImage parses and validates an image message (the PNG is checked by
// its header and decoded in full). Errors name the field.
func DecodeImage(b []byte) (ImageMessage, error) {
	var m ImageMessage
	if len(b) > MaxImageMessageBytes {
		return m, fmt.Errorf("telemetry: image message is %d bytes, more than %d", len(b), MaxImageMessageBytes)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("telemetry: image message: %w", err)
	}
	return m, m.Validate()
}

// ErrNotPNG is wrapped by Validate when the png field is not a PNG file.
var ErrNotPNG = errors.New("not a PNG")

// Validate checks the header fields, the body's bounds and the PNG itself
// (signature, declared size against width/height and the bounds, a full
// decode). It never panics on bad input.
func (m *ImageMessage) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("telemetry: image %q: field %s: %w", m.ImageID, field, fmt.Errorf(format, a...))
	}
	if m.Schema != Schema {
		return bad("schema", "%q, want %q", m.Schema, Schema)
	}
	if m.Kind != KindImage {
		return bad("kind", "%q, want %q", m.Kind, KindImage)
	}
	if err := ValidateRobotID(m.RobotID); err != nil {
		return bad("robot_id", "%v", err)
	}
	if err := ValidateSlideID(m.SlideID); err != nil {
		return bad("slide_id", "%v", err)
	}
	if err := validateText("result ID", m.ResultID); err != nil {
		return bad("result_id", "%v", err)
	}
	if err := validateText("image ID", m.ImageID); err != nil {
		return bad("image_id", "%v", err)
	}
	bd := &m.Body
	switch bd.Role {
	case ImageCrop, ImageOverview:
	default:
		return bad("body.role", "%q, want %q or %q", bd.Role, ImageCrop, ImageOverview)
	}
	if bd.Index < 0 || bd.Of < 0 || (bd.Of > 0 && bd.Index >= bd.Of) {
		return bad("body.index", "%d of %d", bd.Index, bd.Of)
	}
	side := MaxImageSide
	if bd.Role == ImageCrop {
		side = MaxCropSide
	}
	if bd.Width <= 0 || bd.Height <= 0 || bd.Width > side || bd.Height > side {
		return bad("body.width", "%dx%d, want 1..%d each", bd.Width, bd.Height, side)
	}
	if len(bd.PNG) > MaxImagePNGBytes {
		return bad("body.png", "%d bytes, more than %d", len(bd.PNG), MaxImagePNGBytes)
	}
	if !(bd.PixelUM >= 0 && bd.PixelUM < 1000) { // also refuses NaN
		return bad("body.pixel_um", "%v", bd.PixelUM)
	}
	if !(bd.Score >= 0 && bd.Score <= 1) {
		return bad("body.score", "%v, want 0..1", bd.Score)
	}
	if len(bd.Class) > maxIDLen {
		return bad("body.class", "longer than %d bytes", maxIDLen)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"body.stage_x_um", bd.StageXUM}, {"body.stage_y_um", bd.StageYUM}, {"body.origin_x_um", bd.OriginXUM}, {"body.origin_y_um", bd.OriginYUM}} {
		if !(f.v > -1e7 && f.v < 1e7) {
			return bad(f.name, "%v", f.v)
		}
	}
	return checkPNG(bd.PNG, bd.Width, bd.Height, func(format string, a ...any) error { return bad("body.png", format, a...) })
}

var pngSignature = []byte("\x89PNG\r\n\x1a\n")

func checkPNG(b []byte, w, h int, bad func(string, ...any) error) error {
	if !bytes.HasPrefix(b, pngSignature) {
		return bad("%w", ErrNotPNG)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return bad("%w: %v", ErrNotPNG, err)
	}
	if cfg.Width != w || cfg.Height != h {
		return bad("PNG is %dx%d, body says %dx%d", cfg.Width, cfg.Height, w, h)
	}
	// The size is bounded (checked above), so a full decode is bounded too.
	if _, err := png.Decode(bytes.NewReader(b)); err != nil {
		return bad("%w: %v", ErrNotPNG, err)
	}
	return nil
}
