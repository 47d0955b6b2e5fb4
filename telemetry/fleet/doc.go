// Package fleet is the reference fleet receiver (it runs at the lab, not on
// the robot; cmd/papscan-fleet wraps it). It subscribes at QoS 1, with a
// persistent session, to "<prefix>/<robot>/result/#" and
// "<prefix>/<robot>/event" of one robot or of all ("+"), commits every
// result and event to a bbolt Store (fsync on commit, one record per
// (robot_id, kind, result_id/event_id); duplicates only count copies), and
// only then publishes the application-level ack on "<prefix>/<robot>/ack".
// It tracks each robot's outbox stream (outbox_session, outbox_seq,
// outbox_floor) and, when a sequence number is missing below the highest
// one seen, publishes a replay request on "<prefix>/<robot>/replay" (at
// most once per ReplayInterval per robot).
//
// Paho handlers only parse and queue (never block); a full queue drops the
// message unacked, so the robot sends it again.
package fleet
