package scan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"papscan/hal"
)

// Journal statuses of a slot.
const (
	slotScanning = "scanning" // a scan started and has not been reported
	slotDone     = "done"     // reported complete
	slotRerun    = "rerun"    // reported, but to be scanned again
)

// journalEvery is how many tiles pass between progress writes (besides the
// writes at the start, once the tiles are planned and at the end of a
// slide): a write is a small file, fsynced, against a tile's ~0.1 s.
const journalEvery = 4

// JournalEntry is one slot's persisted progress.
type JournalEntry struct {
	Slot          int       `json:"slot"`
	SlideID       string    `json:"slide_id"`
	ResultID      string    `json:"result_id"`
	Status        string    `json:"status"`
	TilesPlanned  int       `json:"tiles_planned"`
	TilesCaptured int       `json:"tiles_captured"`
	TilesAnalysed int       `json:"tiles_analysed"`
	Cells         int       `json:"cells"`
	StartedAt     time.Time `json:"started_at"`
	Reason        string    `json:"reason,omitempty"`
}

type journalFile struct {
	Magazine string                   `json:"magazine"`
	Slots    map[string]*JournalEntry `json:"slots"` // by slot number
}

// journal persists a magazine's progress in
// <state>/progress/<magazine>.json, written atomically (temporary file,
// fsync, rename), so that after a power loss or restart an interrupted
// slide is found and never taken for a finished one.
type journal struct {
	path string
	log  *slog.Logger
	mu   sync.Mutex
	f    journalFile
	// fault is the storage fault of the first failed write (guarded by
	// mu); the write error is logged once.
	fault *hal.Fault
	// writeFile writes the journal file (writeAtomic; tests inject
	// failures).
	writeFile func(path string, fill func(*os.File) error) error
}

func openJournal(stateDir, magazine string, log *slog.Logger) (*journal, error) {
	if !validSlideID.MatchString(magazine) {
		return nil, fmt.Errorf("journal: magazine ID %q is not usable as a file name", magazine)
	}
	dir := filepath.Join(stateDir, "progress")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &journal{path: filepath.Join(dir, magazine+".json"), log: log, writeFile: writeAtomic,
		f: journalFile{Magazine: magazine, Slots: map[string]*JournalEntry{}}}
	b, err := os.ReadFile(j.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return j, nil
	case err != nil:
		return nil, fmt.Errorf("journal %s: %w", j.path, err)
	}
	var f journalFile
	if err := json.Unmarshal(b, &f); err != nil || f.Slots == nil {
		// A torn or foreign file: keep it for a person, start afresh, and
		// do not take any slot as done.
		bad, aerr := setAside(j.path, "corrupt", time.Now())
		log.Error("progress journal unreadable; kept aside, every slot will be scanned", "file", bad, "err", errors.Join(err, aerr))
		return j, nil
	}
	f.Magazine = magazine
	bad := validSlots(f.Slots)
	j.f = f
	if len(bad) > 0 {
		// Keep the file as found for a person, drop the entries that
		// fail validation (their slots are scanned again) and write the
		// rest back.
		kept, aerr := setAside(j.path, "corrupt", time.Now())
		log.Error("progress journal has invalid entries; dropped (those slots will be scanned again), original kept aside",
			"file", kept, "problems", errors.Join(append(bad, aerr)...))
		j.write()
	}
	return j, nil
}

// Bounds of a journal entry's fields.
const (
	maxJournalSlot  = 10000
	maxJournalCount = 1 << 24
	maxReasonBytes  = 1024
)

// validResultID is the shape of a result ID: it names a directory under
// slides/<slide>/, so it must be one safe path element.
var validResultID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// validSlots deletes every entry of slots that fails validation and
// returns why, one error per dropped entry naming the slot and field.
// The journal is read back from disk: it is hostile input (a null entry
// used to panic every reader; an unchecked slide or result ID became a
// path outside the state directory).
func validSlots(slots map[string]*JournalEntry) []error {
	var bad []error
	for k, e := range slots {
		if err := validEntry(k, e); err != nil {
			bad = append(bad, fmt.Errorf("slots[%q]: %w", k, err))
			delete(slots, k)
		}
	}
	return bad
}

func validEntry(k string, e *JournalEntry) error {
	switch {
	case e == nil:
		return errors.New("null entry")
	case k != strconv.Itoa(e.Slot) || e.Slot < 0 || e.Slot >= maxJournalSlot:
		return fmt.Errorf("field slot: %d under key %q (want the key, in [0, %d))", e.Slot, k, maxJournalSlot)
	case !validSlideID.MatchString(e.SlideID):
		return fmt.Errorf("field slide_id: %q is not a slide ID", e.SlideID)
	case !validResultID.MatchString(e.ResultID):
		return fmt.Errorf("field result_id: %q is not a result ID", e.ResultID)
	case e.Status != slotScanning && e.Status != slotDone && e.Status != slotRerun:
		return fmt.Errorf("field status: %q (want %s, %s or %s)", e.Status, slotScanning, slotDone, slotRerun)
	case len(e.Reason) > maxReasonBytes || !utf8.ValidString(e.Reason):
		return errors.New("field reason: too long or not UTF-8")
	}
	for _, c := range []struct {
		name string
		v    int
	}{{"tiles_planned", e.TilesPlanned}, {"tiles_captured", e.TilesCaptured}, {"tiles_analysed", e.TilesAnalysed}, {"cells", e.Cells}} {
		if c.v < 0 || c.v > maxJournalCount {
			return fmt.Errorf("field %s: %d out of [0, %d]", c.name, c.v, maxJournalCount)
		}
	}
	return nil
}

// entry returns the slot's entry, creating it.
func (j *journal) entry(slot int) *JournalEntry {
	k := strconv.Itoa(slot)
	e := j.f.Slots[k]
	if e == nil {
		e = &JournalEntry{Slot: slot}
		j.f.Slots[k] = e
	}
	return e
}

// status is the slot's status ("" when the journal does not know it).
func (j *journal) status(slot int) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.f.Slots[strconv.Itoa(slot)]; e != nil {
		return e.Status
	}
	return ""
}

// interrupted returns the entries of slides whose scan started and was
// never reported, in slot order.
func (j *journal) interrupted() []JournalEntry {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []JournalEntry
	for _, e := range j.f.Slots {
		if e.Status == slotScanning {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Slot < out[b].Slot })
	return out
}

// start records that r's scan began. A slot held for rerun that is
// scanned again for the same slide: r supersedes the result it replaces.
func (j *journal) start(r *Report) {
	j.mu.Lock()
	e := j.entry(r.Slot)
	if e.Status == slotRerun && e.SlideID == r.SlideID && e.ResultID != "" && e.ResultID != r.ResultID && r.Supersedes == "" {
		r.Supersedes = e.ResultID
	}
	*e = JournalEntry{Slot: r.Slot, SlideID: r.SlideID, ResultID: r.ResultID, Status: slotScanning, StartedAt: r.StartedAt}
	j.mu.Unlock()
	j.write()
}

func (j *journal) planned(r *Report) {
	j.mu.Lock()
	j.entry(r.Slot).TilesPlanned = r.TilesPlanned
	j.mu.Unlock()
	j.write()
}

func (j *journal) progress(r *Report, captured, analysed, cells int) {
	j.mu.Lock()
	e := j.entry(r.Slot)
	e.TilesPlanned, e.TilesCaptured, e.TilesAnalysed, e.Cells = r.TilesPlanned, captured, analysed, cells
	j.mu.Unlock()
	if captured%journalEvery == 0 {
		j.write()
	}
}

// finish records a delivered report: done when complete and not to be
// rerun, else rerun.
func (j *journal) finish(r *Report) {
	j.mu.Lock()
	e := j.entry(r.Slot)
	e.SlideID, e.ResultID = r.SlideID, r.ResultID
	e.TilesPlanned, e.TilesCaptured, e.TilesAnalysed = r.TilesPlanned, r.TilesCaptured, r.TilesAnalysed
	e.Cells = r.Result.Cells
	e.Status, e.Reason = slotDone, ""
	if !r.Complete() || r.Rerun {
		e.Status = slotRerun
		e.Reason = r.RerunReason
		if e.Reason == "" {
			e.Reason = "incomplete: " + r.Error
		}
	}
	j.mu.Unlock()
	j.write()
}

// markRerun marks every done slot for a rerun.
func (j *journal) markRerun(reason string) {
	j.mu.Lock()
	for _, e := range j.f.Slots {
		if e.Status == slotDone {
			e.Status, e.Reason = slotRerun, reason
		}
	}
	j.mu.Unlock()
	j.write()
}

func (j *journal) write() {
	j.mu.Lock()
	b, err := json.MarshalIndent(j.f, "", "  ")
	j.mu.Unlock()
	if err == nil {
		err = j.writeFile(j.path, func(w *os.File) error { _, err := w.Write(append(b, '\n')); return err })
	}
	if err == nil {
		return
	}
	if FDExhausted(err) {
		// Out of file descriptors (a flood of connections, a leak):
		// nothing is wrong with the disk. The next update writes the
		// whole journal again; no storage fault.
		j.log.Warn("progress journal not written: out of file descriptors; retried at the next update", "file", j.path, "err", err)
		return
	}
	j.mu.Lock()
	first := j.fault == nil
	if first {
		j.fault = hal.NewFault("state_dir", hal.FaultStorage, fmt.Errorf("progress journal: %w", err))
	}
	j.mu.Unlock()
	if first {
		j.log.Error("progress journal not written", "file", j.path, "err", err)
	}
}

// FDExhausted tells whether err is the process or the system running out
// of file descriptors (EMFILE, ENFILE): a flood of connections or a leak,
// nothing wrong with the disk. A write that fails so latches no storage
// fault; the journal, the deliverer and the agent's state file retry it
// at their next write.
func FDExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// failed returns the storage fault of the first failed write, or nil. The
// journal is what keeps an interrupted slide from passing for a finished
// one and a finished one from being scanned twice after a restart; a
// state directory that cannot keep it is a storage fault, and the
// magazine takes no further slide.
func (j *journal) failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.fault == nil {
		return nil // not a typed nil
	}
	return j.fault
}

// interruptedReport is the report of a slide whose scan a restart cut
// short: INCOMPLETE, flagged and marked for rerun, never negative, under a
// new result ID that supersedes the one journalled at the scan's start.
func interruptedReport(robot, magazine string, e JournalEntry, now time.Time) *Report {
	r := newReport(robot, e.SlideID, e.Slot, e.StartedAt)
	// A new result ID, superseding the journalled one: the slide may have
	// been reported under that ID just before the restart (the journal's
	// "done" is written after the delivery), and one result ID never
	// carries two contents.
	r.Supersedes = e.ResultID
	r.Magazine = magazine
	r.TilesPlanned, r.TilesCaptured, r.TilesAnalysed = e.TilesPlanned, e.TilesCaptured, e.TilesAnalysed
	r.TilesMissing = max(e.TilesPlanned-e.TilesCaptured, 0)
	r.Error = fmt.Sprintf("scan interrupted by a restart at tile %d of %d", e.TilesCaptured, e.TilesPlanned)
	r.flag(FlagInterrupted)
	r.MarkRerun("interrupted by a restart")
	r.FinishedAt = now
	r.Verdict = "INCOMPLETE"
	r.Result.Verdict = "INCOMPLETE"
	r.Result.Cells = e.Cells
	return r
}
