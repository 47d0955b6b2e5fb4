package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"papscan/telemetry/fleet"
)

// Review states of a result on the worklist.
const (
	StatePending = "pending" // no sign-out yet
	StateSecond  = "second"  // signed out, robot and reviewer disagree: waits for a second review
	StateSigned  = "signed"  // signed out (and, where needed, second-reviewed)
	// StateOpen filters the worklist on pending and second together.
	StateOpen = "open"
)

// ErrNotFound is returned for a record, image or user the store lacks.
var ErrNotFound = errors.New("not found")

// Slide is one result on the worklist.
type Slide struct {
	RobotID, ResultID, SlideID, Site string
	Verdict                          string
	TopScore                         float64
	Received, Finished               time.Time
	ReviewState                      string
	Images                           int
	// Supersedes is the earlier result of the slide this one replaces
	// (the robot's `supersedes`); SupersededBy the later result that
	// replaces this one ("" while it stands).
	Supersedes, SupersededBy string
}

// Filter selects worklist rows; empty fields match everything.
type Filter struct {
	Site, Robot, Verdict, State string
	// From and To bound the day the result was received (UTC, To
	// exclusive); zero is open.
	From, To time.Time
	Limit    int // default 200
	Offset   int
	// Superseded includes results a later result of the same slide
	// superseded (they leave the worklist otherwise).
	Superseded bool
}

// Worklist returns results by priority: HIGH_GRADE, then LOW_GRADE, then
// the rest, each by top cell score (highest first), then oldest first.
func (s *Store) Worklist(ctx context.Context, f Filter) ([]Slide, error) {
	where := []string{"r.kind = 'result'"}
	if !f.Superseded {
		where = append(where, "r.superseded_by = ''")
	}
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Site != "" {
		add("r.site = ?", f.Site)
	}
	if f.Robot != "" {
		add("r.robot_id = ?", f.Robot)
	}
	if f.Verdict != "" {
		add("r.verdict = ?", f.Verdict)
	}
	switch f.State {
	case "":
	case StateOpen:
		where = append(where, "r.review_state IN ('pending', 'second')")
	default:
		add("r.review_state = ?", f.State)
	}
	if !f.From.IsZero() {
		add("r.received_us >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		add("r.received_us < ?", f.To.UnixMicro())
	}
	if f.Limit <= 0 || f.Limit > 1000 {
		f.Limit = 200
	}
	query := `SELECT r.robot_id, r.id, r.slide_id, r.site, r.verdict, r.top_score, r.received_us, r.finished_us, r.review_state,
		r.supersedes, r.superseded_by,
		(SELECT COUNT(*) FROM images i WHERE i.robot_id = r.robot_id AND i.result_id = r.id)
		FROM records r WHERE ` + strings.Join(where, " AND ") + `
		ORDER BY r.priority, r.top_score DESC, r.received_us, r.robot_id, r.id LIMIT ? OFFSET ?`
	args = append(args, f.Limit, f.Offset)
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: worklist: %w", err)
	}
	defer rows.Close()
	var out []Slide
	for rows.Next() {
		var sl Slide
		var rec, fin int64
		if err := rows.Scan(&sl.RobotID, &sl.ResultID, &sl.SlideID, &sl.Site, &sl.Verdict, &sl.TopScore, &rec, &fin, &sl.ReviewState,
			&sl.Supersedes, &sl.SupersededBy, &sl.Images); err != nil {
			return nil, err
		}
		sl.Received = time.UnixMicro(rec).UTC()
		if fin != 0 {
			sl.Finished = time.UnixMicro(fin).UTC()
		}
		out = append(out, sl)
	}
	return out, rows.Err()
}

// Facets are the values the worklist filters offer.
type Facets struct{ Sites, Robots []string }

// Facets lists the sites and robots that have results.
func (s *Store) Facets(ctx context.Context) (Facets, error) {
	var f Facets
	for _, q := range []struct {
		col string
		dst *[]string
	}{{"site", &f.Sites}, {"robot_id", &f.Robots}} {
		rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT `+q.col+` FROM records WHERE kind = 'result' ORDER BY 1 LIMIT 500`)
		if err != nil {
			return f, err
		}
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				rows.Close()
				return f, err
			}
			*q.dst = append(*q.dst, v)
		}
		rows.Close()
	}
	return f, nil
}

// Result is one stored result with its envelope.
type Result struct {
	Slide
	Envelope json.RawMessage
}

// Result returns one result.
func (s *Store) Result(ctx context.Context, robot, resultID string) (Result, error) {
	var r Result
	var rec, fin int64
	var env []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT robot_id, id, slide_id, site, verdict, top_score, received_us, finished_us, review_state,
		supersedes, superseded_by, envelope
		FROM records WHERE robot_id = ? AND kind = 'result' AND id = ?`), robot, resultID).
		Scan(&r.RobotID, &r.ResultID, &r.SlideID, &r.Site, &r.Verdict, &r.TopScore, &rec, &fin, &r.ReviewState,
			&r.Supersedes, &r.SupersededBy, &env)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("store: result %s/%s: %w", robot, resultID, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("store: result %s/%s: %w", robot, resultID, err)
	}
	r.Received = time.UnixMicro(rec).UTC()
	if fin != 0 {
		r.Finished = time.UnixMicro(fin).UTC()
	}
	r.Envelope = env
	return r, nil
}

// Image is an image's description (without its PNG).
type Image struct {
	RobotID, ImageID, ResultID, SlideID, Role, Class string
	Index, Of, Width, Height                         int
	PixelUM, Score, StageXUM, StageYUM               float64
	OriginXUM, OriginYUM                             float64
	Bytes                                            int
}

// Images lists a result's images: the overview first, then the crops by
// gallery rank.
func (s *Store) Images(ctx context.Context, robot, resultID string) ([]Image, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT robot_id, image_id, result_id, slide_id, role, class, idx, of_n, width, height,
		pixel_um, score, stage_x_um, stage_y_um, origin_x_um, origin_y_um, LENGTH(png)
		FROM images WHERE robot_id = ? AND result_id = ? ORDER BY CASE role WHEN 'overview' THEN 0 ELSE 1 END, idx, image_id`), robot, resultID)
	if err != nil {
		return nil, fmt.Errorf("store: images: %w", err)
	}
	defer rows.Close()
	var out []Image
	for rows.Next() {
		var im Image
		if err := rows.Scan(&im.RobotID, &im.ImageID, &im.ResultID, &im.SlideID, &im.Role, &im.Class, &im.Index, &im.Of, &im.Width, &im.Height,
			&im.PixelUM, &im.Score, &im.StageXUM, &im.StageYUM, &im.OriginXUM, &im.OriginYUM, &im.Bytes); err != nil {
			return nil, err
		}
		out = append(out, im)
	}
	return out, rows.Err()
}

// ImagePNG returns one image's PNG.
func (s *Store) ImagePNG(ctx context.Context, robot, imageID string) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, s.q(`SELECT png FROM images WHERE robot_id = ? AND image_id = ?`), robot, imageID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: image %s/%s: %w", robot, imageID, ErrNotFound)
	}
	return b, err
}

// Counts are the number of rows per table kind (tests, status).
type Counts struct {
	Results, Events, Images, ImageRecords, Quarantined int
}

// Count returns the row counts.
func (s *Store) Count(ctx context.Context) (Counts, error) {
	var c Counts
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM records WHERE kind = 'result'),
		(SELECT COUNT(*) FROM records WHERE kind = 'event'),
		(SELECT COUNT(*) FROM images),
		(SELECT COUNT(*) FROM records WHERE kind = 'image'),
		(SELECT COUNT(*) FROM quarantine)`).Scan(&c.Results, &c.Events, &c.Images, &c.ImageRecords, &c.Quarantined)
	return c, err
}

// Quarantined is one refused message.
type Quarantined struct {
	Received                    time.Time
	Topic, RobotID, Kind, MsgID string
	Reason                      string
	Size                        int64
	Head                        []byte
}

// Quarantine lists refused messages, newest first.
func (s *Store) Quarantine(ctx context.Context, limit int) ([]Quarantined, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT received_us, topic, robot_id, kind, msg_id, reason, size, head FROM quarantine ORDER BY id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Quarantined
	for rows.Next() {
		var q Quarantined
		var at int64
		if err := rows.Scan(&at, &q.Topic, &q.RobotID, &q.Kind, &q.MsgID, &q.Reason, &q.Size, &q.Head); err != nil {
			return nil, err
		}
		q.Received = time.UnixMicro(at).UTC()
		out = append(out, q)
	}
	return out, rows.Err()
}

// List calls fn for every record (results, events, images) of robot (""
// every robot) per robot in the order they were received (then by key),
// without the envelope.
func (s *Store) List(ctx context.Context, robot string, fn func(fleet.Record) error) error {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT robot_id, kind, id, site, slide_id, result_id, event, outbox_session, outbox_seq, received_us
		FROM records WHERE ? = '' OR robot_id = ? ORDER BY robot_id, received_us, kind, id`), robot, robot)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r fleet.Record
		var seq, at int64
		if err := rows.Scan(&r.RobotID, &r.Kind, &r.ID, &r.Site, &r.SlideID, &r.ResultID, &r.Event, &r.OutboxSession, &seq, &at); err != nil {
			return err
		}
		r.Seq, r.ReceivedAt, r.Copies = uint64(seq), time.UnixMicro(at).UTC(), 1
		if err := fn(r); err != nil {
			if errors.Is(err, fleet.ErrStopList) {
				return nil
			}
			return err
		}
	}
	return rows.Err()
}
