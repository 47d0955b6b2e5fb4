package main

import (
	"encoding/json"
	"testing"

	"papscan/scan"
)

// TestSimJSONLineKeys: the per-slide line of `papscan sim --json` carries
// the keys a program checks the scan by.
func TestSimJSONLineKeys(t *testing.T) {
	r := &scan.Report{SlideID: "UNREADABLE-M1-S04", Verdict: "INCOMPLETE", TilesPlanned: 12, Flags: []string{scan.FlagLabelUnreadable}}
	r.Measures.ScanEfficiency = 1.04
	r.Measures.AutofocusPerField = 0.09
	r.Measures.FocusErrorRMS = 0.5
	var m map[string]any
	if err := json.Unmarshal(simJSONLine(r), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"slide_id", "verdict", "scan_efficiency", "autofocus_per_field", "focus_error_rms_um",
		"machine_seconds", "tiles", "frames_per_autofocus", "rerun", "flags", "complete", "analysis_wait_wall_seconds",
		"slide_bound_seconds", "slide_over_bound", "fly"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing from %v", k, m)
		}
	}
	if m["slide_id"] != "UNREADABLE-M1-S04" || m["tiles"] != 12.0 || m["scan_efficiency"] != 1.04 || m["complete"] != false {
		t.Errorf("values: %v", m)
	}
}
