package agent

import (
	"context"
	"sync"
	"time"

	"papscan/hal"
)

// Health tracks the liveness of the control loop and of the machine job it
// runs. The loop beats on every turn; the job beats whenever the machine's
// clock sleeps (drivers poll through it while motors move) and on scan
// progress. Healthy means both beat recently enough; the systemd watchdog
// is pinged only then, so a stalled loop or a job stuck outside the drivers
// gets the service restarted (and the Tic dead-man stops the motors, as
// nobody feeds it either).
type Health struct {
	now func() time.Time

	mu       sync.Mutex
	loop     time.Time
	job      time.Time
	jobAlive bool // a job is running: its beats count
}

// NewHealth returns a Health reading the wall clock now (time.Now if nil).
func NewHealth(now func() time.Time) *Health {
	if now == nil {
		now = time.Now
	}
	t := now()
	return &Health{now: now, loop: t, job: t}
}

// LoopBeat records a turn of the control loop.
func (h *Health) LoopBeat() {
	h.mu.Lock()
	h.loop = h.now()
	h.mu.Unlock()
}

// Beat records progress of the running job.
func (h *Health) Beat() {
	h.mu.Lock()
	h.job = h.now()
	h.mu.Unlock()
}

func (h *Health) jobStarted(on bool) {
	h.mu.Lock()
	h.jobAlive, h.job = on, h.now()
	h.mu.Unlock()
}

// Healthy reports whether the loop beat within loopMax and a running job
// within jobMax.
func (h *Health) Healthy(loopMax, jobMax time.Duration) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if now.Sub(h.loop) > loopMax {
		return false
	}
	return !h.jobAlive || now.Sub(h.job) <= jobMax
}

// Clock wraps the machine's clock so every driver sleep is a job beat.
func (h *Health) Clock(c hal.Clock) hal.Clock { return beatClock{c, h} }

type beatClock struct {
	hal.Clock
	h *Health
}

func (c beatClock) Sleep(ctx context.Context, d time.Duration) error {
	c.h.Beat()
	err := c.Clock.Sleep(ctx, d)
	c.h.Beat()
	return err
}

// watchdogLimits are how stale the beats may be for a ping: the loop beats
// every loopTick, so half the watchdog period is plenty; a job gets the
// same, which the drivers' polling (tens of ms) and frame timeouts (a few
// s) stay far below with the unit's WatchdogSec.
func watchdogLimits(wd time.Duration) (loopMax, jobMax time.Duration) { return wd / 2, wd / 2 }

// runWatchdog pings n every wd/4 while h is healthy, until ctx ends.
func runWatchdog(ctx context.Context, n Notifier, h *Health, wd time.Duration, onMiss func()) {
	t := time.NewTicker(wd / 4)
	defer t.Stop()
	loopMax, jobMax := watchdogLimits(wd)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if h.Healthy(loopMax, jobMax) {
			_ = n.Watchdog()
		} else if onMiss != nil {
			onMiss()
		}
	}
}
