// Package telemetry carries a papscan robot's results, events, progress and
// state to the central fleet over MQTT 3.1.1 (paho.mqtt.golang v1.5.1).
// It knows MQTT, not motors: it imports nothing from papscan/hal or
// papscan/scan, and the scan code hands it result bodies as JSON.
//
// # Topics
//
// With prefix P (Options.TopicPrefix, default "papscan"; may span levels,
// e.g. "site1/papscan") and robot ID R (Options.RobotID):
//
//	topic                  QoS  retained  content
//	P/R/state              1    yes       birth {"state":"online"} on every (re)connect,
//	                                      application states (PublishState),
//	                                      {"state":"offline"} on Close and as the Last Will
//	P/R/result/<slide_id>  1    no        one message per result (PublishResult)
//	P/R/event              1    no        events (PublishEvent)
//	P/R/progress           0    no        scan progress (PublishProgress); lossy by design
//	P/R/health             0    yes       periodic Health (RunHealth, PublishHealth)
//	P/R/ack                1    no        fleet -> robot: Ack {"ids":[...]} (Options.OnAck)
//	P/R/replay             1    no        fleet -> robot: Replay {"from_seq","to_seq"} (Options.OnReplay)
//	P/R/cmd                1    no        fleet -> robot signed commands (Options.Subscriptions)
//	P/R/cmd/reply          1    no        command replies (PublishReply; package telemetry/command)
//
// Topics builds them (NewTopics, Topics.State, Topics.Result, ...);
// ResultFilter(P) = "P/+/result/#" and StateFilter(P) = "P/+/state" are the
// fleet-side subscriptions. Robot and slide IDs must be one safe topic
// level: non-empty, valid UTF-8, at most 128 bytes, no '/', '+', '#', no
// leading '$', no control or space characters. Violations return an
// *IDError (errors.Is(err, ErrInvalidID)) naming the field and the reason.
//
// # Payloads
//
// Every message is a JSON Envelope (schema "papscan.telemetry/v1"):
//
//	{"schema":"papscan.telemetry/v1","kind":"result",
//	 "message_id":"<uuidv7>","robot_id":"R","session_id":"<uuidv7>","seq":7,
//	 "sent_at":"2026-11-21T07:47:00.123Z",
//	 "slide_id":"S-2026-000123","result_id":"<uuidv7>",
//	 "body":{ ...result produced by the scan code... }}
//
//	kind      extra fields         body
//	result    slide_id, result_id  the caller's JSON, embedded unchanged (must be valid JSON)
//	event     event                json.Marshal(payload), omitted if nil
//	progress  slide_id             {"done":d,"total":t}
//	state     state                fields (birth: {"client_id":...}; offline: {"reason":...})
//
// message_id is unique per publish call; result_id is the result's stable
// identity, kept across retries, and the receiver's deduplication key
// (robot_id, result_id). session_id is random per Client (process start)
// and seq counts from 1 within it. The Last Will is fixed at connect time:
// {"schema":...,"kind":"state","robot_id":R,"session_id":...,
// "state":"offline","body":{"reason":"connection lost"}} with no
// message_id, seq or sent_at. NewID makes UUIDv7-layout IDs from
// crypto/rand (time-ordered to the millisecond).
//
// # paho options and why
//
//   - ClientID "papscan-<robot>" by default: stable (the broker keys the
//     persistent session on it) and unique (a duplicate ID makes two
//     clients knock each other off in an endless loop).
//   - CleanSession=false: paho re-sends unacknowledged QoS 1 publishes after
//     a reconnect only with a persistent session (with true, Connect resets
//     the store and anything queued is silently lost); the broker also keeps
//     the future cmd subscription and queues commands while we are away.
//   - OrderMatters=false: incoming messages are handled in their own
//     goroutines, so a slow handler cannot deadlock the network loop.
//   - AutoReconnect with MaxReconnectInterval 30 s (paho: 10 min), and
//     ConnectRetry with a 1 s retry interval (paho: 30 s) so the first
//     connect survives a broker or network that is still coming up; Dial
//     bounds the wait and stops the retries when it gives up, returning
//     ErrUnreachable with the broker URLs and the last attempt's error.
//   - ProtocolVersion 4 (MQTT 3.1.1) explicitly: no silent 3.1 fallback.
//   - KeepAlive 30 s: the broker publishes the Will after 1.5x silence.
//   - ResumeSubs left false: the ack, replay and command subscriptions are
//     made explicitly on every connect (a broker restarted without
//     persistence has forgotten them), before Options.OnConnected runs.
//   - PingTimeout 10 s: a blackholed link (no PINGRESP) is dropped and
//     redialled after KeepAlive + PingTimeout.
//   - WriteTimeout = PublishTimeout: bounded hand-over and socket writes.
//   - Will: retained "offline" at QoS 1 on the state topic.
//   - OnConnect only starts a goroutine (birth, then the last application
//     state again, so a reconnect does not hide e.g. "fault" behind
//     "online"); a connection-lost handler logs.
//   - Store: paho's MemoryStore wrapped by ackStore. paho v1.5.1 can
//     complete a publish token without error and without a PUBACK (on
//     resume after a reconnect), and mutates stored packets the writer may
//     be sending (data race). ackStore observes the store deletion paho
//     performs exactly when a PUBACK arrives, so PublishResult/Event/State
//     return nil only after the broker acknowledged that very message; it
//     also copies stored packets.
//
// # Delivery guarantees (and what they are not)
//
// PublishResult, PublishEvent and PublishState wait for the PUBACK, bounded
// by ctx and Options.PublishTimeout. An error (ErrNotAcked, ErrClosed,
// ErrInvalidID, ErrInvalidPayload) means "not confirmed": the caller keeps
// the result and retries with the same result_id. After an ErrNotAcked the
// message may still be delivered later (paho re-sends it after a
// reconnect), so duplicates are expected; receivers deduplicate. A nil
// error means the broker acknowledged it, which does NOT prove the fleet
// stored it: a broker may PUBACK a publish its ACL refused, drop messages
// past its queue limits, or lose them in a crash. The in-memory paho store
// is lost when the process dies. PublishProgress is QoS 0 and never blocks;
// messages are dropped when the queue is full or the link is down.
// The state topic flips to "offline" via the Will only after the broker
// notices the loss (at most 1.5 x KeepAlive) or at once on a TCP reset.
//
// # Durable delivery
//
// Results and events go through package telemetry/outbox: committed to
// disk first, published by PublishDelivery (envelope result_id/event_id,
// outbox_session, outbox_seq, outbox_floor, committed_at, attempt), and
// removed only by the fleet's Ack. ack and replay are subscribed (QoS 1)
// on every connect, before Options.OnConnected runs, so acks flow before
// the outbox replays. Acks and replay requests are signed by the fleet's
// receiver and verified before the handlers see them (Options.FleetAuth,
// e.g. a telemetry/command.KeyRing); Dial refuses OnAck/OnReplay without
// a verifier unless Options.UnsignedFleet says this is a simulator or a
// development setup. Package telemetry/fleet is the reference receiver;
// docs/telemetry-delivery.md describes the protocol and the fault tests
// (telemetry/integration, real Mosquitto).
package telemetry
