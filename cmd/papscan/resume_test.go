package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"papscan/agent"
	"papscan/scan"
)

// smallSlides makes the simulated slides quick to scan: a 3 mm spot, few
// focus points.
func smallSlides(s string) string {
	s = strings.Replace(s, "spot_diameter: 13mm", "spot_diameter: 3mm", 1)
	return strings.Replace(s, "focus_points: 61", "focus_points: 9", 1)
}

// allResults parses every stored result.json, all of each slide's.
func allResults(t *testing.T, stateDir string) map[string][]scan.Report {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(stateDir, "slides", "*", "*", "result.json"))
	out := map[string][]scan.Report{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r scan.Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s is not valid JSON: %v", f, err)
		}
		out[r.SlideID] = append(out[r.SlideID], r)
	}
	return out
}

// TestAgentKilledMidSlideResumes: the agent is killed (SIGKILL, as a power
// cut) while a slide is being imaged. The next agent on the same state
// directory reports that slide INCOMPLETE, flagged interrupted and marked
// for rerun (never a negative), before it says READY; then it resumes the
// same magazine from scan's journal: the interrupted slide is scanned
// again (its complete result takes it off the rerun list) and the next
// slide follows. No incomplete result anywhere carries a negative verdict.
func TestAgentKilledMidSlideResumes(t *testing.T) {
	a := startAgentWith(t, smallSlides, nil, "--autostart")
	a.waitFor("READY=1", 2*time.Minute, func() bool { return a.count("READY=1") > 0 })
	var slide string
	var slot int
	a.waitFor("a slide being imaged", 3*time.Minute, func() bool {
		c := a.status().Current
		if c != nil && c.Phase == "scan" && c.Done >= 8 {
			slide, slot = c.SlideID, c.Slot
			return true
		}
		return false
	})
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	a.waitExit(time.Minute)
	ps, err := agent.ReadState(a.stateDir)
	if err != nil || ps.Unfinished == nil || ps.Unfinished.Name != "M0001" || ps.Current == nil || ps.Current.Slot != slot {
		t.Fatalf("state file after the kill: %+v %v", ps, err)
	}

	b := a.restart(nil, "--autostart")
	b.waitFor("READY=1", 2*time.Minute, func() bool { return b.count("READY=1") > 0 })
	rs := allResults(t, b.stateDir)[slide]
	if len(rs) == 0 {
		t.Fatalf("no result for the interrupted slide %s before READY", slide)
	}
	ir := rs[0]
	if ir.Verdict != "INCOMPLETE" || !ir.Rerun || !slices.Contains(ir.Flags, scan.FlagInterrupted) || ir.Slot != slot {
		t.Errorf("interrupted slide's result: verdict %s rerun %v flags %v slot %d", ir.Verdict, ir.Rerun, ir.Flags, ir.Slot)
	}
	st := b.status()
	if !slices.ContainsFunc(st.Rerun, func(x agent.Rerun) bool { return x.SlideID == slide && x.ResultID == ir.ResultID }) {
		t.Errorf("interrupted slide not on the rerun list: %+v", st.Rerun)
	}
	if st.SelfTest == nil || !st.SelfTest.OK || st.SelfTest.Context != "startup" || len(st.SelfTest.Checks) < 4 {
		t.Errorf("startup self-test in status: %+v", st.SelfTest)
	}

	b.waitFor("magazine resumed and done", 5*time.Minute, func() bool {
		st := b.status()
		return st.Job == "" && (st.State == "done" || st.State == "attention")
	})
	st = b.status()
	if st.Magazine != "M0001" || st.Unfinished != "" || st.Progress == nil || fmt.Sprint(st.Progress.Done) != "[0 1]" ||
		len(st.Progress.Pending) != 0 || len(st.Progress.Rerun) != 0 || st.State != "done" {
		t.Errorf("after the resumed magazine: %+v %+v", st, st.Progress)
	}
	if slices.ContainsFunc(st.Rerun, func(x agent.Rerun) bool { return x.SlideID == slide }) {
		t.Errorf("rescanned slide still on the rerun list: %+v", st.Rerun)
	}
	if st.SelfTest == nil || st.SelfTest.Context != "after_magazine" || !st.SelfTest.OK {
		t.Errorf("self-test after the magazine: %+v", st.SelfTest)
	}
	all := allResults(t, b.stateDir)
	if n := len(all[slide]); n != 2 {
		t.Errorf("slide %s has %d results, want the interrupted one and its rescan", slide, n)
	}
	complete := 0
	for id, rs := range all {
		for _, r := range rs {
			full := r.TilesPlanned > 0 && r.TilesAnalysed == r.TilesPlanned && r.TilesMissing == 0
			if !full && r.Verdict != "INCOMPLETE" {
				t.Errorf("slide %s: %d/%d tiles reported %s", id, r.TilesAnalysed, r.TilesPlanned, r.Verdict)
			}
			if full && !r.Rerun {
				complete++
			}
		}
	}
	if len(all) != 2 || complete != 2 {
		t.Errorf("%d slides, %d complete results; want 2 and 2", len(all), complete)
	}
	code, out, _ := runCmd(t, "status", "--socket", b.socket)
	if code != exitOK || !strings.Contains(out, "selftest:  PASSED (after_magazine") || !strings.Contains(out, "slots:     2 done [0 1], 0 pending") {
		t.Errorf("papscan status: exit %d\n%s", code, out)
	}
	b.signal(syscall.SIGTERM)
	if code := b.waitExit(StopTimeout(t)); code != exitOK {
		t.Errorf("exit %d", code)
	}
}
