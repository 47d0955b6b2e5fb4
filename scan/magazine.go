package scan

import (
	"context"
	"fmt"
)

// SlideID names the slide in slot of a magazine until labels are read: the
// magazine's ID and the slot number, e.g. "M0001-S03".
func SlideID(magazine string, slot int) string {
	return fmt.Sprintf("%s-S%02d", magazine, slot)
}

// RunMagazine homes the machine and scans every occupied slot in order,
// handing each slide's report (INCOMPLETE ones too) to onReport before it
// takes the next slide. It stops at the first machine fault or onReport
// error (a result that cannot be stored or sent is never dropped for the
// sake of the next slide) and returns it; slides not yet scanned stay in the
// magazine.
func (s *Scanner) RunMagazine(ctx context.Context, magazine string, onReport func(*Report) error) error {
	if err := s.Home(ctx); err != nil {
		return err
	}
	for slot := 0; slot < s.m.Loader.Slots(); slot++ {
		occupied, err := s.m.Loader.Occupied(slot)
		if err != nil {
			return fmt.Errorf("magazine slot %d: %w", slot, err)
		}
		if !occupied {
			continue
		}
		r, scanErr := s.ScanSlot(ctx, slot, SlideID(magazine, slot))
		if r != nil {
			if err := onReport(r); err != nil {
				return fmt.Errorf("slide %s: %w", r.SlideID, err)
			}
		}
		if scanErr != nil {
			return scanErr
		}
	}
	return nil
}
