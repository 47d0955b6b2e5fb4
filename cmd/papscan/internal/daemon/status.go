package daemon

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Status is what `papscan status` shows: a snapshot of the agent.
type Status struct {
	State           string     `json:"state"`         // panel state: starting, ready, scanning, paused, done, attention, fault, stopping
	Job             string     `json:"job,omitempty"` // machine job running: magazine, selftest, rehome, jog, park
	Ready           bool       `json:"ready"`         // READY was sent to systemd
	Healthy         bool       `json:"healthy"`       // watchdog view of the control loop
	Paused          bool       `json:"paused"`        // pause requested (takes effect between slides)
	Magazine        string     `json:"magazine,omitempty"`
	Current         *Current   `json:"current,omitempty"`
	SlidesDone      int        `json:"slides_done"` // in the current or last magazine
	Fault           *FaultInfo `json:"fault,omitempty"`
	OutboxDepth     int        `json:"outbox_depth"` // results stored, not yet confirmed by the fleet
	BrokerConnected bool       `json:"broker_connected"`
	Rerun           []Rerun    `json:"rerun"`
	Message         string     `json:"message,omitempty"` // last notable event
	Config          string     `json:"config,omitempty"`
	PID             int        `json:"pid"`
	Started         time.Time  `json:"started"`
}

// FaultInfo is a latched fault as the technician and the fleet see it.
type FaultInfo struct {
	Code   int       `json:"code"` // hal.FaultCode: the red LED's blink count
	Name   string    `json:"name"`
	Device string    `json:"device,omitempty"`
	Error  string    `json:"error"`
	At     time.Time `json:"at"`
}

// Line is the one-line summary used for systemd's STATUS=.
func (s Status) Line() string {
	var b strings.Builder
	b.WriteString(s.State)
	if s.Job != "" && s.Job != s.State {
		fmt.Fprintf(&b, " (%s)", s.Job)
	}
	if c := s.Current; c != nil {
		fmt.Fprintf(&b, ": %s %s", c.SlideID, c.Phase)
		if c.Total > 0 {
			fmt.Fprintf(&b, " %d/%d", c.Done, c.Total)
		}
	}
	if f := s.Fault; f != nil && s.State == "fault" {
		fmt.Fprintf(&b, ": code %d %s: %s", f.Code, f.Name, f.Error)
	}
	if s.Message != "" && s.State != "scanning" {
		fmt.Fprintf(&b, "; %s", s.Message)
	}
	net := "broker connected"
	if !s.BrokerConnected {
		net = "broker DOWN"
	}
	fmt.Fprintf(&b, "; %d results pending; %s", s.OutboxDepth, net)
	return b.String()
}

// WriteHuman prints s for a person.
func (s Status) WriteHuman(w io.Writer) {
	fmt.Fprintf(w, "state:     %s", s.State)
	if s.Job != "" {
		fmt.Fprintf(w, " (job: %s)", s.Job)
	}
	if s.Paused {
		fmt.Fprint(w, ", pause requested")
	}
	fmt.Fprintln(w)
	ready := "not yet (starting or self-check failed)"
	if s.Ready {
		ready = "yes"
	}
	fmt.Fprintf(w, "ready:     %s; control loop %s\n", ready, map[bool]string{true: "healthy", false: "STALLED"}[s.Healthy])
	if s.Magazine != "" {
		fmt.Fprintf(w, "magazine:  %s, %d slides done\n", s.Magazine, s.SlidesDone)
	}
	if c := s.Current; c != nil {
		fmt.Fprintf(w, "slide:     %s (slot %d), %s", c.SlideID, c.Slot, c.Phase)
		if c.Total > 0 {
			fmt.Fprintf(w, " %d/%d tiles (%d%%)", c.Done, c.Total, 100*c.Done/c.Total)
		}
		fmt.Fprintln(w)
	}
	if f := s.Fault; f != nil {
		fmt.Fprintf(w, "fault:     code %d (%s) on %s: %s, at %s\n", f.Code, f.Name, f.Device, f.Error, f.At.Format(time.RFC3339))
	} else {
		fmt.Fprintln(w, "fault:     none")
	}
	broker := "connected"
	if !s.BrokerConnected {
		broker = "DISCONNECTED (results kept on disk)"
	}
	fmt.Fprintf(w, "outbox:    %d results not yet confirmed\nbroker:    %s\n", s.OutboxDepth, broker)
	for _, r := range s.Rerun {
		fmt.Fprintf(w, "rerun:     %s (magazine %s slot %d): %s\n", r.SlideID, r.Magazine, r.Slot, r.Reason)
	}
	if s.Message != "" {
		fmt.Fprintf(w, "last:      %s\n", s.Message)
	}
	fmt.Fprintf(w, "agent:     pid %d, up since %s, config %s\n", s.PID, s.Started.Format(time.RFC3339), s.Config)
}
