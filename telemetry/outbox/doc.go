// Package outbox is the robot's durable outbox: every slide result, its
// images (PutImage: gallery crops and overview, acked by image_id) and
// every event is committed to a bbolt file in the state directory (fsync
// on commit) BEFORE it is published, and removed only when the fleet's
// application-level ack naming its ID arrives (telemetry.Ack on
// "<prefix>/<robot>/ack"). A PUBACK proves nothing: a broker may
// acknowledge a publish its ACL refused, drop it past its queue limits or
// lose it in a crash.
//
// Sequence numbers: the outbox file carries a session ID (created with the
// file) and a sequence counter, both persisted in the same transaction as
// each entry, so the fleet sees one gap-free stream per robot across
// restarts (envelope outbox_session / outbox_seq; outbox_floor tells it
// which lower numbers were acked already). A fleet that sees a gap asks
// for a replay on "<prefix>/<robot>/replay".
//
// Sender is the single goroutine that publishes entries in sequence order
// at QoS 1 (waiting for each PUBACK), keeps at most Window entries awaiting
// the fleet's ack, and sends every unacked entry again, oldest first: at
// start, after every reconnect, on a replay request and when the oldest
// in-flight entry has waited AckTimeout. Delivery is at least once; the
// fleet deduplicates on (robot_id, result_id / event_id / image_id).
//
// A full disk never evicts anything: Put returns an error wrapping ErrFull
// (ENOSPC, EDQUOT, EFBIG) or ErrStorage (any other I/O failure), and Admit
// refuses new work while the file system is below Options.MinFreeBytes or
// the last commit failed. The agent calls Admit before every new slide
// and stops taking slides when it fails (panel fault, hal.FaultStorage).
//
// A new outbox file is built under a temporary name and renamed into
// place, so a crash during the very first initialisation (the one moment
// bbolt can leave a corrupt file) leaves no file behind.
//
// The file is hostile input. bbolt trusts its file (a forged length makes
// it fault outside its mapping and kill the process), so Open first walks
// the raw pages itself (meta pages, freelist, page tree, element bounds),
// then runs bbolt's Check and validates every entry (DecodeEntry) and the
// ID index. The last committed sequence number is also kept in
// <outbox>.hwm (two checksummed slots, fsynced after each commit): it
// exposes a rollback to bbolt's older meta page and says what was held
// when the file is lost or emptied. A damaged, truncated, empty, missing
// or rolled-back file is kept aside as <outbox>.corrupt-<unix seconds>,
// every entry a raw page scan still finds is carried into a new file
// under the same session, and an EventDamaged event naming the lost
// sequence range is committed for the fleet; Outbox.Damage (an error
// wrapping ErrStorage) tells the agent to latch a storage fault. An entry
// found unreadable later makes Pending fail with ErrStorage and Admit
// refuse new slides until the next Open recovers the file.
//
// Rederive commits again what a damaged file lost and the state directory
// still holds: each slide's result.json and the images StoreImages kept
// beside it (images.json and images/<image_id>.png; delivery stores them
// before the result.json), under their own result and image IDs.
package outbox
