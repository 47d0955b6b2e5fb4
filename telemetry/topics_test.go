package telemetry

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestValidateIDs(t *testing.T) {
	for _, tc := range []struct {
		id, reason string
	}{
		{"", "empty"},
		{"a/b", "'/'"},
		{"a+b", "'+'"},
		{"a#", "'#'"},
		{"\xffab", "UTF-8"},
		{"$SYS", "'$'"},
		{"a b", "space"},
		{"a\x00b", "control"},
		{strings.Repeat("x", 129), "longer"},
	} {
		for field, f := range map[string]func(string) error{"robot ID": ValidateRobotID, "slide ID": ValidateSlideID} {
			err := f(tc.id)
			var ie *IDError
			if !errors.Is(err, ErrInvalidID) || !errors.As(err, &ie) || ie.Field != field {
				t.Errorf("%s %q: err = %v", field, tc.id, err)
				continue
			}
			if !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("%s %q: message %q should name %q and %q", field, tc.id, err, field, tc.reason)
			}
		}
	}
	for _, ok := range []string{"robot-07", "S-2026-000123", "Éprouvette_1", "a.b:c"} {
		if err := ValidateSlideID(ok); err != nil {
			t.Errorf("ValidateSlideID(%q) = %v", ok, err)
		}
	}
}

func TestTopics(t *testing.T) {
	tp, err := NewTopics("", "r1")
	if err != nil {
		t.Fatal(err)
	}
	res, err := tp.Result("S1")
	if err != nil {
		t.Fatal(err)
	}
	got := []string{tp.State(), res, tp.Event(), tp.Progress(), tp.Cmd(), ResultFilter(tp.Prefix()), StateFilter(tp.Prefix())}
	want := []string{"papscan/r1/state", "papscan/r1/result/S1", "papscan/r1/event", "papscan/r1/progress", "papscan/r1/cmd", "papscan/+/result/#", "papscan/+/state"}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("topic %d = %q, want %q", i, got[i], want[i])
		}
	}
	if _, err := tp.Result("a/b"); !errors.Is(err, ErrInvalidID) {
		t.Errorf("Result(a/b) = %v", err)
	}
	for _, bad := range []string{"/a", "a//b", "a/+", "$share/x"} {
		if _, err := NewTopics(bad, "r1"); !errors.Is(err, ErrInvalidID) || !strings.Contains(err.Error(), "topic prefix") {
			t.Errorf("NewTopics(%q) = %v", bad, err)
		}
	}
}

var uuidv7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewID(t *testing.T) {
	seen := make(map[string]bool)
	prev := ""
	for range 10000 {
		id := NewID()
		if !uuidv7.MatchString(id) {
			t.Fatalf("NewID() = %q, not UUIDv7", id)
		}
		if seen[id] {
			t.Fatalf("duplicate ID %s", id)
		}
		seen[id] = true
		// The 48-bit millisecond prefix never goes backwards.
		if id[:13] < prev {
			t.Fatalf("time prefix went backwards: %s after %s", id[:13], prev)
		}
		prev = id[:13]
	}
}
