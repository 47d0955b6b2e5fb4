package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimCameraLossIsAFault: sim.camera_loss_slot unplugs the simulated
// camera for good half way through that slide. The camera runs behind the
// recovering wrapper, so after its reopen attempts (on the virtual clock)
// the loss is a camera fault: the slide is INCOMPLETE, never negative, and
// `papscan sim` exits with the fault code 4.
func TestSimCameraLossIsAFault(t *testing.T) {
	if testing.Short() {
		t.Skip("simulated slide: skipped with -short")
	}
	dir := t.TempDir()
	_, shown, _ := runCmd(t, "config", "show", "sim")
	for old, repl := range map[string]string{
		"spot_diameter: 13mm":      "spot_diameter: 1200um",
		"min_squamous_cells: 5000": "min_squamous_cells: 50",
		"camera_loss_slot: -1":     "camera_loss_slot: 0",
		"focus_points: 61":         "focus_points: 4",
		"load_time: 5s":            "load_time: 2s",
	} {
		if !strings.Contains(shown, old) {
			t.Fatalf("sim profile lacks %q", old)
		}
		shown = strings.Replace(shown, old, repl, 1)
	}
	cfgPath := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(cfgPath, []byte(shown), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, "sim", "--config", cfgPath, "--slides", "1", "--synthetic", "--json",
		"--state-dir", filepath.Join(dir, "state"), "--log-level", "warn")
	if code != exitFault {
		t.Fatalf("sim exit %d, want %d (fault)\nstderr:\n%s", code, exitFault, stderr)
	}
	if !strings.Contains(stderr, "camera") || !strings.Contains(stderr, "reopen attempts") {
		t.Errorf("stderr does not name the camera fault:\n%s", stderr)
	}
	var r struct {
		Verdict  string `json:"verdict"`
		Complete bool   `json:"complete"`
		Rerun    bool   `json:"rerun"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	if r.Verdict != "INCOMPLETE" || r.Complete {
		t.Errorf("slide that lost its camera: verdict %s complete %v", r.Verdict, r.Complete)
	}
}
