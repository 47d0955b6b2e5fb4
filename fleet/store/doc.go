// Package store is the fleet's database: the results, images and events
// the robots deliver, and the review station's accounts, sessions,
// sign-outs and audit log. One API over two engines with the same schema
// (versioned migrations, applied by Open): PostgreSQL through pgx (what a
// fleet runs, several receivers at once) and an embedded SQLite through
// modernc.org/sqlite (pure Go, the default for the simulator and a single
// site).
//
//	st, err := store.Open(ctx, "postgres://papscan@db.lab/papscan")  // or a file path: SQLite
//	defer st.Close()
//	rcv, err := fleet.Start(ctx, st, fleet.Options{...})             // st is a telemetry/fleet Backend
//
// Delivery is idempotent by ack key: a result, event or image is one row
// keyed by (robot_id, kind, id) and a duplicate changes nothing. Commit
// returns only after the transaction committed, so the receiver acks only
// what is durable. Text from the robots is stored through parameters only,
// with NUL and invalid UTF-8 replaced. The audit log and the reviews are
// append-only, enforced by triggers in the database.
//
// A result that names an earlier result of the same robot and slide in
// `supersedes` (the rescan of an INCOMPLETE slide, the report of a slide a
// restart interrupted) takes it off the worklist, in either arrival
// order: the earlier one stays readable (Result) with SupersededBy set,
// and Filter.Superseded lists it again.
package store
