package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

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

// ReadState reads the state file; a missing file is a zero state.
func ReadState(stateDir string) (PersistentState, error) {
	var s PersistentState
	b, err := os.ReadFile(statePath(stateDir))
	if os.IsNotExist(err) {
		return PersistentState{Schema: 1}, nil
	}
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("%s: %w", statePath(stateDir), err)
	}
	return s, nil
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
