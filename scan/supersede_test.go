package scan

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterruptedReportSupersedes (finding 5, scan part): the report of a
// slide a restart interrupted reused the result ID journalled at its
// start; when the slide had in fact been reported (SIGKILL between the
// outbox commit and the journal's "done"), the INCOMPLETE report
// overwrote the NILM result.json under the same ID and the fleet kept
// NILM as a duplicate. One result ID, one content: the INCOMPLETE report
// gets a new ID that supersedes the journalled one.
func TestInterruptedReportSupersedes(t *testing.T) {
	e := JournalEntry{Slot: 3, SlideID: "C3", ResultID: "00112233445566778899aabbccddeeff", Status: slotScanning, TilesPlanned: 9, TilesCaptured: 4}
	r := interruptedReport("robot", "M1", e, time.Unix(9, 0))
	if r.ResultID == e.ResultID || !validResultID.MatchString(r.ResultID) {
		t.Fatalf("interrupted report result ID %q (journalled %q): want a new one", r.ResultID, e.ResultID)
	}
	if r.Supersedes != e.ResultID {
		t.Fatalf("supersedes %q, want %q", r.Supersedes, e.ResultID)
	}
}

// TestRescanSupersedesIncomplete (finding 5, scan part): the rescan of a
// slot held for rerun supersedes the result it replaces (the INCOMPLETE
// report), so the fleet knows which of the slide's results stands.
func TestRescanSupersedesIncomplete(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir, "M1", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	first := newReport("robot", "C3", 3, time.Unix(0, 0))
	j.start(first)
	incomplete := interruptedReport("robot", "M1", j.interrupted()[0], time.Unix(9, 0))
	j.finish(incomplete)
	if j.status(3) != slotRerun {
		t.Fatalf("status %q", j.status(3))
	}
	again := newReport("robot", "C3", 3, time.Unix(20, 0))
	j.start(again)
	if again.Supersedes != incomplete.ResultID {
		t.Fatalf("rescan supersedes %q, want the INCOMPLETE report %q", again.Supersedes, incomplete.ResultID)
	}
	// Another slide in the slot (a new magazine under the same name)
	// supersedes nothing.
	other := newReport("robot", "X9", 3, time.Unix(30, 0))
	j.finish(again)
	j.markRerun("test")
	j.start(other)
	if other.Supersedes != "" {
		t.Fatalf("another slide supersedes %q", other.Supersedes)
	}
}

func TestValidateMagazine(t *testing.T) {
	for _, bad := range []string{"", "../../etc/x", "a/b", ".hidden", strings.Repeat("m", 65), "M 1"} {
		if ValidateMagazine(bad) == nil {
			t.Errorf("magazine %q accepted", bad)
		}
	}
	if err := ValidateMagazine("M0001"); err != nil {
		t.Error(err)
	}
}

// TestJournalFDExhaustionIsNoStorageFault (finding 4): 20,000 idle
// connections on the status socket used up the file descriptors; the
// journal write failed with EMFILE and latched storage fault 9 for the
// scan. Running out of descriptors says nothing about the disk: the
// write is retried at the next journal update and no fault is latched.
func TestJournalFDExhaustionIsNoStorageFault(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir, "M1", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	fail := true
	j.writeFile = func(path string, fill func(*os.File) error) error {
		if fail {
			return &os.PathError{Op: "open", Path: path, Err: syscall.EMFILE}
		}
		return writeAtomic(path, fill)
	}
	r := newReport("robot", "C1", 1, time.Unix(0, 0))
	j.start(r)
	if err := j.failed(); err != nil {
		t.Fatalf("EMFILE latched %v", err)
	}
	fail = false
	j.planned(r)
	es, err := JournalEntries(dir, "M1")
	if err != nil || len(es) != 1 || es[0].SlideID != "C1" {
		t.Fatalf("journal after the retry: %+v %v", es, err)
	}
	// A real storage error still latches.
	j.writeFile = func(path string, fill func(*os.File) error) error {
		return &os.PathError{Op: "write", Path: path, Err: syscall.EIO}
	}
	j.planned(r)
	if j.failed() == nil {
		t.Fatal("EIO did not latch a storage fault")
	}
}
