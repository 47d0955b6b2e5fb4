package scan

import (
	"context"
	"testing"
	"time"

	"papscan/hal/sim"
)

// TestRecoverInterruptedKeepsCommittedResult (issue 15, finding 5
// follow-up): SIGKILL between the delivery of a slide's complete result
// (result.json written, outbox commit) and the journal's "done" write
// left the slot "scanning" in the journal. On restart RecoverInterrupted
// reported the slide INCOMPLETE under a new ID superseding the complete
// NILM result, and marked it for rerun: a finished slide passed for an
// interrupted one. The stored result.json under the journalled ID shows
// the slide was reported: it is handed on again as it was (same ID, same
// verdict; the outbox keeps one entry per ID), no INCOMPLETE report
// supersedes it and the journal records it done.
func TestRecoverInterruptedKeepsCommittedResult(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir, "M1", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	done := newReport("robot", "C3", 3, time.Unix(0, 0))
	done.Magazine = "M1"
	j.start(done)
	done.TilesPlanned, done.TilesCaptured, done.TilesAnalysed = 9, 9, 9
	done.Verdict, done.Result.Verdict, done.Result.Cells = "NILM", "NILM", 1234
	if _, err := done.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	// ...SIGKILL here: the journal still says "scanning".
	// A second slot really was interrupted (no result.json).
	cut := newReport("robot", "C4", 4, time.Unix(5, 0))
	j.start(cut)

	s := &Scanner{o: Options{StateDir: dir, RobotID: "robot"}, log: discardLogger(), m: Machine{Clock: sim.NewClock()}}
	var got []*Report
	rs, err := s.RecoverInterrupted(context.Background(), "M1", func(r *Report) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.SlideID == "C3" && (r.Verdict == "INCOMPLETE" || r.Supersedes == done.ResultID) {
			t.Fatalf("complete result %s superseded by %s %s", done.ResultID, r.ResultID, r.Verdict)
		}
	}
	if len(rs) != 1 || rs[0].SlideID != "C4" || rs[0].Verdict != "INCOMPLETE" || rs[0].Supersedes != cut.ResultID {
		t.Fatalf("interrupted reports %+v, want one INCOMPLETE for C4", rs)
	}
	var again *Report
	for _, r := range got {
		if r.SlideID == "C3" {
			again = r
		}
	}
	if again == nil || again.ResultID != done.ResultID || again.Verdict != "NILM" || again.Result.Cells != 1234 || !again.Complete() {
		t.Fatalf("stored result not handed on again as it was: %+v", again)
	}
	es, err := JournalEntries(dir, "M1")
	if err != nil || len(es) != 2 || es[0].Status != JournalDone || es[0].ResultID != done.ResultID || es[1].Status != JournalRerun {
		t.Fatalf("journal after recovery: %v %+v", err, es)
	}
	// A second recovery reports nothing.
	if rs, err := s.RecoverInterrupted(context.Background(), "M1", func(r *Report) error { t.Errorf("reported again: %s", r.SlideID); return nil }); err != nil || len(rs) != 0 {
		t.Fatalf("second recovery: %v %d", err, len(rs))
	}
}
