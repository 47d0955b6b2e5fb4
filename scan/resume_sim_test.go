package scan_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"papscan/classify"
	"papscan/hal/sim/slide"
	"papscan/scan"
)

// TestRecoverInterruptedThenBeforeSlide: a service restarted after a
// power loss accounts for the interrupted slide at once (RecoverInterrupted:
// INCOMPLETE, rerun, journalled for rerun, reported only once), and a
// later Magazine run of the same magazine asks BeforeSlide before each slot
// it scans (not the done one); a BeforeSlide error stops the magazine with
// that slot pending.
func TestRecoverInterruptedThenBeforeSlide(t *testing.T) {
	skipWholeSlideInShort(t)
	dir := t.TempDir()
	specs := []slide.Spec{{ID: "R10"}, {ID: "R11"}}
	rig := newRigSpecs(t, small(dir), specs...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rig.onProgress = func(p scan.Progress) {
		if p.SlideID == "R11" && p.Phase == "scan" && p.Done == 4 {
			cancel()
		}
	}
	_, err := rig.scanner.Magazine(ctx, "M7", func(r *scan.Report) error { return ctx.Err() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: %v", err)
	}

	rig2 := newRigSpecs(t, small(dir), specs...)
	var got []*scan.Report
	rs, err := rig2.scanner.RecoverInterrupted(context.Background(), "M7", func(r *scan.Report) error { got = append(got, r); return nil })
	if err != nil || len(rs) != 1 || len(got) != 1 {
		t.Fatalf("recover: %v, %d reports", err, len(got))
	}
	if r := got[0]; r.SlideID != "R11" || r.Slot != 1 || r.Verdict != classify.VerdictIncomplete || !r.Rerun || r.Complete() {
		t.Errorf("interrupted report: %s slot %d verdict %s rerun %v", r.SlideID, r.Slot, r.Verdict, r.Rerun)
	}
	es, err := scan.JournalEntries(dir, "M7")
	if err != nil || len(es) != 2 || es[0].Status != scan.JournalDone || es[1].Status != scan.JournalRerun {
		t.Fatalf("journal after recovery: %v %+v", err, es)
	}
	if rs, err := rig2.scanner.RecoverInterrupted(context.Background(), "M7", func(*scan.Report) error { return nil }); err != nil || len(rs) != 0 {
		t.Errorf("second recovery reported %d slides again (%v)", len(rs), err)
	}

	// A gate refusing the slot: the magazine stops before loading it.
	stop := errors.New("paused for good")
	var asked []int
	o := rig2.options
	o.SelfTest.Disabled = true
	o.BeforeSlide = func(_ context.Context, slot int) error { asked = append(asked, slot); return stop }
	sc, err := scan.New(rig2.machine, o)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Magazine(context.Background(), "M7", func(*scan.Report) error { t.Error("a slide was scanned"); return nil })
	if !errors.Is(err, stop) || fmt.Sprint(asked) != "[1]" || fmt.Sprint(res.Pending) != "[1]" || fmt.Sprint(res.Skipped) != "[0]" {
		t.Fatalf("gated magazine: err %v, asked %v, pending %v, skipped %v", err, asked, res.Pending, res.Skipped)
	}
	// A gate letting it through: the rerun slot is scanned, complete.
	asked = nil
	o.BeforeSlide = func(_ context.Context, slot int) error { asked = append(asked, slot); return nil }
	if sc, err = scan.New(rig2.machine, o); err != nil {
		t.Fatal(err)
	}
	var again []*scan.Report
	if _, err := sc.Magazine(context.Background(), "M7", func(r *scan.Report) error { again = append(again, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(asked) != "[1]" || len(again) != 1 || again[0].SlideID != "R11" || !again[0].Complete() {
		t.Errorf("resumed magazine: asked %v, %d reports", asked, len(again))
	}
}
