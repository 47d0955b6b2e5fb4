package logx

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// secretKey matches attribute keys whose values are secrets.
var secretKey = regexp.MustCompile(`(?i)(pass(word|wd)?|secret|token|credential|private[_-]?key|api[_-]?key|auth)`)

// userinfo matches the password part of URLs with credentials
// ("mqtts://user:pw@host").
var userinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@\s]*@`)

// Redacted replaces a secret value.
const Redacted = "[redacted]"

// RedactString removes URL passwords from s.
func RedactString(s string) string {
	return userinfo.ReplaceAllString(s, "$1:"+Redacted+"@")
}

// Redact is a slog ReplaceAttr: it hides the values of secret-looking keys
// (but not of paths to secret files: "password_file", "key_file") and URL
// passwords in any string, error or URL value.
func Redact(_ []string, a slog.Attr) slog.Attr {
	k := a.Key
	if secretKey.MatchString(k) && !strings.HasSuffix(strings.ToLower(k), "file") && a.Value.Kind() != slog.KindGroup {
		return slog.String(k, Redacted)
	}
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); strings.Contains(s, "@") {
			return slog.String(k, RedactString(s))
		}
	case slog.KindAny:
		switch v := a.Value.Any().(type) {
		case error:
			return slog.String(k, RedactString(v.Error()))
		case *url.URL:
			return slog.String(k, v.Redacted())
		case fmt.Stringer:
			return slog.String(k, RedactString(v.String()))
		default: // slices, maps, structs: redact their printed form
			if p := fmt.Sprint(v); strings.Contains(p, "@") {
				return slog.String(k, RedactString(p))
			}
		}
	}
	return a
}

// New returns the agent's logger: text on w at the level in lv, secrets
// redacted, and at most burst records per message text within every window
// (0 disables the limit).
func New(w io.Writer, lv *slog.LevelVar, burst int, window time.Duration, now func() time.Time) *slog.Logger {
	h := slog.Handler(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: lv,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{} // journald stamps each line
			}
			return Redact(groups, a)
		},
	}))
	if burst > 0 {
		h = NewRateLimit(h, burst, window, now)
	}
	return slog.New(h)
}

// RateLimit is a slog.Handler that passes at most Burst records with the
// same level and message per Window, and reports how many it dropped with
// the next record of that message it passes ("suppressed" attribute). Errors
// and warnings are limited too: a loop failing every millisecond must not
// flood the journal.
type RateLimit struct {
	next   slog.Handler
	burst  int
	window time.Duration
	now    func() time.Time
	st     *limitState
}

type limitState struct {
	mu   sync.Mutex
	keys map[limitKey]*bucket
}

type limitKey struct {
	level slog.Level
	msg   string
}

type bucket struct {
	start      time.Time
	n          int
	suppressed int
}

var _ slog.Handler = (*RateLimit)(nil)

// NewRateLimit wraps next. now is the clock (time.Now if nil).
func NewRateLimit(next slog.Handler, burst int, window time.Duration, now func() time.Time) *RateLimit {
	if now == nil {
		now = time.Now
	}
	return &RateLimit{next: next, burst: burst, window: window, now: now, st: &limitState{keys: map[limitKey]*bucket{}}}
}

// Enabled implements slog.Handler.
func (h *RateLimit) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *RateLimit) Handle(ctx context.Context, r slog.Record) error {
	k := limitKey{r.Level, r.Message}
	now := h.now()
	h.st.mu.Lock()
	b := h.st.keys[k]
	if b == nil {
		if len(h.st.keys) > 4096 { // bounded memory whatever the messages
			clear(h.st.keys)
		}
		b = &bucket{start: now}
		h.st.keys[k] = b
	}
	if now.Sub(b.start) >= h.window {
		b.start, b.n = now, 0
	}
	if b.n >= h.burst {
		b.suppressed++
		h.st.mu.Unlock()
		return nil
	}
	b.n++
	dropped := b.suppressed
	b.suppressed = 0
	h.st.mu.Unlock()
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("suppressed", dropped))
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler; the limit is shared.
func (h *RateLimit) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.next = h.next.WithAttrs(as)
	return &c
}

// WithGroup implements slog.Handler; the limit is shared.
func (h *RateLimit) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
