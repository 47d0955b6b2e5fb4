package agent

import (
	"fmt"
	"io"
	"slices"
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
	// Progress is the current or last magazine's slots.
	Progress *MagazineProgress `json:"magazine_progress,omitempty"`
	// Unfinished names a magazine stopped before its end: START resumes it.
	Unfinished string `json:"unfinished_magazine,omitempty"`
	// SelfTest is the last self-test, check by check.
	SelfTest *SelfTestInfo `json:"selftest,omitempty"`
	Message  string        `json:"message,omitempty"` // last notable event
	Config   string        `json:"config,omitempty"`
	PID      int           `json:"pid"`
	Started  time.Time     `json:"started"`
}

// MagazineProgress is where a magazine stands, by slot. Done and Rerun
// include slots finished before a restart (from the magazine's journal).
type MagazineProgress struct {
	Magazine string `json:"magazine"`
	Occupied int    `json:"occupied"` // slides in the magazine
	Done     []int  `json:"done"`     // complete results
	Rerun    []int  `json:"rerun"`    // results that need a rerun
	Pending  []int  `json:"pending"`  // not scanned (yet)
	Current  *int   `json:"current,omitempty"`
}

func (p *MagazineProgress) clone() *MagazineProgress {
	if p == nil {
		return nil
	}
	c := *p
	c.Done, c.Rerun, c.Pending = slices.Clone(p.Done), slices.Clone(p.Rerun), slices.Clone(p.Pending)
	if p.Current != nil {
		v := *p.Current
		c.Current = &v
	}
	return &c
}

// reported moves slot to Done (complete) or Rerun.
func (p *MagazineProgress) reported(slot int, complete bool) {
	del := func(s []int) []int { return slices.DeleteFunc(s, func(x int) bool { return x == slot }) }
	p.Done, p.Rerun, p.Pending = del(p.Done), del(p.Rerun), del(p.Pending)
	if complete {
		p.Done = append(p.Done, slot)
		slices.Sort(p.Done)
	} else {
		p.Rerun = append(p.Rerun, slot)
		slices.Sort(p.Rerun)
	}
	if p.Current != nil && *p.Current == slot {
		p.Current = nil
	}
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
	if p := s.Progress; p != nil && (s.Job == "magazine" || s.State == "done" || s.State == "attention") {
		fmt.Fprintf(&b, "; magazine %s: %d done, %d pending, %d rerun", p.Magazine, len(p.Done), len(p.Pending), len(p.Rerun))
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
	if p := s.Progress; p != nil {
		fmt.Fprintf(w, "slots:     %d done %v, %d pending %v, %d to rerun %v (of %d slides)\n",
			len(p.Done), p.Done, len(p.Pending), p.Pending, len(p.Rerun), p.Rerun, p.Occupied)
	}
	if s.Unfinished != "" && s.Job != "magazine" {
		fmt.Fprintf(w, "unfinished: magazine %s stopped before its end; START resumes it\n", s.Unfinished)
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
	if t := s.SelfTest; t != nil {
		verdict := "PASSED"
		if !t.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "selftest:  %s (%s, %d checks, %.1f s machine time)\n", verdict, t.Context, len(t.Checks), t.Seconds)
		for _, c := range t.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(w, "  %s %-19s %s\n", mark, c.Name, c.Detail)
		}
	} else {
		fmt.Fprintln(w, "selftest:  not run yet")
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
