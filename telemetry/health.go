package telemetry

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Health is the body of the periodic health message on
// "<prefix>/<robot>/health" (kind "health", QoS 0, retained: the fleet sees
// the last figures of a robot that went offline). The agent fills it in a
// callback (RunHealth); telemetry adds nothing of its own but Connected.
type Health struct {
	UptimeS      float64       `json:"uptime_s"`
	Temperatures []Temperature `json:"temperatures,omitempty"`
	Stage        string        `json:"stage"` // e.g. "ready", "scanning", "fault"
	Faults       []FaultInfo   `json:"faults,omitempty"`
	Disk         DiskInfo      `json:"disk"`
	Outbox       OutboxInfo    `json:"outbox"`
	Scan         ScanStats     `json:"scan"`
	AcceptSlides bool          `json:"accept_slides"` // false when storage is full
	Connected    bool          `json:"connected"`
}

// Temperature is one thermal zone.
type Temperature struct {
	Zone string  `json:"zone"` // e.g. "thermal_zone0"
	Type string  `json:"type"` // e.g. "cpu-thermal"
	C    float64 `json:"c"`
}

// FaultInfo is one latched fault (hal.Fault: code = LED blink count).
type FaultInfo struct {
	Code   int    `json:"code"`
	Name   string `json:"name"`
	Device string `json:"device,omitempty"`
	Cause  string `json:"cause,omitempty"`
}

// DiskInfo is the state directory's file system.
type DiskInfo struct {
	FreeBytes  uint64 `json:"free_bytes"`
	TotalBytes uint64 `json:"total_bytes"`
}

// OutboxInfo describes the durable outbox.
type OutboxInfo struct {
	Depth   int    `json:"depth"` // entries awaiting the fleet's ack
	Session string `json:"session,omitempty"`
	Floor   uint64 `json:"floor,omitzero"`
}

// ScanStats counts the agent's work since start.
type ScanStats struct {
	Slides     int `json:"slides"`
	Results    int `json:"results"`
	Incomplete int `json:"incomplete"`
	Errors     int `json:"errors"`
}

// ReadThermal reads every thermal zone under root (normally
// "/sys/class/thermal"): zones without a readable temp are skipped; no
// zones (containers, VMs) give nil.
func ReadThermal(root string) []Temperature {
	zones, _ := filepath.Glob(filepath.Join(root, "thermal_zone*"))
	var out []Temperature
	for _, z := range zones {
		b, err := os.ReadFile(filepath.Join(z, "temp"))
		if err != nil {
			continue
		}
		milli, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			continue
		}
		typ, _ := os.ReadFile(filepath.Join(z, "type"))
		out = append(out, Temperature{Zone: filepath.Base(z), Type: strings.TrimSpace(string(typ)), C: float64(milli) / 1000})
	}
	return out
}

// PublishHealth publishes h (Connected filled in) on the health topic at
// QoS 0, retained. Like progress it is lossy: skipped when not connected.
func (c *Client) PublishHealth(h Health) error {
	if c.isClosing() {
		return ErrClosed
	}
	h.Connected = c.Connected()
	if !h.Connected {
		return fmt.Errorf("%w: health: not connected", ErrNotAcked)
	}
	body, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("%w: health: %w", ErrInvalidPayload, err)
	}
	b, err := c.envelope(Envelope{Kind: KindHealth, Body: body})
	if err != nil {
		return err
	}
	tok := c.mc.Publish(c.topics.Health(), 0, true, b)
	if !tok.WaitTimeout(c.opts.PublishTimeout) {
		return fmt.Errorf("%w: health: not written within %v", ErrNotAcked, c.opts.PublishTimeout)
	}
	return tok.Error()
}

// RunHealth publishes a health message every interval (and once at once)
// until ctx is done; fill fills in the figures.
func (c *Client) RunHealth(ctx context.Context, interval time.Duration, fill func(*Health)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		var h Health
		fill(&h)
		if err := c.PublishHealth(h); err != nil {
			c.log.Debug("health not published", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
