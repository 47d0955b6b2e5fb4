package main

import (
	"bytes"
	"io"
	"sync"
)

// termWriter shares a terminal between a redrawn progress bar and whole
// lines of other output (slog, the fleet child's log): a line written
// while the bar is drawn first clears the bar's line, and the bar is drawn
// again below it, so log lines never land inside the bar and the bar
// never sits in the middle of a log line. Partial lines are held until
// their newline (two writers' halves never interleave). On a writer that
// is not a terminal it passes lines through.
type termWriter struct {
	mu  sync.Mutex
	w   io.Writer
	tty bool
	bar string // the bar line on screen now, "" when none
	buf []byte // a partial line awaiting its newline
}

var _ io.Writer = (*termWriter)(nil)

func newTermWriter(w io.Writer, tty bool) *termWriter { return &termWriter{w: w, tty: tty} }

const clearLine = "\r\033[K"

// Write writes the complete lines of p (the rest is held); it always
// reports len(p) unless the terminal fails.
func (t *termWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	i := bytes.LastIndexByte(t.buf, '\n')
	if i < 0 {
		return len(p), nil
	}
	lines := t.buf[:i+1]
	var out []byte
	if t.tty && t.bar != "" {
		out = append(out, clearLine...)
	}
	out = append(out, lines...)
	if t.tty && t.bar != "" {
		out = append(out, t.bar...)
	}
	t.buf = append(t.buf[:0], t.buf[i+1:]...)
	if _, err := t.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// drawBar replaces the bar line with s (a terminal only).
func (t *termWriter) drawBar(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bar = s
	io.WriteString(t.w, clearLine+s)
}

// endBar ends the bar's line: it stays on screen as a line of its own.
func (t *termWriter) endBar() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar != "" {
		io.WriteString(t.w, "\n")
		t.bar = ""
	}
}

// Flush writes a held partial line, ending it.
func (t *termWriter) Flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		return
	}
	if t.tty && t.bar != "" {
		io.WriteString(t.w, clearLine)
	}
	t.w.Write(append(t.buf, '\n'))
	t.buf = t.buf[:0]
	if t.tty && t.bar != "" {
		io.WriteString(t.w, t.bar)
	}
}
