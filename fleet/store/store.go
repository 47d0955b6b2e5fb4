package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Engine names a database engine.
type Engine string

// The engines.
const (
	Postgres Engine = "postgres"
	SQLite   Engine = "sqlite"
)

// Store is the fleet database. It is safe for concurrent use, and several
// processes may share one PostgreSQL database.
type Store struct {
	db     *sql.DB
	engine Engine
}

// Open connects to dsn and applies the migrations it lacks. A dsn starting
// with postgres:// or postgresql:// (or "host=... " key/value form with
// engine postgres) is PostgreSQL; anything else is the path of a SQLite
// file (created if missing; "sqlite:" prefix optional).
func Open(ctx context.Context, dsn string) (*Store, error) {
	var s *Store
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		db.SetMaxOpenConns(8)
		db.SetConnMaxIdleTime(5 * time.Minute)
		s = &Store{db: db, engine: Postgres}
	default:
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, errors.New("store: empty database path")
		}
		q := url.Values{}
		for _, p := range []string{"busy_timeout(15000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate") // one writer; no upgrade deadlocks
		db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", path, err)
		}
		db.SetMaxOpenConns(4)
		s = &Store{db: db, engine: SQLite}
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	return s, nil
}

// Engine says which engine the store runs on.
func (s *Store) Engine() Engine { return s.engine }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// DB is the underlying database (tests, maintenance).
func (s *Store) DB() *sql.DB { return s.db }

// q rewrites the '?' placeholders of a query for the engine.
func (s *Store) q(query string) string {
	if s.engine != Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// migration is one schema version. SQL is shared; the tokens {serial},
// {blob} and {bool} are the engine's types; PG and Lite are engine-only
// statements (triggers).
type migration struct {
	version  int
	name     string
	sql      string
	pg, lite string
	// fn, if set, runs after the statements in the same transaction
	// (a backfill that needs Go, not SQL).
	fn func(ctx context.Context, s *Store, tx *sql.Tx) error
}

var migrations = []migration{{
	version: 1, name: "records, images, streams, quarantine",
	sql: `
CREATE TABLE records (
  robot_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  id TEXT NOT NULL,
  site TEXT NOT NULL DEFAULT '',
  slide_id TEXT NOT NULL DEFAULT '',
  result_id TEXT NOT NULL DEFAULT '',
  event TEXT NOT NULL DEFAULT '',
  outbox_session TEXT NOT NULL DEFAULT '',
  outbox_seq BIGINT NOT NULL DEFAULT 0,
  received_us BIGINT NOT NULL,
  verdict TEXT NOT NULL DEFAULT '',
  priority INTEGER NOT NULL DEFAULT 2,
  top_score DOUBLE PRECISION NOT NULL DEFAULT 0,
  finished_us BIGINT NOT NULL DEFAULT 0,
  review_state TEXT NOT NULL DEFAULT '',
  envelope {blob} NOT NULL,
  PRIMARY KEY (robot_id, kind, id)
);
CREATE INDEX records_worklist ON records (kind, priority, top_score);
CREATE INDEX records_slide ON records (slide_id);
CREATE TABLE images (
  robot_id TEXT NOT NULL,
  image_id TEXT NOT NULL,
  result_id TEXT NOT NULL,
  slide_id TEXT NOT NULL,
  role TEXT NOT NULL,
  idx INTEGER NOT NULL,
  of_n INTEGER NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  pixel_um DOUBLE PRECISION NOT NULL,
  score DOUBLE PRECISION NOT NULL,
  class TEXT NOT NULL,
  stage_x_um DOUBLE PRECISION NOT NULL,
  stage_y_um DOUBLE PRECISION NOT NULL,
  origin_x_um DOUBLE PRECISION NOT NULL,
  origin_y_um DOUBLE PRECISION NOT NULL,
  png {blob} NOT NULL,
  received_us BIGINT NOT NULL,
  PRIMARY KEY (robot_id, image_id)
);
CREATE INDEX images_result ON images (robot_id, result_id);
CREATE TABLE streams (
  robot_id TEXT NOT NULL,
  outbox_session TEXT NOT NULL,
  state TEXT NOT NULL,
  PRIMARY KEY (robot_id, outbox_session)
);
CREATE TABLE quarantine (
  id {serial},
  received_us BIGINT NOT NULL,
  topic TEXT NOT NULL,
  robot_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  msg_id TEXT NOT NULL,
  reason TEXT NOT NULL,
  size BIGINT NOT NULL,
  sha256 TEXT NOT NULL UNIQUE,
  head {blob} NOT NULL
);`,
}, {
	version: 2, name: "review station: users, sessions, reviews, append-only audit",
	sql: `
CREATE TABLE users (
  username TEXT PRIMARY KEY,
  role TEXT NOT NULL CHECK (role IN ('reviewer', 'supervisor', 'admin')),
  password_hash TEXT NOT NULL,
  created_us BIGINT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE sessions (
  token_hash TEXT PRIMARY KEY,
  username TEXT NOT NULL REFERENCES users (username),
  csrf TEXT NOT NULL,
  created_us BIGINT NOT NULL,
  expires_us BIGINT NOT NULL
);
CREATE TABLE reviews (
  id {serial},
  robot_id TEXT NOT NULL,
  result_id TEXT NOT NULL,
  reviewer TEXT NOT NULL,
  role TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('primary', 'second')),
  interpretation TEXT NOT NULL CHECK (interpretation IN ('NILM', 'ASC-US', 'LSIL', 'ASC-H', 'HSIL', 'SCC', 'unsatisfactory')),
  comment TEXT NOT NULL,
  disagrees INTEGER NOT NULL,
  at_us BIGINT NOT NULL
);
CREATE INDEX reviews_result ON reviews (robot_id, result_id);
CREATE TABLE audit (
  id {serial},
  at_us BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  robot_id TEXT NOT NULL,
  result_id TEXT NOT NULL,
  detail TEXT NOT NULL
);
CREATE INDEX audit_result ON audit (robot_id, result_id);`,
	pg: `
CREATE FUNCTION papscan_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'papscan: % is append-only (% refused)', TG_TABLE_NAME, TG_OP;
END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION papscan_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION papscan_append_only();
CREATE TRIGGER reviews_append_only BEFORE UPDATE OR DELETE ON reviews FOR EACH ROW EXECUTE FUNCTION papscan_append_only();
CREATE TRIGGER reviews_no_truncate BEFORE TRUNCATE ON reviews FOR EACH STATEMENT EXECUTE FUNCTION papscan_append_only();`,
	lite: `
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'papscan: audit is append-only (UPDATE refused)'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'papscan: audit is append-only (DELETE refused)'); END;
CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews BEGIN SELECT RAISE(ABORT, 'papscan: reviews is append-only (UPDATE refused)'); END;
CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews BEGIN SELECT RAISE(ABORT, 'papscan: reviews is append-only (DELETE refused)'); END;`,
}, {
	version: 3, name: "results: supersedes, superseded_by",
	sql: `
ALTER TABLE records ADD COLUMN supersedes TEXT NOT NULL DEFAULT '';
ALTER TABLE records ADD COLUMN superseded_by TEXT NOT NULL DEFAULT '';
CREATE INDEX records_supersedes ON records (robot_id, supersedes);`,
	fn: backfillSupersedes,
}}

// SchemaVersion is the schema version this code writes.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	defer tx.Rollback()
	if s.engine == Postgres {
		// Several receivers may start at once.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(72070417)`); err != nil {
			return fmt.Errorf("store: migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_us BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("store: migrate: %w", err)
	}
	if have > SchemaVersion() {
		return fmt.Errorf("store: database schema version %d is newer than this program's %d", have, SchemaVersion())
	}
	for _, m := range migrations {
		if m.version <= have {
			continue
		}
		for _, stmt := range []string{s.expand(m.sql), map[Engine]string{Postgres: m.pg, SQLite: m.lite}[s.engine]} {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if m.fn != nil {
			if err := m.fn(ctx, s, tx); err != nil {
				return fmt.Errorf("store: migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_us) VALUES (?, ?, ?)`), m.version, m.name, now()); err != nil {
			return fmt.Errorf("store: migration %d: %w", m.version, err)
		}
	}
	return tx.Commit()
}

func (s *Store) expand(sqlText string) string {
	r := map[Engine]*strings.Replacer{
		Postgres: strings.NewReplacer("{serial}", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "{blob}", "BYTEA"),
		SQLite:   strings.NewReplacer("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{blob}", "BLOB"),
	}[s.engine]
	return r.Replace(sqlText)
}

// Version returns the schema version of the database.
func (s *Store) Version(ctx context.Context) (int, error) {
	var v int
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func now() int64 { return time.Now().UnixMicro() }

// clean makes robot-supplied text storable in every engine: invalid UTF-8
// and NUL (refused by PostgreSQL's text) become U+FFFD; max bounds it.
func clean(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
