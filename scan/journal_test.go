package scan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestJournalRoundTripAndCorruption(t *testing.T) {
	dir := t.TempDir()
	log := discardLogger()
	j, err := openJournal(dir, "M1", log)
	if err != nil {
		t.Fatal(err)
	}
	r := newReport("t", "C1", 0, time.Unix(0, 0))
	j.start(r)
	r.TilesPlanned = 10
	j.planned(r)
	j.progress(r, 4, 3, 50)
	done := newReport("t", "C2", 1, time.Unix(0, 0))
	done.TilesPlanned, done.TilesCaptured, done.TilesAnalysed = 5, 5, 5
	j.start(done)
	j.finish(done)

	j2, err := openJournal(dir, "M1", log)
	if err != nil {
		t.Fatal(err)
	}
	in := j2.interrupted()
	if len(in) != 1 || in[0].SlideID != "C1" || in[0].TilesPlanned != 10 || in[0].TilesCaptured != 4 {
		t.Fatalf("interrupted = %+v", in)
	}
	if j2.status(1) != slotDone || j2.status(0) != slotScanning || j2.status(7) != "" {
		t.Errorf("statuses %q %q %q", j2.status(1), j2.status(0), j2.status(7))
	}
	ir := interruptedReport("t", "M1", in[0], time.Unix(9, 0))
	if ir.Complete() || ir.Verdict != "INCOMPLETE" || !ir.Rerun || ir.ResultID == r.ResultID || ir.Supersedes != r.ResultID {
		t.Errorf("interrupted report %+v", ir)
	}

	// A torn file is put aside and nothing counts as done.
	path := filepath.Join(dir, "progress", "M1.json")
	if err := os.WriteFile(path, []byte(`{"magazine":"M1","slots":{"1":{"sta`), 0o600); err != nil {
		t.Fatal(err)
	}
	j3, err := openJournal(dir, "M1", log)
	if err != nil {
		t.Fatal(err)
	}
	if j3.status(1) != "" || len(j3.interrupted()) != 0 {
		t.Error("a torn journal was trusted")
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "progress"))
	kept := false
	for _, e := range ents {
		kept = kept || strings.HasPrefix(e.Name(), "M1.json.corrupt-")
	}
	if !kept {
		t.Error("the torn journal was not kept aside")
	}
	if _, err := openJournal(dir, "../x", log); err == nil {
		t.Error("a magazine ID with a path was accepted")
	}
}

// TestRetireJournal: a new magazine reusing a name starts with no slot
// done; the old journal is kept under a new name, never overwritten.
func TestRetireJournal(t *testing.T) {
	dir := t.TempDir()
	if p, err := RetireJournal(dir, "M1", time.Unix(100, 0)); err != nil || p != "" {
		t.Fatalf("no journal: %q %v", p, err)
	}
	for round := 0; round < 2; round++ {
		j, err := openJournal(dir, "M1", discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		r := newReport("t", "C1", 0, time.Unix(0, 0))
		j.start(r)
		j.finish(r)
		p, err := RetireJournal(dir, "M1", time.Unix(100, 0))
		if err != nil {
			t.Fatal(err)
		}
		want := JournalPath(dir, "M1") + ".retired-100"
		if round == 1 {
			want += "-1"
		}
		if p != want {
			t.Errorf("round %d: retired to %q, want %q", round, p, want)
		}
		if es, err := JournalEntries(dir, "M1"); err != nil || len(es) != 0 {
			t.Errorf("round %d: journal after retiring: %+v %v", round, es, err)
		}
		j2, err := openJournal(dir, "M1", discardLogger())
		if err != nil {
			t.Fatal(err)
		}
		if s := j2.status(0); s != "" {
			t.Errorf("round %d: slot 0 of the new magazine is %q, want unknown (to scan)", round, s)
		}
	}
	if _, err := RetireJournal(dir, "../x", time.Unix(0, 0)); err == nil {
		t.Error("a magazine ID with a path separator was accepted")
	}
}
