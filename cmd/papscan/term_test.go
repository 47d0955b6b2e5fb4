package main

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"papscan/scan"
)

// screen is a fake terminal: it interprets "\r", "\033[K" and "\n" the way
// a terminal does, so a test sees the lines a person would.
type screen struct {
	lines []string
	col   int
}

func (s *screen) Write(p []byte) (int, error) {
	if len(s.lines) == 0 {
		s.lines = []string{""}
	}
	str := string(p)
	for len(str) > 0 {
		cur := &s.lines[len(s.lines)-1]
		switch {
		case strings.HasPrefix(str, "\033[K"):
			*cur = (*cur)[:s.col]
			str = str[3:]
		case str[0] == '\r':
			s.col = 0
			str = str[1:]
		case str[0] == '\n':
			s.lines = append(s.lines, "")
			s.col = 0
			str = str[1:]
		default:
			// Overwrite from col (ASCII is enough here).
			r := []byte(*cur)
			if s.col < len(r) {
				r = append(r[:s.col], str[0])
				r = append(r, (*cur)[s.col+1:]...)
			} else {
				r = append(r, str[0])
			}
			*cur = string(r)
			s.col++
			str = str[1:]
		}
	}
	return len(p), nil
}

// TestTermWriterKeepsLogLinesOutOfTheBar: log lines written while the bar
// is drawn each get a line of their own above the bar, which is drawn
// again below them; a log line written in two halves is not split by the
// bar; the last bar stays as a line of its own.
func TestTermWriterKeepsLogLinesOutOfTheBar(t *testing.T) {
	var s screen
	tw := newTermWriter(&s, true)
	log := newLogger(tw, "info")
	bar := newProgressBar(tw)
	bar.update(scan.Progress{SlideID: "M0001-S00", Phase: "scan", Done: 1, Total: 4})
	log.Warn("autofocus point skipped", "slide", "M0001-S00")
	bar.update(scan.Progress{SlideID: "M0001-S00", Phase: "scan", Done: 2, Total: 4})
	fmt.Fprint(tw, "fleet: half a ")
	bar.update(scan.Progress{SlideID: "M0001-S00", Phase: "scan", Done: 3, Total: 4})
	fmt.Fprint(tw, "line\n")
	bar.update(scan.Progress{SlideID: "M0001-S00", Phase: "done", Done: 4, Total: 4})
	fmt.Fprintln(tw, "after")

	got := s.lines
	if len(got) != 5 || got[4] != "" {
		t.Fatalf("screen has %d lines, want 4 and an empty one:\n%s", len(got), strings.Join(got, "\n"))
	}
	if !strings.Contains(got[0], "msg=\"autofocus point skipped\"") || strings.Contains(got[0], "[") {
		t.Errorf("line 1 = %q, want the log line alone", got[0])
	}
	if got[1] != "fleet: half a line" {
		t.Errorf("line 2 = %q, want the whole second line", got[1])
	}
	if !strings.HasPrefix(got[2], "M0001-S00    done    [##############################] 4/4") {
		t.Errorf("line 3 = %q, want the final bar", got[2])
	}
	if got[3] != "after" {
		t.Errorf("line 4 = %q, want the line written after the bar", got[3])
	}
}

// TestTermWriterNotATerminal: without a terminal there is no escape
// sequence and every line passes through (a log or CI keeps all lines).
func TestTermWriterNotATerminal(t *testing.T) {
	var b bytes.Buffer
	tw := newTermWriter(&b, false)
	bar := newProgressBar(tw)
	bar.update(scan.Progress{SlideID: "M0001-S00", Phase: "load"})
	fmt.Fprintln(tw, "log line")
	bar.update(scan.Progress{SlideID: "M0001-S00", Phase: "done", Done: 4, Total: 4})
	out := b.String()
	if strings.Contains(out, "\033") || strings.Contains(out, "\r") {
		t.Errorf("escape sequences in non-terminal output %q", out)
	}
	if n := strings.Count(out, "\n"); n != 3 {
		t.Errorf("%d lines, want 3:\n%s", n, out)
	}
}
