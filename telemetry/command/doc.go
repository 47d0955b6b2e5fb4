// Package command authenticates, validates and dispatches commands from
// the central fleet to a papscan robot, and encodes the replies. It is pure
// Go (no MQTT): the agent subscribes to the cmd topic with its telemetry
// client, hands each message to Dispatcher.Deliver, and publishes what the
// Dispatcher gives to DispatcherOptions.Publish. The fleet side uses Sign,
// GenerateKey and DecodeReply. docs/asyncapi.yaml and docs/schemas/ are
// the wire reference; this comment is the design.
//
// # Topics
//
//	<prefix>/<robot>/cmd         fleet -> robot  QoS 1, not retained   Signed
//	<prefix>/<robot>/cmd/reply   robot -> fleet  QoS 1, not retained   Reply
//
// The robot's telemetry session is persistent (CleanSession=false), so the
// broker queues commands while the robot is away; stale ones are refused
// by timestamp when it comes back.
//
// # Signed bytes
//
// A command message is
//
//	{"schema":"papscan.command/v1","key_id":"fleet-2026",
//	 "body":"<base64>","sig":"<base64>"}
//
// body is the standard, padded base64 (RFC 4648 §4, strict: no newlines,
// zero trailing bits) of the body bytes B, a JSON object:
//
//	{"id":"c-42","type":"fetch","robot":"robot-07",
//	 "issued_at":"2026-11-21T08:00:00Z","nonce":"q3MAlvq1Zc8lOXk0qcdwKA",
//	 "args":{"slide_id":"M0001-S03","result_id":"0192...","item":"gallery"}}
//
// and sig is the standard base64 of the 64-byte Ed25519 signature (RFC
// 8032, pure Ed25519) over "papscan.command/v1" || 0x00 || B. The robot
// verifies over the bytes it decoded, before parsing them, so there is no
// JSON canonicalisation on either side: the fleet signs whatever bytes it
// sends. key_id is an unsigned hint that selects the key (without it every
// trusted key is tried); a wrong hint can only make verification fail.
// After verification B must be exactly one JSON object whose keys at every
// level are unique lowercase snake_case ([a-z][a-z0-9_]*): encoding/json
// matches keys case-insensitively and lets duplicates win silently, so the
// robot refuses anything another parser could read differently. Unknown
// fields are refused at every level.
//
// Fields of B: id (correlation ID, 1..128 of [A-Za-z0-9._:-]); type (see
// Types); robot (target robot ID, must equal this robot's); issued_at
// (RFC 3339, the fleet's clock); nonce (16..128 of [A-Za-z0-9_-], unique
// per command; Sign uses 128 random bits); args (object, per type; absent
// or null for none). All but args are required.
//
// # Order of checks (Verifier.Verify, then ReplayGuard.Admit)
//
//	1 size <= 64 KiB, envelope strict, schema, base64      bad_request
//	2 Ed25519 signature with a trusted key                 unauthorized
//	3 body strict, every field well-formed                 bad_request
//	4 robot == this robot                                  wrong_robot
//	5 now-max_age <= issued_at <= now+clock_skew           stale
//	6 type known                                           unknown_command
//	7 args strict, types, ranges, names (no traversal)     bad_request
//	8 nonce not seen, store not full, store persisted      replay / stale / busy / internal
//	9 handler (Agent method, handler timeout)              ok / busy / invalid_state /
//	                                                       not_found / bad_request /
//	                                                       too_large / timeout / internal
//
// Only a command that passed 1..8 reaches the Agent: a refused command
// changes nothing. Every message, refused or run, produces one reply and
// one AuditRecord (except a verified command dropped because the command
// queue is full: audited, no reply). A refused message's reply carries its id if
// the body had a well-formed one, else "" (the id is then unauthenticated
// and only echoed for correlation).
//
// # Replay protection
//
// See ReplayGuard: nonces of admitted commands are kept until issued_at +
// max_age, persisted (fsync + rename) before the handler runs, bounded
// (full = busy, never evict); after a start without a readable store every
// command issued before start + clock_skew is refused, which covers any
// command an earlier process could have accepted.
//
// # Keys
//
// The robot trusts up to 16 Ed25519 public keys (agent.commands.fleet_keys
// and fleet_keys_file), written "<key_id>:<base64 of 32 bytes>". The fleet
// keeps the private key as PKCS #8 PEM (MarshalSigningKey). Rotation: add
// the new key to every robot, switch the fleet to it, remove the old one.
//
// # Handlers
//
// Deliver never blocks (safe in paho's callback): a message over 64 KiB is
// refused by its size before anything is copied; any other is copied and
// verified at once (steps 1..7), and only a verified command enters the
// bounded command queue; refusals wait in their own small queue, so a
// flood of refused messages can never crowd out a genuine command. Run
// takes verified commands first, in arrival order, admits each through
// the replay guard, calls the Agent in its own goroutine bounded by the
// handler timeout (a handler that overruns gets a timeout reply and the
// dispatcher moves on), and publishes the reply; then it answers queued
// refusals. Agent methods must return promptly and start long work in
// the background.
//
// Every accepted command is logged under its own message ("command
// accepted: <type> <id>"), so a log rate limit keyed by message never
// hides one; refusals share the message "command refused".
//
// Refusals are rate-limited (DispatcherOptions.RefusalBurst/RefusalEvery,
// default 30 then one per 2 s): beyond that a refused message gets neither
// reply nor audit record, only a count in the next record's Suppressed.
// Whoever can publish on the cmd topic without the fleet key thus cannot
// flood replies, logs or the durable audit trail. Accepted commands are
// limited only by the replay store's capacity.
package command
