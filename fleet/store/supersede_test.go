package store_test

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	"papscan/fleet/pgtest"
	"papscan/fleet/store"
	"papscan/telemetry/fleet"
)

// supersedingMsg is resultMsg with body.supersedes set.
func supersedingMsg(t *testing.T, robot, slide, id, verdict, supersedes string, seq uint64) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(resultMsg(robot, slide, id, verdict, 0.3, seq), &m); err != nil {
		t.Fatal(err)
	}
	m["body"].(map[string]any)["supersedes"] = supersedes
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func worklistIDs(t *testing.T, s *store.Store, f store.Filter) []string {
	t.Helper()
	wl, err := s.Worklist(t.Context(), f)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range wl {
		ids = append(ids, w.ResultID)
	}
	slices.Sort(ids)
	return ids
}

// TestSupersedes (issue 15, finding 5, fleet part): a robot's report of a
// slide a restart interrupted (INCOMPLETE) is superseded by the rescan's
// result, which names it in `supersedes`; the store kept both on the
// worklist, so robot and fleet disagreed about which result stands. The
// superseded result leaves the worklist (still readable, marked
// superseded_by), the superseding one shows; in either arrival order;
// duplicates change nothing; a supersedes naming another slide's or
// another robot's result hides nothing.
func TestSupersedes(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		commit := func(items ...fleet.Item) fleet.Committed {
			t.Helper()
			c, err := s.Commit(ctx, items)
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
		inc := item(t, "papscan/r1/result/S-1", resultMsg("r1", "S-1", "inc-1", "INCOMPLETE", 0.1, 1))
		rescan := item(t, "papscan/r1/result/S-1", supersedingMsg(t, "r1", "S-1", "res-1", "NILM", "inc-1", 2))
		commit(inc)
		commit(rescan)
		if got := worklistIDs(t, s, store.Filter{}); !slices.Equal(got, []string{"res-1"}) {
			t.Fatalf("worklist %v, want only the superseding res-1", got)
		}
		r, err := s.Result(ctx, "r1", "inc-1")
		if err != nil || r.SupersededBy != "res-1" {
			t.Fatalf("superseded result: %+v %v", r.Slide, err)
		}
		if r, err := s.Result(ctx, "r1", "res-1"); err != nil || r.Supersedes != "inc-1" || r.SupersededBy != "" {
			t.Fatalf("superseding result: %+v %v", r.Slide, err)
		}
		if got := worklistIDs(t, s, store.Filter{Superseded: true}); !slices.Equal(got, []string{"inc-1", "res-1"}) {
			t.Fatalf("worklist with superseded results %v", got)
		}
		// Idempotent: the same deliveries again change nothing.
		if c := commit(inc, rescan); c.Dups != 2 || len(c.Fresh) != 0 {
			t.Fatalf("duplicates: %+v", c)
		}
		if got := worklistIDs(t, s, store.Filter{}); !slices.Equal(got, []string{"res-1"}) {
			t.Fatalf("worklist after duplicates %v", got)
		}
		// The superseding result first (an outbox replay): the earlier one
		// arrives superseded.
		commit(item(t, "papscan/r1/result/S-2", supersedingMsg(t, "r1", "S-2", "res-2", "NILM", "inc-2", 4)))
		commit(item(t, "papscan/r1/result/S-2", resultMsg("r1", "S-2", "inc-2", "INCOMPLETE", 0.1, 3)))
		if got := worklistIDs(t, s, store.Filter{}); !slices.Equal(got, []string{"res-1", "res-2"}) {
			t.Fatalf("worklist after out-of-order delivery %v", got)
		}
		// supersedes naming another slide's result, another robot's, or
		// itself hides nothing.
		commit(item(t, "papscan/r1/result/S-3", resultMsg("r1", "S-3", "res-3", "NILM", 0.1, 5)),
			item(t, "papscan/r2/result/S-3", resultMsg("r2", "S-3", "res-9", "NILM", 0.1, 1)))
		commit(item(t, "papscan/r1/result/S-4", supersedingMsg(t, "r1", "S-4", "res-4", "NILM", "res-3", 6)),
			item(t, "papscan/r1/result/S-3", supersedingMsg(t, "r1", "S-3", "res-5", "NILM", "res-9", 7)),
			item(t, "papscan/r1/result/S-6", supersedingMsg(t, "r1", "S-6", "res-6", "NILM", "res-6", 8)))
		if got := worklistIDs(t, s, store.Filter{}); !slices.Equal(got, []string{"res-1", "res-2", "res-3", "res-4", "res-5", "res-6", "res-9"}) {
			t.Fatalf("worklist after foreign supersedes %v", got)
		}
	})
}

// TestSupersedesMigration: migration 3 fills supersedes from the results
// stored under schema 2 and takes the superseded ones off the worklist.
func TestSupersedesMigration(t *testing.T) {
	for _, e := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return filepath.Join(t.TempDir(), "fleet.sqlite") }},
		{"postgres", func(t *testing.T) string {
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
			return dsn
		}},
	} {
		t.Run(e.name, func(t *testing.T) {
			ctx := t.Context()
			dsn := e.dsn(t)
			s, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Commit(ctx, []fleet.Item{
				item(t, "papscan/r1/result/S-1", resultMsg("r1", "S-1", "inc-1", "INCOMPLETE", 0.1, 1)),
				item(t, "papscan/r1/result/S-1", supersedingMsg(t, "r1", "S-1", "res-1", "NILM", "inc-1", 2)),
			}); err != nil {
				t.Fatal(err)
			}
			// Back to schema 2, as a database written before migration 3.
			for _, stmt := range []string{`DROP INDEX records_supersedes`, `ALTER TABLE records DROP COLUMN supersedes`,
				`ALTER TABLE records DROP COLUMN superseded_by`, `DELETE FROM schema_migrations WHERE version = 3`} {
				if err := s.ExecForTest(ctx, stmt); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
			s.Close()
			s, err = store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if v, err := s.Version(ctx); err != nil || v != store.SchemaVersion() {
				t.Fatalf("version %d %v", v, err)
			}
			if got := worklistIDs(t, s, store.Filter{}); !slices.Equal(got, []string{"res-1"}) {
				t.Fatalf("worklist after the migration %v, want only res-1", got)
			}
		})
	}
}
