package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"papscan/fleet/pgtest"
	"papscan/fleet/store"
	"papscan/telemetry"
	"papscan/telemetry/fleet"
)

// The PostgreSQL server of this test binary (nil with pgErr when absent).
var (
	pg    *pgtest.Server
	pgErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		pgErr = errors.New("-short: the PostgreSQL engine runs in the full suite")
	} else {
		pg, pgErr = pgtest.Start(context.Background())
	}
	code := m.Run()
	if pg != nil {
		pg.Close()
	}
	os.Exit(code)
}

type engine struct {
	name string
	open func(t *testing.T) *store.Store
}

// engines are the two engines every test of the suite runs on.
func engines() []engine {
	return []engine{
		{"sqlite", func(t *testing.T) *store.Store {
			s, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "fleet.sqlite"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(t *testing.T) *store.Store {
			if pg == nil {
				if testing.Short() {
					t.Skip(pgErr)
				}
				pgtest.Skip(t, pgErr)
			}
			dsn, err := pg.NewDatabase(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			s, err := store.Open(t.Context(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}},
	}
}

// each runs fn as a subtest on both engines.
func each(t *testing.T, fn func(t *testing.T, s *store.Store)) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) { fn(t, e.open(t)) })
	}
}

func resultMsg(robot, slide, id, verdict string, score float64, seq uint64) []byte {
	b, _ := json.Marshal(map[string]any{
		"schema": telemetry.Schema, "kind": "result", "robot_id": robot, "slide_id": slide, "result_id": id,
		"outbox_session": "sess-" + robot, "outbox_seq": seq, "outbox_floor": 1,
		"body": map[string]any{"verdict": verdict, "finished_at": "2026-12-01T10:00:00Z",
			"result": map[string]any{"verdict": verdict, "top": []map[string]any{{"score": score}, {"score": score / 2}}}},
	})
	return b
}

func item(t *testing.T, topic string, payload []byte) fleet.Item {
	t.Helper()
	it, ok := fleet.Parse(topic, payload, "site-a", time.Now())
	if !ok {
		t.Fatalf("parse %s: no ack key", payload)
	}
	return it
}

func crop(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 3), uint8(y * 3), 200, 255})
		}
	}
	return img
}

func imageMsg(t *testing.T, robot, slide, result string, idx int) []byte {
	t.Helper()
	m, err := telemetry.NewImage(robot, slide, result, telemetry.ImageCrop, idx, 3, crop(64, 48), 0.5)
	if err != nil {
		t.Fatal(err)
	}
	m.Body.Score, m.Body.Class, m.Body.StageXUM, m.Body.StageYUM = 0.9, "HSIL", 100, 200
	b, err := telemetry.EncodeImage(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMigrations(t *testing.T) {
	for _, e := range engines() {
		t.Run(e.name, func(t *testing.T) {
			s := e.open(t)
			v, err := s.Version(t.Context())
			if err != nil || v != store.SchemaVersion() {
				t.Fatalf("version %d %v, want %d", v, err, store.SchemaVersion())
			}
		})
	}
	// Reopening applies nothing twice.
	path := filepath.Join(t.TempDir(), "f.sqlite")
	for range 2 {
		s, err := store.Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

func TestIdempotentCommit(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		res := item(t, "papscan/r1/result/S-1", resultMsg("r1", "S-1", "res-1", "HIGH_GRADE", 0.97, 1))
		img := item(t, "papscan/r1/image/S-1", imageMsg(t, "r1", "S-1", "res-1", 0))
		c, err := s.Commit(ctx, []fleet.Item{res, img})
		if err != nil || len(c.Fresh) != 2 || c.Dups != 0 {
			t.Fatalf("first commit: %+v %v", c, err)
		}
		// A duplicate delivery, even with other bytes (new message_id), changes nothing.
		dup := res
		dup.Raw = resultMsg("r1", "S-1", "res-1", "NILM", 0.1, 1)
		for range 2 {
			c, err = s.Commit(ctx, []fleet.Item{dup, img})
			if err != nil || len(c.Fresh) != 0 || c.Dups != 2 {
				t.Fatalf("duplicate commit: %+v %v", c, err)
			}
		}
		n, err := s.Count(ctx)
		if err != nil || n.Results != 1 || n.Images != 1 || n.ImageRecords != 1 || n.Quarantined != 0 {
			t.Fatalf("counts %+v %v", n, err)
		}
		r, err := s.Result(ctx, "r1", "res-1")
		if err != nil || r.Verdict != "HIGH_GRADE" || r.TopScore != 0.97 || r.ReviewState != store.StatePending || r.Site != "site-a" {
			t.Fatalf("result %+v %v", r.Slide, err)
		}
		ims, err := s.Images(ctx, "r1", "res-1")
		if err != nil || len(ims) != 1 || ims[0].Class != "HSIL" || ims[0].Width != 64 || ims[0].StageYUM != 200 {
			t.Fatalf("images %+v %v", ims, err)
		}
		png, err := s.ImagePNG(ctx, "r1", ims[0].ImageID)
		if err != nil || !strings.HasPrefix(string(png), "\x89PNG") || len(png) != ims[0].Bytes {
			t.Fatalf("png %d bytes %v", len(png), err)
		}
		if _, err := s.ImagePNG(ctx, "r1", "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing image: %v", err)
		}
	})
}

// TestBadInput: images that are not PNG, malformed messages and SQL
// metacharacters, NUL and invalid UTF-8 in every text field are stored
// safely (quarantine or verbatim), never lost, never executed.
func TestBadInput(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		nasty := `x'); DROP TABLE records; --"` + "\\"
		var m telemetry.ImageMessage
		if err := json.Unmarshal(imageMsg(t, "r1", "S-1", "res-1", 0), &m); err != nil {
			t.Fatal(err)
		}
		m.Body.PNG = []byte("GIF89a not a png")
		notPNG, _ := json.Marshal(m)
		bad := item(t, "papscan/r1/image/S-1", notPNG)
		if bad.Reject == "" || bad.Image != nil {
			t.Fatalf("not-PNG image accepted: %+v", bad)
		}
		garbage, ok := fleet.Parse("papscan/r1/result/S-1", []byte("{not json"+nasty), "", time.Now())
		if !ok || garbage.Kind != fleet.KindInvalid {
			t.Fatalf("garbage: %+v %v", garbage, ok)
		}
		weird := map[string]any{
			"schema": telemetry.Schema, "kind": "result", "robot_id": "r-'\";--", "slide_id": nasty + "\x00\xff",
			"result_id": nasty, "outbox_session": nasty, "outbox_seq": 1,
			"body": map[string]any{"verdict": nasty},
		}
		wb, _ := json.Marshal(weird)
		wb = []byte(strings.Replace(string(wb), `\ufffd`, "\xff", 1)) // invalid UTF-8 on the wire
		wit := item(t, "papscan/x/result/y", wb)
		ev, _ := json.Marshal(map[string]any{"schema": telemetry.Schema, "kind": "event", "robot_id": "r1", "event_id": nasty, "event": nasty})
		for range 2 { // twice: still one row each
			if _, err := s.Commit(ctx, []fleet.Item{bad, garbage, wit, item(t, "papscan/r1/event", ev)}); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.Count(ctx)
		if err != nil || n.Results != 1 || n.Events != 1 || n.Images != 0 || n.ImageRecords != 1 || n.Quarantined != 2 {
			t.Fatalf("counts %+v %v", n, err)
		}
		r, err := s.Result(ctx, "r-'\";--", nasty)
		if err != nil || r.Verdict != clip(nasty, 32) || !strings.HasPrefix(r.SlideID, nasty) {
			t.Fatalf("nasty result %+v %v", r.Slide, err)
		}
		q, err := s.Quarantine(ctx, 10)
		if err != nil || len(q) != 2 {
			t.Fatalf("quarantine %v %v", q, err)
		}
		for _, e := range q {
			if e.Reason == "" || e.Size == 0 {
				t.Errorf("quarantine entry without reason or size: %+v", e)
			}
		}
		// The comment and the user name carry metacharacters too.
		if err := s.CreateUser(ctx, "admin", store.User{Username: nasty, Role: store.RoleReviewer, PasswordHash: "h"}); err != nil {
			t.Fatal(err)
		}
		rv, err := s.SignOut(ctx, store.Review{RobotID: "r-'\";--", ResultID: nasty, Reviewer: nasty, Role: "reviewer", Interpretation: "NILM", Comment: nasty + "\x00"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Reviews(ctx, "r-'\";--", nasty)
		if err != nil || len(got) != 1 || got[0].Reviewer != nasty || !strings.HasPrefix(got[0].Comment, nasty) || got[0].ID != rv.ID {
			t.Fatalf("reviews %+v %v", got, err)
		}
	})
}

func clip(s string, n int) string { return s[:min(len(s), n)] }

func TestGaps(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		commit := func(seq, floor uint64) fleet.Committed {
			t.Helper()
			b, _ := json.Marshal(map[string]any{"schema": telemetry.Schema, "kind": "event", "robot_id": "r1", "event_id": fmt.Sprint("e", seq),
				"outbox_session": "s1", "outbox_seq": seq, "outbox_floor": floor})
			c, err := s.Commit(ctx, []fleet.Item{item(t, "papscan/r1/event", b)})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		for _, seq := range []uint64{1, 2, 5} {
			commit(seq, 1)
		}
		c := commit(4, 1)
		if len(c.Gaps) != 1 || c.Gaps[0].From != 3 || c.Gaps[0].To != 3 {
			t.Fatalf("gaps %+v, want 3..3", c.Gaps)
		}
		if g, ok, err := s.StreamGap(ctx, "r1", "s1"); err != nil || !ok || g.From != 3 {
			t.Fatalf("stream gap %+v %v %v", g, ok, err)
		}
		if c := commit(6, 4); len(c.Gaps) != 0 { // floor 4: 3 was acked elsewhere
			t.Fatalf("gaps %+v after floor 4", c.Gaps)
		}
	})
}

func TestWorklistAndReview(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		var batch []fleet.Item
		for i, r := range []struct {
			verdict string
			score   float64
		}{{"NILM", 0.2}, {"HIGH_GRADE", 0.8}, {"LOW_GRADE", 0.7}, {"HIGH_GRADE", 0.95}, {"INCOMPLETE", 0.99}, {"NILM", 0.4}} {
			robot := "r1"
			if i%2 == 1 {
				robot = "r2"
			}
			batch = append(batch, item(t, "papscan/"+robot+"/result/S", resultMsg(robot, fmt.Sprint("S-", i), fmt.Sprint("res-", i), r.verdict, r.score, uint64(i+1))))
		}
		if _, err := s.Commit(ctx, batch); err != nil {
			t.Fatal(err)
		}
		wl, err := s.Worklist(ctx, store.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		var order []string
		for _, w := range wl {
			order = append(order, w.ResultID)
		}
		if want := "res-3 res-1 res-2 res-4 res-5 res-0"; strings.Join(order, " ") != want {
			t.Fatalf("worklist order %v, want %s", order, want)
		}
		if wl, _ := s.Worklist(ctx, store.Filter{Robot: "r2", Verdict: "HIGH_GRADE"}); len(wl) != 2 {
			t.Fatalf("filter robot+verdict: %d rows", len(wl))
		}
		if wl, _ := s.Worklist(ctx, store.Filter{From: time.Now().Add(time.Hour)}); len(wl) != 0 {
			t.Fatalf("filter date: %d rows", len(wl))
		}
		f, _ := s.Facets(ctx)
		if len(f.Robots) != 2 || len(f.Sites) != 1 {
			t.Fatalf("facets %+v", f)
		}
		// Agreeing sign-out closes the case.
		r, err := s.SignOut(ctx, store.Review{RobotID: "r2", ResultID: "res-3", Reviewer: "ann", Role: "reviewer", Interpretation: "HSIL", Comment: "koilocytes absent"})
		if err != nil || r.Kind != "primary" || r.Disagrees {
			t.Fatalf("sign-out %+v %v", r, err)
		}
		if _, err := s.SignOut(ctx, store.Review{RobotID: "r2", ResultID: "res-3", Reviewer: "bob", Interpretation: "NILM"}); !errors.Is(err, store.ErrReviewed) {
			t.Fatalf("second sign-out of a closed case: %v", err)
		}
		// Disagreeing sign-out waits for a second review by someone else.
		if r, err := s.SignOut(ctx, store.Review{RobotID: "r2", ResultID: "res-1", Reviewer: "ann", Interpretation: "NILM"}); err != nil || !r.Disagrees {
			t.Fatalf("disagreeing sign-out %+v %v", r, err)
		}
		if wl, _ := s.Worklist(ctx, store.Filter{State: store.StateSecond}); len(wl) != 1 || wl[0].ResultID != "res-1" {
			t.Fatalf("second-review worklist %+v", wl)
		}
		if _, err := s.SignOut(ctx, store.Review{RobotID: "r2", ResultID: "res-1", Reviewer: "ann", Interpretation: "NILM"}); !errors.Is(err, store.ErrSameReviewer) {
			t.Fatalf("same reviewer twice: %v", err)
		}
		if r, err := s.SignOut(ctx, store.Review{RobotID: "r2", ResultID: "res-1", Reviewer: "sue", Role: "supervisor", Interpretation: "ASC-H"}); err != nil || r.Kind != "second" {
			t.Fatalf("second review %+v %v", r, err)
		}
		if _, err := s.SignOut(ctx, store.Review{RobotID: "r1", ResultID: "res-0", Reviewer: "ann", Interpretation: "HPV"}); err == nil {
			t.Fatal("unknown interpretation accepted")
		}
		revs, _ := s.Reviews(ctx, "r2", "res-1")
		if len(revs) != 2 || revs[0].Reviewer != "ann" || revs[1].Reviewer != "sue" {
			t.Fatalf("reviews %+v", revs)
		}
		log, err := s.AuditLog(ctx, "r2", "res-1", 10)
		if err != nil || len(log) != 2 || log[0].Actor != "sue" || log[0].Action != "sign_out" {
			t.Fatalf("audit %+v %v", log, err)
		}
	})
}

// TestAppendOnly: the database itself refuses to change or remove audit
// entries and reviews, whoever asks.
func TestAppendOnly(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.Audit(ctx, "ann", "login", "", "", "ok"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Commit(ctx, []fleet.Item{item(t, "papscan/r1/result/S", resultMsg("r1", "S", "res", "NILM", 0.1, 1))}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SignOut(ctx, store.Review{RobotID: "r1", ResultID: "res", Reviewer: "ann", Interpretation: "NILM"}); err != nil {
			t.Fatal(err)
		}
		for _, stmt := range []string{
			`UPDATE audit SET actor = 'mallory'`, `DELETE FROM audit`,
			`UPDATE reviews SET interpretation = 'HSIL'`, `DELETE FROM reviews`,
		} {
			if _, err := s.DB().ExecContext(ctx, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v, want an append-only refusal", stmt, err)
			}
		}
		if s.Engine() == store.Postgres {
			if _, err := s.DB().ExecContext(ctx, `TRUNCATE audit`); err == nil {
				t.Error("TRUNCATE audit allowed")
			}
		}
		log, _ := s.AuditLog(ctx, "", "", 10)
		if len(log) != 2 || log[1].Actor != "ann" {
			t.Fatalf("audit after attempts: %+v", log)
		}
	})
}

func TestUsersAndSessions(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.CreateUser(ctx, "setup", store.User{Username: "ann", Role: "reviewer", PasswordHash: "$argon2id$x"}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateUser(ctx, "setup", store.User{Username: "ann", Role: "admin", PasswordHash: "y"}); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate user: %v", err)
		}
		if err := s.CreateUser(ctx, "setup", store.User{Username: "bob", Role: "root", PasswordHash: "y"}); err == nil {
			t.Fatal("role root accepted")
		}
		now := time.Now()
		if err := s.CreateSession(ctx, store.Session{TokenHash: "th", Username: "ann", CSRF: "c", Created: now, Expires: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		se, u, err := s.Session(ctx, "th", now)
		if err != nil || se.CSRF != "c" || u.Role != "reviewer" {
			t.Fatalf("session %+v %+v %v", se, u, err)
		}
		if _, _, err := s.Session(ctx, "th", now.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired session: %v", err)
		}
		if err := s.DeleteSession(ctx, "th"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Session(ctx, "th", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted session: %v", err)
		}
	})
}

// TestConcurrentReceivers: four writers commit overlapping batches of the
// same results at once: each result is stored exactly once.
func TestConcurrentReceivers(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		var items []fleet.Item
		for i := range 200 {
			robot := fmt.Sprint("r", i%7)
			items = append(items, item(t, "papscan/"+robot+"/result/S", resultMsg(robot, "S", fmt.Sprint("res-", i), "NILM", 0.1, uint64(i/7+1))))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		fresh, dups := 0, 0
		for w := range 4 {
			wg.Go(func() {
				for i := 0; i < len(items); i += 25 {
					// Each writer sees the items in another order.
					lo := (i + w*50) % len(items)
					batch := items[lo:min(lo+25, len(items))]
					c, err := s.Commit(ctx, batch)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					fresh += len(c.Fresh)
					dups += c.Dups
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		n, _ := s.Count(ctx)
		if n.Results != 200 || fresh != 200 || fresh+dups != 800 {
			t.Fatalf("results %d, fresh %d, dups %d; want 200, 200, 600", n.Results, fresh, dups)
		}
	})
}
