package scan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeJournal puts raw bytes where magazine M1's journal lives.
func writeJournal(t *testing.T, dir, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "progress"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(JournalPath(dir, "M1"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestJournalNullSlot (finding 6): {"slots":{"4":null}} made every reader
// of the journal panic (scan/journal.go:122, a crash loop under systemd).
// Now the entry is dropped, the file kept aside, and the slot scanned.
func TestJournalNullSlot(t *testing.T) {
	dir := t.TempDir()
	writeJournal(t, dir, `{"magazine":"M1","slots":{"4":null,"1":{"slot":1,"slide_id":"C1","result_id":"00112233445566778899aabbccddeeff","status":"done","started_at":"2026-12-07T00:00:00Z"}}}`)
	j, err := openJournal(dir, "M1", discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	if got := j.interrupted(); len(got) != 0 {
		t.Fatalf("interrupted %+v", got)
	}
	if j.status(4) != "" || j.status(1) != slotDone {
		t.Fatalf("statuses %q %q", j.status(4), j.status(1))
	}
	if _, err := JournalEntries(dir, "M1"); err != nil {
		t.Fatal(err)
	}
}

// TestJournalHostileFields (finding 6): unchecked slide_id / result_id of
// an interrupted slot used to become the path of its INCOMPLETE report's
// result.json: "../../.." wrote outside the state directory. Every field
// is validated now (the bad slot is dropped and scanned again), and
// WriteFiles refuses such IDs and writes through os.Root besides.
func TestJournalHostileFields(t *testing.T) {
	for _, tc := range []struct{ name, entry string }{
		{"slide traversal", `{"slot":2,"slide_id":"../../../escape","result_id":"00112233445566778899aabbccddeeff","status":"scanning"}`},
		{"result traversal", `{"slot":2,"slide_id":"C2","result_id":"../../../../escape","status":"scanning"}`},
		{"slot mismatch", `{"slot":7,"slide_id":"C2","result_id":"00112233445566778899aabbccddeeff","status":"scanning"}`},
		{"status", `{"slot":2,"slide_id":"C2","result_id":"00112233445566778899aabbccddeeff","status":"exploded"}`},
		{"negative tiles", `{"slot":2,"slide_id":"C2","result_id":"00112233445566778899aabbccddeeff","status":"scanning","tiles_planned":-5}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "a", "b", "state")
			writeJournal(t, dir, `{"magazine":"M1","slots":{"2":`+tc.entry+`}}`)
			j, err := openJournal(dir, "M1", discardLogger())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range j.interrupted() {
				r := interruptedReport("robot", "M1", e, time.Unix(9, 0))
				if _, err := r.WriteFiles(dir); err != nil {
					continue
				}
			}
			escaped := false
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && !strings.HasPrefix(p, dir) && d.Name() == "result.json" {
					escaped = true
				}
				return nil
			})
			if escaped {
				t.Fatal("result.json written outside the state directory")
			}
			if got := j.interrupted(); len(got) != 0 {
				t.Fatalf("a hostile entry was kept: %+v", got)
			}
		})
	}
}

// TestWriteFilesRefusesBadIDs: the report's own IDs are checked before
// any path is built.
func TestWriteFilesRefusesBadIDs(t *testing.T) {
	dir := t.TempDir()
	for _, r := range []*Report{
		{SlideID: "../x", ResultID: "00112233445566778899aabbccddeeff"},
		{SlideID: "C1", ResultID: "a/../../b"},
		{SlideID: "C1", ResultID: ""},
	} {
		if _, err := r.WriteFiles(dir); err == nil || !errors.Is(err, ErrBadReportID) {
			t.Errorf("WriteFiles(%q, %q) = %v, want ErrBadReportID", r.SlideID, r.ResultID, err)
		}
	}
}

// FuzzJournal: whatever bytes the progress journal holds, opening it and
// reading it back never panics, every entry it keeps is valid, and the
// report of an interrupted slide is written inside the state directory.
func FuzzJournal(f *testing.F) {
	f.Add([]byte(`{"magazine":"M1","slots":{"4":null}}`))
	f.Add([]byte(`{"magazine":"M1","slots":{"2":{"slot":2,"slide_id":"C2","result_id":"00112233445566778899aabbccddeeff","status":"scanning","tiles_planned":9,"tiles_captured":4}}}`))
	f.Add([]byte(`{"magazine":"M1","slots":{"2":{"slot":2,"slide_id":"..","result_id":"/etc","status":"scanning"}}}`))
	f.Add([]byte(`{"slots":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		root := t.TempDir()
		dir := filepath.Join(root, "state")
		writeJournal(t, dir, string(b))
		if _, err := JournalEntries(dir, "M1"); err != nil {
			_ = err // unreadable: the agent's open sets it aside
		}
		j, err := openJournal(dir, "M1", discardLogger())
		if err != nil {
			return
		}
		for k, e := range j.f.Slots {
			if err := validEntry(k, e); err != nil {
				t.Fatalf("kept an invalid entry: %v", err)
			}
		}
		for _, e := range j.interrupted() {
			r := interruptedReport("robot", "M1", e, time.Unix(9, 0))
			if fs, err := r.WriteFiles(dir); err == nil && !strings.HasPrefix(fs.Result, dir+string(filepath.Separator)) {
				t.Fatalf("result written at %s", fs.Result)
			}
		}
	})
}
