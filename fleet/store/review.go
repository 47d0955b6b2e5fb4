package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Roles of the review station's accounts.
const (
	RoleReviewer   = "reviewer"
	RoleSupervisor = "supervisor"
	RoleAdmin      = "admin"
)

// Interpretations a reviewer signs out with (The Bethesda System).
var Interpretations = []string{"NILM", "ASC-US", "LSIL", "ASC-H", "HSIL", "SCC", "unsatisfactory"}

// User is a review station account.
type User struct {
	Username, Role, PasswordHash string
	Created                      time.Time
	Disabled                     bool
}

// ErrExists is returned when creating what already exists.
var ErrExists = errors.New("already exists")

// CreateUser adds an account (the hash comes from the caller's KDF) and
// audits it as done by actor.
func (s *Store) CreateUser(ctx context.Context, actor string, u User) error {
	if !slices.Contains([]string{RoleReviewer, RoleSupervisor, RoleAdmin}, u.Role) {
		return fmt.Errorf("store: user %q: role %q, want reviewer, supervisor or admin", u.Username, u.Role)
	}
	if u.Username == "" || len(u.Username) > 64 || clean(u.Username, 64) != u.Username {
		return fmt.Errorf("store: user name %q: want 1..64 bytes of UTF-8", u.Username)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	r, err := tx.ExecContext(ctx, s.q(`INSERT INTO users (username, role, password_hash, created_us) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		u.Username, u.Role, u.PasswordHash, now())
	if err != nil {
		return fmt.Errorf("store: user %q: %w", u.Username, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("store: user %q: %w", u.Username, ErrExists)
	}
	if err := s.audit(ctx, tx, actor, "user_created", "", "", u.Username+" ("+u.Role+")"); err != nil {
		return err
	}
	return tx.Commit()
}

// User returns an account.
func (s *Store) User(ctx context.Context, name string) (User, error) {
	var u User
	var at int64
	var dis int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT username, role, password_hash, created_us, disabled FROM users WHERE username = ?`), name).
		Scan(&u.Username, &u.Role, &u.PasswordHash, &at, &dis)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("store: user %q: %w", name, ErrNotFound)
	}
	u.Created, u.Disabled = time.UnixMicro(at).UTC(), dis != 0
	return u, err
}

// Users lists the accounts by name.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT username, role, created_us, disabled FROM users ORDER BY username`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var at int64
		var dis int
		if err := rows.Scan(&u.Username, &u.Role, &at, &dis); err != nil {
			return nil, err
		}
		u.Created, u.Disabled = time.UnixMicro(at).UTC(), dis != 0
		out = append(out, u)
	}
	return out, rows.Err()
}

// Session is a logged-in browser (the cookie carries the token; the store
// keeps only its hash).
type Session struct {
	TokenHash, Username, CSRF string
	Created, Expires          time.Time
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO sessions (token_hash, username, csrf, created_us, expires_us) VALUES (?, ?, ?, ?, ?)`),
		se.TokenHash, se.Username, se.CSRF, se.Created.UnixMicro(), se.Expires.UnixMicro())
	return err
}

// Session returns a session that has not expired at now, with its user.
func (s *Store) Session(ctx context.Context, tokenHash string, at time.Time) (Session, User, error) {
	var se Session
	var u User
	var c, e int64
	var dis int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT s.token_hash, s.username, s.csrf, s.created_us, s.expires_us, u.role, u.disabled
		FROM sessions s JOIN users u ON u.username = s.username WHERE s.token_hash = ? AND s.expires_us > ?`), tokenHash, at.UnixMicro()).
		Scan(&se.TokenHash, &se.Username, &se.CSRF, &c, &e, &u.Role, &dis)
	if errors.Is(err, sql.ErrNoRows) {
		return se, u, ErrNotFound
	}
	if err != nil {
		return se, u, err
	}
	se.Created, se.Expires = time.UnixMicro(c).UTC(), time.UnixMicro(e).UTC()
	u.Username, u.Disabled = se.Username, dis != 0
	if u.Disabled {
		return se, u, ErrNotFound
	}
	return se, u, nil
}

// DeleteSession ends a session (log out); expired ones are removed too.
func (s *Store) DeleteSession(ctx context.Context, tokenHash string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE token_hash = ? OR expires_us < ?`), tokenHash, now())
	return err
}

// Review is one sign-out of a result.
type Review struct {
	ID                int64
	RobotID, ResultID string
	Reviewer, Role    string
	Kind              string // "primary" or "second"
	Interpretation    string
	Comment           string
	Disagrees         bool // the interpretation's category differs from the robot's verdict
	At                time.Time
}

// category maps a verdict or an interpretation onto negative, low, high,
// unsatisfactory.
func category(v string) string {
	switch v {
	case "NILM":
		return "negative"
	case "LOW_GRADE", "ASC-US", "LSIL":
		return "low"
	case "HIGH_GRADE", "ASC-H", "HSIL", "SCC":
		return "high"
	}
	return "unsatisfactory" // INCOMPLETE, UNSATISFACTORY, unsatisfactory, unparsed
}

// Disagrees reports whether a reviewer's interpretation and the robot's
// verdict fall in different categories (negative; ASC-US/LSIL; ASC-H and
// worse; unsatisfactory/incomplete).
func Disagrees(verdict, interpretation string) bool {
	return category(verdict) != category(interpretation)
}

// Review errors.
var (
	ErrReviewed     = errors.New("already signed out")
	ErrSameReviewer = errors.New("a second review needs another reviewer")
)

// SignOut stores a reviewer's interpretation of a result and audits it, in
// one transaction. The first sign-out is the primary review; when it
// disagrees with the robot the result waits for a second review, by
// another account; after that the result is closed.
func (s *Store) SignOut(ctx context.Context, r Review) (Review, error) {
	if !slices.Contains(Interpretations, r.Interpretation) {
		return r, fmt.Errorf("store: interpretation %q, want one of %v", r.Interpretation, Interpretations)
	}
	if len(r.Comment) > 4000 {
		return r, fmt.Errorf("store: comment is %d bytes, at most 4000", len(r.Comment))
	}
	r.Comment = clean(r.Comment, 4000)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return r, err
	}
	defer tx.Rollback()
	lock := ""
	if s.engine == Postgres {
		lock = " FOR UPDATE"
	}
	var verdict, state string
	err = tx.QueryRowContext(ctx, s.q(`SELECT verdict, review_state FROM records WHERE robot_id = ? AND kind = 'result' AND id = ?`+lock), r.RobotID, r.ResultID).Scan(&verdict, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("store: result %s/%s: %w", r.RobotID, r.ResultID, ErrNotFound)
	}
	if err != nil {
		return r, err
	}
	next := StateSigned
	switch state {
	case StatePending:
		r.Kind = "primary"
		r.Disagrees = Disagrees(verdict, r.Interpretation)
		if r.Disagrees {
			next = StateSecond
		}
	case StateSecond:
		r.Kind = "second"
		var first string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT reviewer FROM reviews WHERE robot_id = ? AND result_id = ? AND kind = 'primary'`), r.RobotID, r.ResultID).Scan(&first); err != nil {
			return r, err
		}
		if first == r.Reviewer {
			return r, ErrSameReviewer
		}
		r.Disagrees = Disagrees(verdict, r.Interpretation)
	default:
		return r, ErrReviewed
	}
	r.At = time.Now().UTC()
	if err := tx.QueryRowContext(ctx, s.q(`INSERT INTO reviews (robot_id, result_id, reviewer, role, kind, interpretation, comment, disagrees, at_us)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		r.RobotID, r.ResultID, r.Reviewer, r.Role, r.Kind, r.Interpretation, r.Comment, boolInt(r.Disagrees), r.At.UnixMicro()).Scan(&r.ID); err != nil {
		return r, fmt.Errorf("store: review: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE records SET review_state = ? WHERE robot_id = ? AND kind = 'result' AND id = ?`), next, r.RobotID, r.ResultID); err != nil {
		return r, err
	}
	detail := fmt.Sprintf("%s review: %s (robot %s)", r.Kind, r.Interpretation, verdict)
	if r.Disagrees {
		detail += "; disagrees with the robot"
	}
	if err := s.audit(ctx, tx, r.Reviewer, "sign_out", r.RobotID, r.ResultID, detail); err != nil {
		return r, err
	}
	return r, tx.Commit()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Reviews returns a result's sign-outs, oldest first.
func (s *Store) Reviews(ctx context.Context, robot, resultID string) ([]Review, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, robot_id, result_id, reviewer, role, kind, interpretation, comment, disagrees, at_us
		FROM reviews WHERE robot_id = ? AND result_id = ? ORDER BY id`), robot, resultID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Review
	for rows.Next() {
		var r Review
		var dis int
		var at int64
		if err := rows.Scan(&r.ID, &r.RobotID, &r.ResultID, &r.Reviewer, &r.Role, &r.Kind, &r.Interpretation, &r.Comment, &dis, &at); err != nil {
			return nil, err
		}
		r.Disagrees, r.At = dis != 0, time.UnixMicro(at).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// AuditEntry is one line of the append-only audit log.
type AuditEntry struct {
	ID                                       int64
	At                                       time.Time
	Actor, Action, RobotID, ResultID, Detail string
}

// Audit appends an entry (login, logout, refused access, ...).
func (s *Store) Audit(ctx context.Context, actor, action, robot, resultID, detail string) error {
	return s.audit(ctx, s.db, actor, action, robot, resultID, detail)
}

type execer interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}

func (s *Store) audit(ctx context.Context, db execer, actor, action, robot, resultID, detail string) error {
	_, err := db.ExecContext(ctx, s.q(`INSERT INTO audit (at_us, actor, action, robot_id, result_id, detail) VALUES (?, ?, ?, ?, ?, ?)`),
		now(), clean(actor, 128), clean(action, 64), clean(robot, 128), clean(resultID, 128), clean(detail, 2000))
	if err != nil {
		return fmt.Errorf("store: audit: %w", err)
	}
	return nil
}

// AuditLog returns entries newest first; robot and resultID ("" = any)
// narrow it to one result.
func (s *Store) AuditLog(ctx context.Context, robot, resultID string, limit int) ([]AuditEntry, error) {
	if limit <= 0 {
		limit = 200
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id, at_us, actor, action, robot_id, result_id, detail FROM audit
		WHERE (? = '' OR robot_id = ?) AND (? = '' OR result_id = ?) ORDER BY id DESC LIMIT ?`), robot, robot, resultID, resultID, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var a AuditEntry
		var at int64
		if err := rows.Scan(&a.ID, &at, &a.Actor, &a.Action, &a.RobotID, &a.ResultID, &a.Detail); err != nil {
			return nil, err
		}
		a.At = time.UnixMicro(at).UTC()
		out = append(out, a)
	}
	return out, rows.Err()
}
