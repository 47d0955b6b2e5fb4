package hal

import (
	"errors"
	"fmt"
	"testing"
)

func TestFault(t *testing.T) {
	cause := errors.New("limit switch forward active")
	err := fmt.Errorf("scan slide A: %w", NewFault("x", FaultLimit, cause))
	if !errors.Is(err, ErrFault) || !errors.Is(err, cause) {
		t.Fatalf("errors.Is lost the sentinel or the cause: %v", err)
	}
	f := FaultOf(err)
	if f == nil || f.Device != "x" || f.Code != FaultLimit {
		t.Fatalf("FaultOf = %+v", f)
	}
	if got, want := f.Error(), "x: limit fault: limit switch forward active"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if FaultOf(cause) != nil {
		t.Error("FaultOf on a plain error must be nil")
	}
	for c := FaultNone; c <= FaultInternal; c++ {
		if c.String() == "" || c.String()[0] == 'f' && c != FaultNone {
			t.Errorf("code %d has no name: %q", c, c.String())
		}
	}
	if got := FaultCode(99).String(); got != "fault(99)" {
		t.Errorf("unknown code = %q", got)
	}
}
