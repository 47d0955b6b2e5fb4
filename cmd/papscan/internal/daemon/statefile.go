package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// StateFileName is the agent's state file in the state directory's
// "agent" folder. It is replaced atomically (write, fsync, rename, fsync
// the directory) on every state change, so it is always one valid JSON
// document, whenever the power goes.
const StateFileName = "state.json"

// Rerun is a slide that was not fully scanned (stopped, aborted, fault) and
// must be scanned again.
type Rerun struct {
	Magazine string    `json:"magazine"`
	Slot     int       `json:"slot"`
	SlideID  string    `json:"slide_id"`
	ResultID string    `json:"result_id,omitempty"` // the INCOMPLETE result stored for it
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// PersistentState is the content of the state file.
type PersistentState struct {
	Schema  int       `json:"schema"`
	State   string    `json:"state"` // panel state name, "stopped" after a clean stop
	Updated time.Time `json:"updated"`
	PID     int       `json:"pid"`
	// Current is the slide being scanned, if any. After a clean stop it is
	// empty: the slide was finished or moved to Rerun.
	Current *Current   `json:"current,omitempty"`
	Fault   *FaultInfo `json:"fault,omitempty"`
	Rerun   []Rerun    `json:"rerun"`
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
