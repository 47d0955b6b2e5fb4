package scan

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"papscan/hal"
)

// SlideID names the slide in slot of a magazine when its label cannot name
// it: the magazine's ID and the slot number, e.g. "M0001-S03".
func SlideID(magazine string, slot int) string {
	return fmt.Sprintf("%s-S%02d", magazine, slot)
}

// ErrSlide marks a problem of one slide (no focus anywhere on it, no
// plan), as opposed to a machine fault: the slide is reported INCOMPLETE
// and the magazine goes on.
var ErrSlide = errors.New("slide problem")

// ErrSelfTest is wrapped by the error of a magazine whose self-test failed.
var ErrSelfTest = errors.New("self-test failed")

// MagazineResult is the outcome of a magazine run.
type MagazineResult struct {
	Magazine string `json:"magazine"`
	// Before and After are the self-tests before the first and after the
	// last slide (nil when skipped or not reached).
	Before *SelfTestResult `json:"selftest_before,omitempty"`
	After  *SelfTestResult `json:"selftest_after,omitempty"`
	// Reports are every report delivered, in order: reports of slides a
	// restart interrupted first, then this run's.
	Reports []*Report `json:"-"`
	// Skipped are slots the journal shows as already done; Pending slots
	// still holding a slide that was not scanned (the run stopped).
	Skipped []int `json:"skipped,omitempty"`
	Pending []int `json:"pending,omitempty"`
	// Rerun: the magazine's results must not be trusted; scan it again.
	Rerun       bool   `json:"rerun"`
	RerunReason string `json:"rerun_reason,omitempty"`
}

// RunMagazine is Magazine without the result.
func (s *Scanner) RunMagazine(ctx context.Context, magazine string, onReport func(*Report) error) error {
	_, err := s.Magazine(ctx, magazine, onReport)
	return err
}

// Magazine scans a magazine unattended: it homes the machine, runs the
// self-test (unless disabled) and, if it passes, scans every occupied slot
// in order, handing each slide's report (INCOMPLETE ones too) to onReport
// before it takes the next slide, then runs the self-test again.
//
// With Options.StateDir set, progress is journalled: slides a restart
// interrupted are first reported INCOMPLETE and marked for rerun (never as
// finished negatives), slots already done are skipped, and the others
// (including those to rerun) are scanned. An interrupted slide is scanned
// again from its start, not from the journalled tile: the cells counted
// before the restart lived only in memory (the journal holds counts, not
// cells or gallery crops), and a reloaded slide sits slightly differently
// on the stage (the spot and focus map are found anew), so tiles imaged
// before and after could not be joined without a registration step. It
// costs one slide's scan, once per interruption.
//
// A slide problem (ErrSlide) is reported and the magazine goes on. A
// machine fault stops it after the report of the slide it hit: earlier
// results stand, later slides stay in the magazine (Pending). A failed
// self-test before the first slide stops the run before any slide (an
// error wrapping ErrSelfTest and a hal.Fault with FaultSelfTest); one after
// the last marks the run's results for rerun: each is handed to onReport
// again as a new result (new ResultID, Supersedes the old one) with Rerun
// set. An onReport error stops the run (a result that cannot be stored or
// sent is never dropped for the sake of the next slide). So does a
// progress journal that cannot be written: a storage fault (hal.Fault
// with FaultStorage, device "state_dir") before the next slide, the later
// slides Pending, or joined to the run's result when the last write of
// the run failed.
func (s *Scanner) Magazine(ctx context.Context, magazine string, onReport func(*Report) error) (*MagazineResult, error) {
	if s.o.StateDir == "" {
		return s.magazine(ctx, magazine, nil, onReport)
	}
	j, err := openJournal(s.o.StateDir, magazine, s.log)
	if err != nil {
		return &MagazineResult{Magazine: magazine}, err
	}
	res, err := s.magazine(ctx, magazine, j, onReport)
	if jerr := j.failed(); jerr != nil && !errors.Is(err, jerr) {
		// Also when the write that failed was the last one: the
		// technician learns the state directory is failing now, not
		// after the next restart.
		err = errors.Join(err, jerr)
	}
	return res, err
}

func (s *Scanner) magazine(ctx context.Context, magazine string, j *journal, onReport func(*Report) error) (*MagazineResult, error) {
	res := &MagazineResult{Magazine: magazine}
	deliver := func(r *Report) error {
		res.Reports = append(res.Reports, r)
		if err := onReport(r); err != nil {
			return fmt.Errorf("slide %s: %w", r.SlideID, err)
		}
		if j != nil {
			j.finish(r)
		}
		return nil
	}
	// Slides a restart interrupted.
	if j != nil {
		for _, e := range j.interrupted() {
			r := interruptedReport(s.o.RobotID, magazine, e, s.m.Clock.Now())
			s.log.Warn("slide scan was interrupted by a restart; reported INCOMPLETE for rerun", "slide", r.SlideID, "slot", e.Slot,
				"tiles", fmt.Sprintf("%d/%d", e.TilesCaptured, e.TilesPlanned))
			if err := deliver(r); err != nil {
				return res, err
			}
		}
	}
	if s.o.SelfTest.Disabled {
		if err := s.Home(ctx); err != nil {
			return res, err
		}
	} else { // the self-test homes
		st, err := s.selfTest(ctx)
		res.Before = st
		s.selfTestDone("before", st)
		if err != nil {
			return res, err
		}
		if !st.OK {
			res.Rerun, res.RerunReason = true, "self-test before the magazine failed: "+strings.Join(st.Failures, "; ")
			res.Pending = s.occupied()
			return res, hal.NewFault("selftest", hal.FaultSelfTest, fmt.Errorf("%w before magazine %s: %s", ErrSelfTest, magazine, strings.Join(st.Failures, "; ")))
		}
	}
	var runErr error
	slots := s.m.Loader.Slots()
	for slot := 0; slot < slots; slot++ {
		occupied, err := s.m.Loader.Occupied(slot)
		if err != nil {
			runErr = fmt.Errorf("magazine slot %d: %w", slot, err)
			break
		}
		if !occupied {
			continue
		}
		if j != nil && j.status(slot) == slotDone {
			res.Skipped = append(res.Skipped, slot)
			continue
		}
		if j != nil {
			if err := j.failed(); err != nil {
				runErr = err
				res.Pending = append(res.Pending, s.occupiedFrom(slot)...)
				break
			}
		}
		if s.o.BeforeSlide != nil {
			if err := s.o.BeforeSlide(ctx, slot); err != nil {
				runErr = err
				res.Pending = append(res.Pending, s.occupiedFrom(slot)...)
				break
			}
		}
		r, scanErr := s.scanSlot(ctx, magazine, slot, j)
		if r != nil {
			if errors.Is(scanErr, context.Canceled) || errors.Is(scanErr, context.DeadlineExceeded) {
				r.MarkRerun("scan cancelled")
			}
			if err := deliver(r); err != nil {
				runErr = err
				break
			}
		}
		if scanErr != nil && !errors.Is(scanErr, ErrSlide) {
			runErr = scanErr
			for k := slot + 1; k < slots; k++ {
				if ok, _ := s.m.Loader.Occupied(k); ok {
					res.Pending = append(res.Pending, k)
				}
			}
			break
		}
	}
	if runErr != nil || s.o.SelfTest.Disabled {
		return res, runErr
	}
	st, err := s.selfTest(ctx)
	res.After = st
	s.selfTestDone("after", st)
	if err != nil {
		return res, err
	}
	if st.OK {
		return res, nil
	}
	reason := "self-test after the magazine failed: " + strings.Join(st.Failures, "; ")
	res.Rerun, res.RerunReason = true, reason
	if j != nil {
		j.markRerun(reason)
	}
	n := len(res.Reports)
	for _, old := range res.Reports[:n] {
		if old.Rerun {
			continue
		}
		r := old.rerunCopy(reason)
		r.flag(FlagSelfTestFailed)
		res.Reports = append(res.Reports, r)
		if err := onReport(r); err != nil {
			return res, fmt.Errorf("slide %s: %w", r.SlideID, err)
		}
	}
	return res, hal.NewFault("selftest", hal.FaultSelfTest, fmt.Errorf("%w after magazine %s: %s", ErrSelfTest, magazine, strings.Join(st.Failures, "; ")))
}

// occupied lists the occupied slots.
func (s *Scanner) occupied() []int {
	var out []int
	for k := range s.m.Loader.Slots() {
		if ok, _ := s.m.Loader.Occupied(k); ok {
			out = append(out, k)
		}
	}
	return out
}

func (s *Scanner) selfTestDone(when string, st *SelfTestResult) {
	if st != nil && s.o.SelfTestDone != nil {
		s.o.SelfTestDone(when, st)
	}
}
