// Package logx builds the agent's log/slog logger for journald: text to
// stderr without timestamps (journald adds them), secrets redacted whatever
// the caller passes, and chatty loops rate-limited per message.
package logx
