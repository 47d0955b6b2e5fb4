package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"papscan/scan"
)

func writeJournal(t *testing.T, dir, mag, body string) {
	t.Helper()
	p := scan.JournalPath(dir, mag)
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptStateFileKeepsInterruptedSlide (issue 15, finding 6b): a
// corrupt state.json was logged and forgotten together with the
// unfinished magazine, so the slide a restart interrupted was never
// reported INCOMPLETE (and the damaged file was renamed over an earlier
// one). Now the file is kept aside under a timestamped name (an earlier
// one is never overwritten), the unfinished magazine and the rerun list
// are recovered from the journals in the state directory, the
// interrupted slide is reported INCOMPLETE, the damage is announced to
// the fleet and a storage fault (code 9) is latched until acknowledged.
func TestCorruptStateFileKeepsInterruptedSlide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		writeJournal(t, dir, "MAG0001", `{"magazine":"MAG0001","slots":{"0":{"slot":0,"slide_id":"LBL-70","result_id":"r70","status":"done"}}}`)
		writeJournal(t, dir, "MAG0002", `{"magazine":"MAG0002","slots":{`+
			`"0":{"slot":0,"slide_id":"LBL-76","result_id":"r0","status":"rerun","reason":"focus failed"},`+
			`"1":{"slot":1,"slide_id":"LBL-77","result_id":"r1","status":"scanning","tiles_planned":20,"tiles_captured":8}}}`)
		if err := os.MkdirAll(filepath.Dir(statePath(dir)), 0o750); err != nil {
			t.Fatal(err)
		}
		earlier := fmt.Sprintf("%s.corrupt-%d", statePath(dir), time.Now().Unix())
		if err := os.WriteFile(earlier, []byte("earlier"), 0o600); err != nil {
			t.Fatal(err)
		}
		torn := `{"schema":1,"state":"scanning","magazines":2,"unfinished":{"name":"MAG0002","jour`
		if err := os.WriteFile(statePath(dir), []byte(torn), 0o600); err != nil {
			t.Fatal(err)
		}
		ir := &scan.Report{ResultID: "r2", Supersedes: "r1", SlideID: "LBL-77", Slot: 1, TilesPlanned: 20, TilesCaptured: 8, Verdict: "INCOMPLETE"}
		ir.MarkRerun("interrupted by a restart")
		r := newRigWith(t, 2, nil, dir, func(f *fakeScanner) { f.interrupted = map[string][]*scan.Report{"MAG0002": {ir}} })
		s := r.wait(t, "storage fault", state("fault"))
		if s.Fault == nil || s.Fault.Code != 9 || s.Fault.Device != "state_dir" {
			t.Errorf("fault %+v, want storage fault 9 on state_dir", s.Fault)
		}
		r.del.mu.Lock()
		delivered := slices.Clone(r.del.delivered)
		r.del.mu.Unlock()
		if len(delivered) != 1 || delivered[0].SlideID != "LBL-77" || delivered[0].Verdict != "INCOMPLETE" {
			t.Errorf("interrupted slide not reported INCOMPLETE: %+v", delivered)
		}
		if s.Unfinished != "MAG0002" {
			t.Errorf("unfinished magazine %q, want MAG0002 (from its journal)", s.Unfinished)
		}
		var ids []string
		for _, x := range s.Rerun {
			ids = append(ids, x.SlideID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"LBL-76", "LBL-77"}) {
			t.Errorf("rerun list %+v, want LBL-76 (journal) and LBL-77 (interrupted)", s.Rerun)
		}
		if ev := r.del.eventsOf("state_file_damaged"); len(ev) != 1 || !strings.Contains(fmt.Sprint(ev[0]["kept"]), ".corrupt-") {
			t.Errorf("damage events %v", ev)
		}
		if b, _ := os.ReadFile(earlier); string(b) != "earlier" {
			t.Errorf("earlier kept file overwritten: %q", b)
		}
		kept, _ := filepath.Glob(statePath(dir) + ".corrupt-*")
		found := false
		for _, k := range kept {
			if b, _ := os.ReadFile(k); string(b) == torn {
				found = true
			}
		}
		if len(kept) != 2 || !found {
			t.Errorf("kept files %v (want the earlier one and the torn one)", kept)
		}
		r.press(ButtonAck, false)
		r.wait(t, "ready after ACK", state("ready"))
		r.stop(t)
		ps, err := ReadState(dir)
		if err != nil || ps.Unfinished == nil || ps.Unfinished.Name != "MAG0002" {
			t.Errorf("state file rewritten: %+v %v", ps.Unfinished, err)
		}
	})
}

// TestStateFileRefusesHostileFields: every field is checked against its
// pattern or bound; an error names the field.
func TestStateFileRefusesHostileFields(t *testing.T) {
	dir := t.TempDir()
	good := func() PersistentState {
		return PersistentState{Schema: 1, State: "ready", Rerun: []Rerun{{Magazine: "M1", Slot: 1, SlideID: "S1", ResultID: "r1", Reason: "x"}},
			Magazines: 3, Unfinished: &MagazineRef{Name: "M1", Journal: scan.JournalPath(dir, "M1")},
			Current: &Current{Magazine: "M1", Slot: 2, SlideID: "S2", Phase: "scan"}}
	}
	if _, err := decodeState(dir, enc(t, good())); err != nil {
		t.Fatalf("good state refused: %v", err)
	}
	for _, c := range []struct {
		field string
		b     []byte
	}{
		{"schema", enc(t, func() PersistentState { s := good(); s.Schema = 7; return s }())},
		{"unfinished.name", enc(t, func() PersistentState { s := good(); s.Unfinished.Name = "../../etc"; return s }())},
		{"unfinished.journal", enc(t, func() PersistentState { s := good(); s.Unfinished.Journal = "/etc/passwd"; return s }())},
		{"rerun[0].slide_id", enc(t, func() PersistentState { s := good(); s.Rerun[0].SlideID = "../x"; return s }())},
		{"rerun[0].result_id", enc(t, func() PersistentState { s := good(); s.Rerun[0].ResultID = "a/b"; return s }())},
		{"rerun[0].slot", enc(t, func() PersistentState { s := good(); s.Rerun[0].Slot = -1; return s }())},
		{"rerun[0].magazine", enc(t, func() PersistentState { s := good(); s.Rerun[0].Magazine = ""; return s }())},
		{"current.slide_id", enc(t, func() PersistentState { s := good(); s.Current.SlideID = "a b"; return s }())},
		{"magazines", enc(t, func() PersistentState { s := good(); s.Magazines = -1; return s }())},
		{"bogus", []byte(`{"schema":1,"rerun":[],"bogus":1}`)},
		{"trailing", append(enc(t, good()), []byte(` {}`)...)},
		{"rerun", []byte(`{"schema":1,"rerun":[null]}`)},
	} {
		if _, err := decodeState(dir, c.b); err == nil || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: %v, want an error naming the field", c.field, err)
		}
	}
}

// FuzzStateFile: no input panics the decoder; what it accepts is
// re-encoded and decoded to the same state.
func FuzzStateFile(f *testing.F) {
	dir := "/state"
	f.Add([]byte(`{"schema":1,"state":"ready","rerun":[{"magazine":"M1","slot":1,"slide_id":"S1","reason":"x","at":"2026-01-01T00:00:00Z"}],"magazines":2,"unfinished":{"name":"M1","journal":"/state/progress/M1.json"}}`))
	f.Add([]byte(`{"schema":1,"rerun":[null],"current":null}`))
	f.Add([]byte(`{"schema":1,"selftest":{"context":"startup","ok":true,"checks":[{"name":"camera","ok":true}]}}`))
	f.Add([]byte(`{"schema":1,"fault":{"code":9,"name":"storage","error":"x"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeState(dir, b)
		if err != nil {
			return
		}
		again, err := decodeState(dir, enc(t, s))
		if err != nil {
			t.Fatalf("accepted state does not decode again: %v", err)
		}
		if string(enc(t, again)) != string(enc(t, s)) {
			t.Fatalf("round trip changed the state")
		}
	})
}

func enc(t *testing.T, s PersistentState) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
