// Package fleet is the reference fleet receiver (it runs at the lab, not on
// the robot; cmd/papscan-fleet wraps it). It subscribes at QoS 1 to
// "<prefix>/<robot>/result/#", "<prefix>/<robot>/image/#" and
// "<prefix>/<robot>/event" of one robot or of all ("+"), optionally as a
// member of an MQTT shared subscription group (Options.Share, so several
// receivers split the traffic) and behind bridged site brokers
// (Options.Sites, topics "sites/<site>/<prefix>/..."). It commits every
// result, image and event to a Backend (papscan/fleet/store on PostgreSQL
// or SQLite for the fleet; the small bbolt Store here for the robot's
// in-process simulator), and only then publishes the application-level ack
// on "<prefix>/<robot>/ack". Messages that fail validation (an image that
// is not a PNG or is out of bounds, a payload that is not an envelope) are
// committed to quarantine, never dropped silently.
//
// It tracks each robot's outbox stream (outbox_session, outbox_seq,
// outbox_floor) and, when a sequence number has been missing below the
// highest one seen for ReplayInterval, publishes a replay request on
// "<prefix>/<robot>/replay" (at most once per ReplayInterval per robot).
//
// Paho handlers only parse and queue (never block); a full queue drops the
// message unacked, so the robot sends it again.
package fleet
