package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"papscan/scan"
)

// StateFileName is the agent's state file in the state directory's
// "agent" folder. It is replaced atomically (write, fsync, rename, fsync
// the directory) on every state change, so it is always one valid JSON
// document, whenever the power goes.
const StateFileName = "state.json"

// Rerun is a slide that was not fully scanned (stopped, aborted, fault,
// interrupted by a restart, or its magazine's self-test failed) and must be
// scanned again.
type Rerun struct {
	Magazine string    `json:"magazine"`
	Slot     int       `json:"slot"`
	SlideID  string    `json:"slide_id"`
	ResultID string    `json:"result_id,omitempty"` // the INCOMPLETE or rerun-marked result stored for it
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// PersistentState is the content of the state file.
//
// Two records, two purposes, no overlap:
//   - scan's journal, <state_dir>/progress/<magazine>.json (scan.JournalPath),
//     is the single record of a magazine's per-slot progress (done, rerun,
//     interrupted): it decides what a resumed magazine scans and which
//     slide a restart interrupted. The state file only names it
//     (Unfinished.Journal).
//   - Rerun is the technician's and the fleet's to-do list across
//     magazines, derived from the results delivered: each entry points at
//     the stored result (ResultID) that needs a rerun, and a later complete
//     result of the same slide removes it. It never decides what is
//     scanned.
type PersistentState struct {
	Schema  int       `json:"schema"`
	State   string    `json:"state"` // panel state name, "stopped" after a clean stop
	Updated time.Time `json:"updated"`
	PID     int       `json:"pid"`
	// Current is the slide being scanned, if any (shown by status). After a
	// clean stop it is empty: the slide was finished or marked for rerun.
	Current *Current   `json:"current,omitempty"`
	Fault   *FaultInfo `json:"fault,omitempty"`
	Rerun   []Rerun    `json:"rerun"`
	// Magazines counts the magazines started, so a new magazine never takes
	// an earlier one's name (and journal) after a restart.
	Magazines int `json:"magazines"`
	// Unfinished is the magazine that stopped before its end (restart,
	// SIGTERM, fault, failed self-test): START resumes it from its journal.
	// It is cleared when the magazine ends or is aborted.
	Unfinished *MagazineRef `json:"unfinished,omitempty"`
	// SelfTest is the last self-test's outcome.
	SelfTest *SelfTestInfo `json:"selftest,omitempty"`
}

// MagazineRef names a magazine and the journal holding its progress.
type MagazineRef struct {
	Name    string    `json:"name"`
	Journal string    `json:"journal"` // scan.JournalPath
	Started time.Time `json:"started"`
}

// SelfTestInfo is a self-test's outcome and when it ran: startup, request
// (socket, fleet, long START), acknowledge (after a fault), before_magazine
// or after_magazine.
type SelfTestInfo struct {
	Context string `json:"context"`
	scan.SelfTestResult
}

// Current is the slide on the stage.
type Current struct {
	Magazine string `json:"magazine"`
	Slot     int    `json:"slot"`
	SlideID  string `json:"slide_id"`
	Phase    string `json:"phase"`
	Done     int    `json:"done"`
	Total    int    `json:"total"`
}

func statePath(stateDir string) string { return filepath.Join(stateDir, "agent", StateFileName) }

// Bounds of the state file and its fields (it is read back from disk:
// hostile input).
const (
	maxStateBytes  = 8 << 20
	maxRerun       = 10000
	maxSlot        = 10000
	maxShortString = 64
	maxTextBytes   = 4096
	maxMagazines   = 1 << 30
	maxChecks      = 64
)

// ReadState reads and validates the state file (read only, through an
// os.Root on stateDir); a missing file is a zero state. A file that does
// not validate is an error naming the field; LoadState is the agent's
// open, which keeps such a file aside and recovers from the journals.
func ReadState(stateDir string) (PersistentState, error) {
	b, err := readStateFile(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return PersistentState{Schema: 1}, nil
	}
	if err != nil {
		return PersistentState{}, err
	}
	return decodeState(stateDir, b)
}

// readStateFile reads agent/state.json through an os.Root on stateDir: a
// regular file of at most maxStateBytes.
func readStateFile(stateDir string) ([]byte, error) {
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rel := filepath.Join("agent", StateFileName)
	st, err := root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("state file %s: not a regular file (%v)", statePath(stateDir), st.Mode().Type())
	}
	if st.Size() > maxStateBytes {
		return nil, fmt.Errorf("state file %s: %d bytes, more than %d", statePath(stateDir), st.Size(), maxStateBytes)
	}
	b, err := root.ReadFile(rel)
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateBytes {
		return nil, fmt.Errorf("state file %s: more than %d bytes", statePath(stateDir), maxStateBytes)
	}
	return b, nil
}

// decodeState decodes and validates a state file: one JSON document, no
// unknown field, schema 1, every ID and name against its pattern, every
// count and string bounded. The unfinished magazine's journal path is
// recomputed from its validated name (the stored path only has to name
// the same file), so no path is taken from the file. Errors name the
// field.
func decodeState(stateDir string, b []byte) (PersistentState, error) {
	var s PersistentState
	if len(b) > maxStateBytes {
		return s, fmt.Errorf("state file: %d bytes, more than %d", len(b), maxStateBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return PersistentState{}, fmt.Errorf("state file: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return PersistentState{}, errors.New("state file: trailing data after the document")
	}
	if err := validState(stateDir, &s); err != nil {
		return PersistentState{}, fmt.Errorf("state file: %w", err)
	}
	return s, nil
}

func shortString(field, v string) error {
	if len(v) > maxShortString || !utf8.ValidString(v) {
		return fmt.Errorf("field %s: longer than %d bytes or not UTF-8", field, maxShortString)
	}
	return nil
}

func text(field, v string) error {
	if len(v) > maxTextBytes || !utf8.ValidString(v) {
		return fmt.Errorf("field %s: longer than %d bytes or not UTF-8", field, maxTextBytes)
	}
	return nil
}

func slotOK(field string, v int) error {
	if v < 0 || v >= maxSlot {
		return fmt.Errorf("field %s: %d out of [0, %d)", field, v, maxSlot)
	}
	return nil
}

func idErr(field string, err error) error {
	if err != nil {
		return fmt.Errorf("field %s: %w", field, err)
	}
	return nil
}

func validState(stateDir string, s *PersistentState) error {
	if s.Schema != 1 {
		return fmt.Errorf("field schema: %d (want 1)", s.Schema)
	}
	if s.PID < 0 {
		return fmt.Errorf("field pid: %d", s.PID)
	}
	if s.Magazines < 0 || s.Magazines > maxMagazines {
		return fmt.Errorf("field magazines: %d out of [0, %d]", s.Magazines, maxMagazines)
	}
	if err := shortString("state", s.State); err != nil {
		return err
	}
	if len(s.Rerun) > maxRerun {
		return fmt.Errorf("field rerun: %d entries, more than %d", len(s.Rerun), maxRerun)
	}
	for i, x := range s.Rerun {
		f := fmt.Sprintf("rerun[%d].", i)
		if err := errors.Join(idErr(f+"magazine", scan.ValidateMagazine(x.Magazine)), slotOK(f+"slot", x.Slot),
			idErr(f+"slide_id", scan.ValidateSlideID(x.SlideID)), text(f+"reason", x.Reason)); err != nil {
			return err
		}
		if x.ResultID != "" {
			if err := idErr(f+"result_id", scan.ValidateResultID(x.ResultID)); err != nil {
				return err
			}
		}
	}
	if c := s.Current; c != nil {
		if err := errors.Join(idErr("current.magazine", scan.ValidateMagazine(c.Magazine)), slotOK("current.slot", c.Slot),
			idErr("current.slide_id", scan.ValidateSlideID(c.SlideID)), shortString("current.phase", c.Phase)); err != nil {
			return err
		}
		if c.Done < 0 || c.Total < 0 || c.Done > maxJournalCount || c.Total > maxJournalCount {
			return fmt.Errorf("field current.done/total: %d/%d out of [0, %d]", c.Done, c.Total, maxJournalCount)
		}
	}
	if u := s.Unfinished; u != nil {
		if err := idErr("unfinished.name", scan.ValidateMagazine(u.Name)); err != nil {
			return err
		}
		if filepath.Base(u.Journal) != u.Name+".json" {
			return fmt.Errorf("field unfinished.journal: %q is not the journal of magazine %q", u.Journal, u.Name)
		}
		u.Journal = scan.JournalPath(stateDir, u.Name)
	}
	if f := s.Fault; f != nil {
		if f.Code < 0 || f.Code > 255 {
			return fmt.Errorf("field fault.code: %d out of [0, 255]", f.Code)
		}
		if err := errors.Join(shortString("fault.name", f.Name), shortString("fault.device", f.Device), text("fault.error", f.Error)); err != nil {
			return err
		}
	}
	if t := s.SelfTest; t != nil {
		if err := shortString("selftest.context", t.Context); err != nil {
			return err
		}
		if len(t.Checks) > maxChecks || len(t.Failures) > maxChecks {
			return fmt.Errorf("field selftest.checks: more than %d", maxChecks)
		}
		for i, c := range t.Checks {
			f := fmt.Sprintf("selftest.checks[%d].", i)
			if err := errors.Join(shortString(f+"name", c.Name), shortString(f+"unit", c.Unit), text(f+"detail", c.Detail)); err != nil {
				return err
			}
		}
		for i, x := range t.Failures {
			if err := text(fmt.Sprintf("selftest.failures[%d]", i), x); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxJournalCount bounds a slide's tile counts (as the journal does).
const maxJournalCount = 1 << 24

// StateDamage is a state file that could not be used: why, where it was
// kept, and what was recovered from the journals in the state directory.
type StateDamage struct {
	Err error
	// Kept is where the file was set aside ("" if it could not be).
	Kept string
	// Unfinished is the magazine recovered as unfinished (its journal
	// holds a slide still scanning), "" if none; Interrupted lists every
	// magazine whose journal holds one (the agent reports each).
	Unfinished  string
	Interrupted []string
	// Rerun counts the rerun entries recovered from the journals.
	Rerun int
}

func (d *StateDamage) Error() string {
	return fmt.Sprintf("state file damaged (%v); kept as %q; recovered from the journals: unfinished magazine %q, %d rerun entries",
		d.Err, d.Kept, d.Unfinished, d.Rerun)
}

func (d *StateDamage) Unwrap() error { return d.Err }

// LoadState is the agent's open of the state file. A missing file is a
// zero state. A file that cannot be read or does not validate
// (decodeState) is set aside as state.json.corrupt-<unix seconds> (an
// earlier file set aside is never overwritten) and the state is rebuilt
// from the magazines' journals in <stateDir>/progress: the unfinished
// magazine is the one whose journal holds a slide still scanning (the
// startup then reports that slide INCOMPLETE), the rerun list is every
// slot journalled for rerun (less slides journalled done later), and the
// magazine count skips no journalled name. The damage is returned for the
// agent to report (a storage fault, an event to the fleet).
func LoadState(stateDir string, now time.Time) (PersistentState, *StateDamage) {
	b, err := readStateFile(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return PersistentState{Schema: 1}, nil
	}
	var s PersistentState
	if err == nil {
		if s, err = decodeState(stateDir, b); err == nil {
			return s, nil
		}
	}
	d := &StateDamage{Err: err}
	if kept, aerr := setAsideState(stateDir, now); aerr != nil {
		d.Err = errors.Join(err, aerr)
	} else {
		d.Kept = kept
	}
	s = recoverState(stateDir, now, d)
	return s, d
}

// setAsideState renames agent/state.json to
// agent/state.json.corrupt-<unix seconds>[-n] through an os.Root on
// stateDir and returns the new path.
func setAsideState(stateDir string, now time.Time) (string, error) {
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		return "", err
	}
	defer root.Close()
	rel := filepath.Join("agent", StateFileName)
	base := rel + ".corrupt-" + strconv.FormatInt(now.Unix(), 10)
	to := base
	for i := 1; ; i++ {
		if _, err := root.Lstat(to); errors.Is(err, fs.ErrNotExist) {
			break
		} else if err != nil {
			return "", err
		}
		to = base + "-" + strconv.Itoa(i)
	}
	if err := root.Rename(rel, to); err != nil {
		return "", fmt.Errorf("state file %s: set aside: %w", statePath(stateDir), err)
	}
	return filepath.Join(stateDir, to), nil
}

// recoverState rebuilds what the state file held from the journals.
func recoverState(stateDir string, now time.Time, d *StateDamage) PersistentState {
	s := PersistentState{Schema: 1, Rerun: []Rerun{}}
	type journal struct {
		name string
		mod  time.Time
		es   []scan.JournalEntry
	}
	var js []journal
	if root, err := os.OpenRoot(stateDir); err == nil {
		if des, err := fs.ReadDir(root.FS(), "progress"); err == nil {
			for _, de := range des {
				name, ok := strings.CutSuffix(de.Name(), ".json")
				if !ok || !de.Type().IsRegular() || scan.ValidateMagazine(name) != nil {
					continue
				}
				info, err := de.Info()
				if err != nil {
					continue
				}
				es, err := scan.JournalEntries(stateDir, name)
				if err != nil {
					continue
				}
				js = append(js, journal{name, info.ModTime(), es})
			}
		}
		root.Close()
	}
	// Oldest first: a later journal's outcome for a slide wins.
	sort.SliceStable(js, func(a, b int) bool { return js[a].mod.Before(js[b].mod) })
	for _, j := range js {
		for _, e := range j.es {
			x := Rerun{Magazine: j.name, Slot: e.Slot, SlideID: e.SlideID, ResultID: e.ResultID, Reason: e.Reason, At: now}
			switch e.Status {
			case scan.JournalRerun:
				if x.Reason == "" {
					x.Reason = "journalled for rerun"
				}
				s.Rerun = addRerun(s.Rerun, x)
			case scan.JournalDone:
				s.Rerun = slices.DeleteFunc(s.Rerun, func(y Rerun) bool { return y.SlideID == x.SlideID })
			case scan.JournalScanning:
				if !slices.Contains(d.Interrupted, j.name) {
					d.Interrupted = append(d.Interrupted, j.name)
				}
				d.Unfinished = j.name // the latest journal with an interrupted slide
			}
		}
	}
	if d.Unfinished != "" {
		s.Unfinished = &MagazineRef{Name: d.Unfinished, Journal: scan.JournalPath(stateDir, d.Unfinished), Started: now}
	}
	d.Rerun = len(s.Rerun)
	return s
}

// writeState replaces the state file atomically.
func writeState(stateDir string, s PersistentState) error {
	p := statePath(stateDir)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".state-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state file %s: %w", p, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
