package telemetry

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultTopicPrefix is the topic prefix used when Options.TopicPrefix is empty.
const DefaultTopicPrefix = "papscan"

// maxIDLen bounds robot, slide and result IDs. MQTT allows 65535-byte topics;
// a slide label is a few dozen characters, so anything longer is a bug.
const maxIDLen = 128

// ErrInvalidID is wrapped by every identifier validation error (robot ID,
// slide ID, result ID, topic prefix, event kind, state). Use errors.Is to test
// for it and errors.As with *IDError to learn which identifier was rejected.
var ErrInvalidID = errors.New("invalid identifier")

// IDError reports an identifier that cannot be used in a topic or envelope.
type IDError struct {
	Field  string // "robot ID", "slide ID", "result ID", "topic prefix", ...
	Value  string // the rejected value (may be invalid UTF-8; printed with %q)
	Reason string // what is wrong with it
}

func (e *IDError) Error() string {
	return fmt.Sprintf("telemetry: invalid %s %q: %s", e.Field, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidID) true.
func (e *IDError) Unwrap() error { return ErrInvalidID }

// ValidateRobotID checks that id can be used as one topic level.
func ValidateRobotID(id string) error { return validateLevel("robot ID", id) }

// ValidateSlideID checks that id can be used as one topic level.
func ValidateSlideID(id string) error { return validateLevel("slide ID", id) }

// validateLevel accepts a non-empty, valid UTF-8 string of at most maxIDLen
// bytes that contains no topic separator or wildcard ('/', '+', '#'), does not
// start with '$' (reserved for broker topics), and has no control or
// whitespace characters (U+0000 is forbidden by MQTT; the others make topics
// that are hard to type, log and ACL).
func validateLevel(field, v string) error {
	if err := validateText(field, v); err != nil {
		return err
	}
	bad := func(reason string) error { return &IDError{Field: field, Value: v, Reason: reason} }
	if v[0] == '$' {
		return bad("starts with '$' (reserved for broker topics)")
	}
	for _, r := range v {
		switch {
		case r == '/':
			return bad("contains '/' (topic level separator)")
		case r == '+':
			return bad("contains '+' (MQTT wildcard)")
		case r == '#':
			return bad("contains '#' (MQTT wildcard)")
		case unicode.IsSpace(r):
			return bad(fmt.Sprintf("contains space character %U", r))
		}
	}
	return nil
}

// validateText accepts a non-empty valid UTF-8 string without control
// characters, of at most maxIDLen bytes. It is used for values carried only
// in payloads (result ID, event kind, state), never in topics.
func validateText(field, v string) error {
	bad := func(reason string) error { return &IDError{Field: field, Value: v, Reason: reason} }
	switch {
	case v == "":
		return bad("empty")
	case !utf8.ValidString(v):
		return bad("not valid UTF-8")
	case len(v) > maxIDLen:
		return bad(fmt.Sprintf("longer than %d bytes", maxIDLen))
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return bad(fmt.Sprintf("contains control character %U", r))
		}
	}
	return nil
}

// ValidateTopicPrefix checks a topic prefix: one or more levels separated by
// '/', each valid as for ValidateRobotID (so no leading, trailing or double
// '/', no wildcards, no '$' start).
func ValidateTopicPrefix(prefix string) error {
	if prefix == "" {
		return &IDError{Field: "topic prefix", Value: prefix, Reason: "empty"}
	}
	for _, level := range strings.Split(prefix, "/") {
		if err := validateLevel("topic prefix", level); err != nil {
			var ie *IDError
			if errors.As(err, &ie) {
				ie.Value = prefix
				ie.Reason = fmt.Sprintf("level %q: %s", level, ie.Reason)
			}
			return err
		}
	}
	return nil
}

// Topics builds the topic names of one robot. The zero value is not usable;
// create it with NewTopics.
//
//	<prefix>/<robot>/state               retained, QoS 1: birth / state / Last Will
//	<prefix>/<robot>/result/<slide_id>   QoS 1, not retained: one message per result
//	<prefix>/<robot>/event               QoS 1, not retained
//	<prefix>/<robot>/progress            QoS 0, not retained, lossy
//	<prefix>/<robot>/cmd                 fleet -> robot signed commands (Options.Subscriptions)
//	<prefix>/<robot>/cmd/reply           QoS 1, not retained: command replies (PublishReply)
type Topics struct {
	prefix, robot string
}

// NewTopics validates prefix and robotID and returns the topic builder.
// An empty prefix means DefaultTopicPrefix.
func NewTopics(prefix, robotID string) (Topics, error) {
	if prefix == "" {
		prefix = DefaultTopicPrefix
	}
	if err := ValidateTopicPrefix(prefix); err != nil {
		return Topics{}, err
	}
	if err := ValidateRobotID(robotID); err != nil {
		return Topics{}, err
	}
	return Topics{prefix: prefix, robot: robotID}, nil
}

// Prefix returns the topic prefix.
func (t Topics) Prefix() string { return t.prefix }

// RobotID returns the robot ID.
func (t Topics) RobotID() string { return t.robot }

func (t Topics) base() string { return t.prefix + "/" + t.robot }

// State is "<prefix>/<robot>/state" (retained, QoS 1; also the Last Will topic).
func (t Topics) State() string { return t.base() + "/state" }

// Event is "<prefix>/<robot>/event" (QoS 1).
func (t Topics) Event() string { return t.base() + "/event" }

// Progress is "<prefix>/<robot>/progress" (QoS 0, lossy).
func (t Topics) Progress() string { return t.base() + "/progress" }

// Cmd is "<prefix>/<robot>/cmd", the topic the robot subscribes to for
// signed fleet commands (package telemetry/command; the agent passes it in
// Options.Subscriptions).
func (t Topics) Cmd() string { return t.base() + "/cmd" }

// CmdReply is "<prefix>/<robot>/cmd/reply": the robot's answers to
// commands (QoS 1, not retained; PublishReply).
func (t Topics) CmdReply() string { return t.Cmd() + "/reply" }

// Ack is "<prefix>/<robot>/ack": fleet -> robot application-level acks.
func (t Topics) Ack() string { return t.base() + "/ack" }

// Replay is "<prefix>/<robot>/replay": fleet -> robot replay requests.
func (t Topics) Replay() string { return t.base() + "/replay" }

// Health is "<prefix>/<robot>/health": periodic health, QoS 0, retained.
func (t Topics) Health() string { return t.base() + "/health" }

// Result is "<prefix>/<robot>/result/<slideID>" (QoS 1, not retained). It
// returns an *IDError if slideID is not a safe topic level.
func (t Topics) Result(slideID string) (string, error) {
	if err := ValidateSlideID(slideID); err != nil {
		return "", err
	}
	return t.base() + "/result/" + slideID, nil
}

// ResultFilter is the subscription filter "<prefix>/+/result/#" that matches
// the results of every robot sharing prefix (what a fleet receiver subscribes to).
func ResultFilter(prefix string) string { return prefix + "/+/result/#" }

// EventFilter is "<prefix>/+/event", matching every robot's events.
func EventFilter(prefix string) string { return prefix + "/+/event" }

// AckTopic is "<prefix>/<robot>/ack" for a fleet that holds no Topics.
func AckTopic(prefix, robot string) string { return prefix + "/" + robot + "/ack" }

// ReplayTopic is "<prefix>/<robot>/replay".
func ReplayTopic(prefix, robot string) string { return prefix + "/" + robot + "/replay" }

// StateFilter is "<prefix>/+/state", matching every robot's state topic.
func StateFilter(prefix string) string { return prefix + "/+/state" }
