package main

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"papscan/hal"
	"papscan/hal/panel"
)

// exitCodeFor maps an agent error to the documented exit codes.
func exitCodeFor(err error) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, context.Canceled):
		return exitOK // asked to stop
	case errors.Is(err, hal.ErrFault), errors.Is(err, hal.ErrTimeout), errors.Is(err, hal.ErrNotHomed), errors.Is(err, hal.ErrOutOfTravel):
		return exitFault
	}
	return exitFailure
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// startPanel shows "starting" and clocks the panel's blink patterns until
// the returned stop is called (it switches the LEDs off).
func startPanel(ctx context.Context, p *panel.Panel) (stop func()) {
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.Run(pctx)
	}()
	_ = p.Show(panel.StateStarting)
	return func() {
		cancel()
		<-done
	}
}
