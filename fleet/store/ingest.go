package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/fleet"
)

var _ fleet.Backend = (*Store)(nil)

// Verdict priorities on the worklist.
func priority(verdict string) int {
	switch verdict {
	case "HIGH_GRADE":
		return 0
	case "LOW_GRADE":
		return 1
	}
	return 2
}

// resultSummary is what the worklist needs from a result's body; a body
// that does not parse leaves it empty (the result is stored anyway).
type resultSummary struct {
	verdict    string
	topScore   float64
	finished   int64
	supersedes string
}

func summarise(raw []byte) resultSummary {
	var e struct {
		Body struct {
			Verdict    string    `json:"verdict"`
			FinishedAt time.Time `json:"finished_at"`
			Supersedes string    `json:"supersedes"`
			Result     struct {
				Top []struct {
					Score float64 `json:"score"`
				} `json:"top"`
			} `json:"result"`
		} `json:"body"`
	}
	var s resultSummary
	if json.Unmarshal(raw, &e) != nil {
		return s
	}
	s.verdict = clean(e.Body.Verdict, 32)
	s.supersedes = clean(e.Body.Supersedes, 128)
	for _, c := range e.Body.Result.Top {
		if c.Score > s.topScore && c.Score <= 1 {
			s.topScore = c.Score
		}
	}
	if !e.Body.FinishedAt.IsZero() {
		s.finished = e.Body.FinishedAt.UnixMicro()
	}
	return s
}

// Commit stores a batch in one transaction: each item once (a duplicate
// changes nothing), images with their PNG, refused messages in quarantine,
// and the outbox streams' sequence tracking. Rows are written in key
// order, so concurrent receivers cannot deadlock each other.
func (s *Store) Commit(ctx context.Context, batch []fleet.Item) (fleet.Committed, error) {
	items := slices.Clone(batch)
	slices.SortFunc(items, func(a, b fleet.Item) int {
		return cmp.Or(cmp.Compare(a.RobotID, b.RobotID), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	var res fleet.Committed
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		res, err = s.commitOnce(ctx, items)
		if err == nil || ctx.Err() != nil {
			break
		}
	}
	return res, err
}

func (s *Store) commitOnce(ctx context.Context, items []fleet.Item) (fleet.Committed, error) {
	var res fleet.Committed
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return res, fmt.Errorf("store: commit: %w", err)
	}
	defer tx.Rollback()
	insRecord, err := tx.PrepareContext(ctx, s.q(`INSERT INTO records
		(robot_id, kind, id, site, slide_id, result_id, event, outbox_session, outbox_seq, received_us,
		 verdict, priority, top_score, finished_us, review_state, envelope, supersedes)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`))
	if err != nil {
		return res, fmt.Errorf("store: commit: %w", err)
	}
	defer insRecord.Close()
	type streamKey struct{ robot, session string }
	streams := map[streamKey][][2]uint64{} // (seq, floor) of the batch
	var order []streamKey
	for _, it := range items {
		if it.Kind == fleet.KindInvalid || it.ID == "" {
			if err := s.quarantine(ctx, tx, it); err != nil {
				return res, err
			}
			continue
		}
		robot, kind, id := clean(it.RobotID, 128), clean(it.Kind, 32), clean(it.ID, 128)
		var sum resultSummary
		state := ""
		raw := []byte(it.Raw)
		if it.Kind == telemetry.KindResult {
			sum = summarise(it.Raw)
			state = StatePending
		}
		if it.Kind == telemetry.KindImage && it.Image != nil {
			// The PNG is kept once, in images; the record keeps the header.
			m := *it.Image
			m.Body.PNG = nil
			raw, _ = json.Marshal(m)
		}
		r, err := insRecord.ExecContext(ctx, robot, kind, id, clean(it.Site, 128), clean(it.SlideID, 128), clean(it.ResultID, 128),
			clean(it.Event, 128), clean(it.OutboxSession, 128), int64(it.Seq), it.ReceivedAt.UnixMicro(),
			sum.verdict, priority(sum.verdict), sum.topScore, sum.finished, state, raw, sum.supersedes)
		if err != nil {
			return res, fmt.Errorf("store: commit %s %s %s: %w", it.RobotID, it.Kind, it.ID, err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return res, err
		}
		if n == 0 {
			res.Dups++
		} else {
			rec := it.Record()
			res.Fresh = append(res.Fresh, rec)
			if it.Kind == telemetry.KindResult {
				if err := s.linkSupersedes(ctx, tx, robot, id, clean(it.SlideID, 128), sum.supersedes); err != nil {
					return res, err
				}
			}
			if it.Kind == telemetry.KindImage {
				if it.Image != nil {
					if err := s.insertImage(ctx, tx, it); err != nil {
						return res, err
					}
				} else if err := s.quarantine(ctx, tx, it); err != nil {
					return res, err
				}
			}
		}
		if it.OutboxSession == "" || it.Seq == 0 {
			continue
		}
		k := streamKey{robot, clean(it.OutboxSession, 128)}
		if _, ok := streams[k]; !ok {
			order = append(order, k)
		}
		streams[k] = append(streams[k], [2]uint64{it.Seq, it.Floor})
	}
	slices.SortFunc(order, func(a, b streamKey) int {
		return cmp.Or(cmp.Compare(a.robot, b.robot), cmp.Compare(a.session, b.session))
	})
	lock := ""
	if s.engine == Postgres {
		lock = " FOR UPDATE"
	}
	for _, k := range order {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO streams (robot_id, outbox_session, state) VALUES (?, ?, '{}') ON CONFLICT DO NOTHING`), k.robot, k.session); err != nil {
			return res, fmt.Errorf("store: stream %s: %w", k.robot, err)
		}
		var state string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT state FROM streams WHERE robot_id = ? AND outbox_session = ?`+lock), k.robot, k.session).Scan(&state); err != nil {
			return res, fmt.Errorf("store: stream %s: %w", k.robot, err)
		}
		var st fleet.Stream
		_ = json.Unmarshal([]byte(state), &st)
		for _, sf := range streams[k] {
			st.Add(sf[0], sf[1])
		}
		b, _ := json.Marshal(st)
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE streams SET state = ? WHERE robot_id = ? AND outbox_session = ?`), string(b), k.robot, k.session); err != nil {
			return res, fmt.Errorf("store: stream %s: %w", k.robot, err)
		}
		if from, to, ok := st.Gap(); ok {
			res.Gaps = append(res.Gaps, fleet.Gap{RobotID: k.robot, OutboxSession: k.session, From: from, To: to})
		}
	}
	if err := tx.Commit(); err != nil {
		return fleet.Committed{}, fmt.Errorf("store: commit: %w", err)
	}
	return res, nil
}

// linkSupersedes records, for a result just stored, which result it
// supersedes and which one supersedes it (the superseding one may arrive
// first: an outbox replay). Only a result of the same robot and slide is
// superseded, never the result itself; the first superseding result
// stands (superseded_by is set once). A superseded result leaves the
// worklist; it stays readable.
func (s *Store) linkSupersedes(ctx context.Context, tx *sql.Tx, robot, id, slide, supersedes string) error {
	if supersedes != "" && supersedes != id {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE records SET superseded_by = ?
			WHERE robot_id = ? AND kind = 'result' AND id = ? AND slide_id = ? AND superseded_by = ''`), id, robot, supersedes, slide); err != nil {
			return fmt.Errorf("store: result %s supersedes %s: %w", id, supersedes, err)
		}
	}
	var by string
	err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM records
		WHERE robot_id = ? AND kind = 'result' AND supersedes = ? AND slide_id = ? AND id <> ?
		ORDER BY received_us, id LIMIT 1`), robot, id, slide, id).Scan(&by)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: result %s: superseded by: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE records SET superseded_by = ? WHERE robot_id = ? AND kind = 'result' AND id = ? AND superseded_by = ''`), by, robot, id); err != nil {
		return fmt.Errorf("store: result %s superseded by %s: %w", id, by, err)
	}
	return nil
}

// backfillSupersedes (migration 3) fills supersedes from the stored
// envelopes and links the results already stored.
func backfillSupersedes(ctx context.Context, s *Store, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT robot_id, id, slide_id, envelope FROM records WHERE kind = 'result'`)
	if err != nil {
		return err
	}
	type link struct{ robot, id, slide, supersedes string }
	var links []link
	for rows.Next() {
		var l link
		var env []byte
		if err := rows.Scan(&l.robot, &l.id, &l.slide, &env); err != nil {
			rows.Close()
			return err
		}
		if l.supersedes = summarise(env).supersedes; l.supersedes != "" {
			links = append(links, l)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, l := range links {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE records SET supersedes = ? WHERE robot_id = ? AND kind = 'result' AND id = ?`), l.supersedes, l.robot, l.id); err != nil {
			return err
		}
	}
	for _, l := range links {
		if err := s.linkSupersedes(ctx, tx, l.robot, l.id, l.slide, l.supersedes); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) insertImage(ctx context.Context, tx *sql.Tx, it fleet.Item) error {
	m := it.Image
	b := &m.Body
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO images
		(robot_id, image_id, result_id, slide_id, role, idx, of_n, width, height, pixel_um, score, class,
		 stage_x_um, stage_y_um, origin_x_um, origin_y_um, png, received_us)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		clean(m.RobotID, 128), clean(m.ImageID, 128), clean(m.ResultID, 128), clean(m.SlideID, 128), b.Role,
		b.Index, b.Of, b.Width, b.Height, b.PixelUM, b.Score, clean(b.Class, 128),
		b.StageXUM, b.StageYUM, b.OriginXUM, b.OriginYUM, b.PNG, it.ReceivedAt.UnixMicro())
	if err != nil {
		return fmt.Errorf("store: image %s: %w", m.ImageID, err)
	}
	return nil
}

func (s *Store) quarantine(ctx context.Context, tx *sql.Tx, it fleet.Item) error {
	sum := sha256.Sum256(it.Raw)
	head := it.Raw[:min(len(it.Raw), fleet.MaxInvalidBytes)]
	key := hex.EncodeToString(sum[:])
	if it.ID != "" { // one row per refused delivery identity
		k := sha256.Sum256([]byte(it.RobotID + "\x00" + it.Kind + "\x00" + it.ID))
		key = "id:" + hex.EncodeToString(k[:])
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO quarantine (received_us, topic, robot_id, kind, msg_id, reason, size, sha256, head)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`),
		it.ReceivedAt.UnixMicro(), clean(it.Topic, 1024), clean(it.RobotID, 128), clean(it.Kind, 32), clean(it.ID, 128),
		clean(it.Reject, 1024), int64(len(it.Raw)), key, []byte(head))
	if err != nil {
		return fmt.Errorf("store: quarantine: %w", err)
	}
	return nil
}

// StreamGap returns the first missing run of one robot's outbox stream.
func (s *Store) StreamGap(ctx context.Context, robot, session string) (fleet.Gap, bool, error) {
	var state string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT state FROM streams WHERE robot_id = ? AND outbox_session = ?`), robot, session).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return fleet.Gap{}, false, nil
	}
	if err != nil {
		return fleet.Gap{}, false, err
	}
	var st fleet.Stream
	if err := json.Unmarshal([]byte(state), &st); err != nil {
		return fleet.Gap{}, false, fmt.Errorf("store: stream %s %s: %w", robot, session, err)
	}
	from, to, ok := st.Gap()
	return fleet.Gap{RobotID: robot, OutboxSession: session, From: from, To: to}, ok, nil
}
