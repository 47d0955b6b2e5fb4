package scan

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"
)

// RecoverInterrupted reports the slides of magazine whose scan a restart
// cut short (the journal in Options.StateDir shows them still scanning):
// each is handed to onReport as INCOMPLETE, flagged interrupted and marked
// for rerun, and the journal then records it for rerun, so a later
// Magazine run of the same magazine scans it again instead of reporting it
// twice. It touches no hardware, so a service can account for an
// interrupted slide at once after a restart, before it decides whether to
// resume the magazine. A slide whose result was stored under the
// journalled result ID before the restart (result.json under
// slides/<slide>/<result>/: the restart came between its delivery and the
// journal's "done") was not interrupted: its stored report is handed to
// onReport again as it is, is not among the returned reports, and no
// INCOMPLETE report supersedes it. Without a StateDir it does nothing.
func (s *Scanner) RecoverInterrupted(ctx context.Context, magazine string, onReport func(*Report) error) ([]*Report, error) {
	if s.o.StateDir == "" {
		return nil, nil
	}
	j, err := openJournal(s.o.StateDir, magazine, s.log)
	if err != nil {
		return nil, err
	}
	var out []*Report
	for _, e := range j.interrupted() {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if r, err := storedReport(s.o.StateDir, e); r != nil {
			// The slide was reported under the journalled ID (its
			// result.json is written before the outbox commit) and the
			// restart came before the journal's "done": hand the stored
			// result on again as it is (the outbox holds one entry per
			// result ID, so a result already committed is not sent
			// twice), and never supersede it with an INCOMPLETE report.
			s.log.Warn("slide was reported before the restart; its stored result is delivered again, not superseded",
				"slide", r.SlideID, "slot", e.Slot, "result", r.ResultID, "verdict", r.Verdict)
			if err := onReport(r); err != nil {
				return out, fmt.Errorf("slide %s: %w", r.SlideID, err)
			}
			j.finish(r)
			continue
		} else if err != nil {
			s.log.Error("stored result of an interrupted slide unusable; reported INCOMPLETE", "slide", e.SlideID, "result", e.ResultID, "err", err)
		}
		r := interruptedReport(s.o.RobotID, magazine, e, s.m.Clock.Now())
		s.log.Warn("slide scan was interrupted by a restart; reported INCOMPLETE for rerun", "slide", r.SlideID, "slot", e.Slot,
			"tiles", fmt.Sprintf("%d/%d", e.TilesCaptured, e.TilesPlanned))
		out = append(out, r)
		if err := onReport(r); err != nil {
			return out, fmt.Errorf("slide %s: %w", r.SlideID, err)
		}
		j.finish(r)
	}
	return out, nil
}

// maxStoredReport bounds a result.json storedReport reads.
const maxStoredReport = 16 << 20

// storedReport reads the report stored under the journal entry's slide and
// result ID (<stateDir>/slides/<slide>/<result>/result.json, through an
// os.Root on stateDir): nil, nil when there is none. A file that does not
// decode, names another slide or result, or has no verdict is an error
// (the caller then reports the slide INCOMPLETE).
func storedReport(stateDir string, e JournalEntry) (*Report, error) {
	if !validSlideID.MatchString(e.SlideID) || !validResultID.MatchString(e.ResultID) {
		return nil, fmt.Errorf("journal entry slot %d: bad slide or result ID", e.Slot)
	}
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	p := filepath.Join("slides", e.SlideID, e.ResultID, "result.json")
	st, err := root.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxStoredReport {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", p, maxStoredReport)
	}
	b, err := root.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	switch {
	case r.SlideID != e.SlideID || r.ResultID != e.ResultID:
		return nil, fmt.Errorf("%s: names slide %q result %q", p, r.SlideID, r.ResultID)
	case r.Verdict == "":
		return nil, fmt.Errorf("%s: field verdict: empty", p)
	case r.Slot != e.Slot:
		return nil, fmt.Errorf("%s: field slot: %d, journalled %d", p, r.Slot, e.Slot)
	}
	return &r, nil
}

// Journal statuses of a slot, as JournalEntries returns them.
const (
	JournalScanning = slotScanning
	JournalDone     = slotDone
	JournalRerun    = slotRerun
)

// JournalEntries reads a magazine's progress journal in stateDir (read
// only), in slot order; none when there is no journal. The journal is the
// single record of which slots are done, to rerun or were interrupted.
func JournalEntries(stateDir, magazine string) ([]JournalEntry, error) {
	if !validSlideID.MatchString(magazine) {
		return nil, fmt.Errorf("journal: magazine ID %q is not usable as a file name", magazine)
	}
	p := JournalPath(stateDir, magazine)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", p, err)
	}
	var f journalFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("journal %s: %w", p, err)
	}
	_ = validSlots(f.Slots) // invalid entries are not reported (the agent's open drops them)
	out := make([]JournalEntry, 0, len(f.Slots))
	for _, e := range f.Slots {
		out = append(out, *e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Slot < out[b].Slot })
	return out, nil
}

// JournalPath is where Magazine journals a magazine's progress.
func JournalPath(stateDir, magazine string) string {
	return filepath.Join(stateDir, "progress", magazine+".json")
}

// occupiedFrom lists the occupied slots from slot on.
func (s *Scanner) occupiedFrom(slot int) []int {
	var out []int
	for k := slot; k < s.m.Loader.Slots(); k++ {
		if ok, _ := s.m.Loader.Occupied(k); ok {
			out = append(out, k)
		}
	}
	return out
}

// RetireJournal sets aside magazine's journal in stateDir, if there is one,
// so that a new magazine that reuses the name starts with every slot to
// scan: the journal skips slots it holds as done, and slides of a new
// magazine in those slots would otherwise never be imaged. The file is
// renamed to <magazine>.json.retired-<unix seconds> (kept for a person);
// the new name is returned, "" when there was no journal.
func RetireJournal(stateDir, magazine string, now time.Time) (string, error) {
	if !validSlideID.MatchString(magazine) {
		return "", fmt.Errorf("journal: magazine ID %q is not usable as a file name", magazine)
	}
	p := JournalPath(stateDir, magazine)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return setAside(p, "retired", now)
}

// setAside renames the journal file p to p.<tag>-<unix seconds> (with a
// -1, -2, ... suffix if that exists: an earlier file set aside is never
// overwritten) and returns the new name.
func setAside(p, tag string, now time.Time) (string, error) {
	base := p + "." + tag + "-" + strconv.FormatInt(now.Unix(), 10)
	to := base
	for i := 1; ; i++ {
		if _, err := os.Stat(to); errors.Is(err, fs.ErrNotExist) {
			break
		}
		to = base + "-" + strconv.Itoa(i)
	}
	if err := os.Rename(p, to); err != nil {
		return "", fmt.Errorf("journal %s: set aside: %w", p, err)
	}
	return to, nil
}

// ValidateMagazine checks a magazine name as every path that takes one
// must (the fleet's start command, the status socket, the panel): it
// names the journal file <state>/progress/<magazine>.json, so it must be
// one safe path element: 1..64 of [A-Za-z0-9_.-] starting with a letter
// or digit.
func ValidateMagazine(name string) error {
	if !validSlideID.MatchString(name) {
		return fmt.Errorf("magazine %q: want 1..64 of [A-Za-z0-9_.-] starting with a letter or digit", name)
	}
	return nil
}

// ValidateSlideID checks a slide ID read from a file or the network: it
// names the directory slides/<slide>/ of the state directory, so it must
// be one safe path element, like a magazine name.
func ValidateSlideID(id string) error {
	if !validSlideID.MatchString(id) {
		return fmt.Errorf("slide ID %q: want 1..64 of [A-Za-z0-9_.-] starting with a letter or digit", id)
	}
	return nil
}

// ValidateResultID checks a result ID read from a file or the network: it
// names the directory slides/<slide>/<result>/, so it must be one safe
// path element: 1..128 of [A-Za-z0-9_.-] starting with a letter or digit.
func ValidateResultID(id string) error {
	if !validResultID.MatchString(id) {
		return fmt.Errorf("result ID %q: want 1..128 of [A-Za-z0-9_.-] starting with a letter or digit", id)
	}
	return nil
}
