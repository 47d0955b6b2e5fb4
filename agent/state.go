package agent

import (
	"fmt"

	"papscan/hal"
	"papscan/hal/panel"
)

// State is what the agent is doing; Status.State is its name. The panel
// receives a view of it (Panel, panel.View).
type State int

// The agent's states.
const (
	StateStarting  State = iota // self-check after start or acknowledge
	StateReady                  // idle, waiting for a magazine or a command
	StateScanning               // scanning a magazine
	StateDone                   // magazine finished, waiting for the technician
	StateFault                  // a latched fault needs the technician
	StatePaused                 // pause requested (takes effect between slides)
	StateAttention              // stopped with work left: a slide needs a rerun
	StateStopping               // the service is stopping: parking, flushing results
)

var stateNames = [...]string{"starting", "ready", "scanning", "done", "fault", "paused", "attention", "stopping"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// panelStates maps each state onto what the technician panel shows.
var panelStates = [...]panel.State{
	StateStarting: panel.StateStarting, StateReady: panel.StateReady, StateScanning: panel.StateScanning,
	StateDone: panel.StateDone, StateFault: panel.StateFault, StatePaused: panel.StatePaused,
	StateAttention: panel.StateAttention, StateStopping: panel.StateStopping,
}

// View is what the panel shows of the agent: its state, the latched
// fault's code and whether the fleet is unreachable.
func View(s State, fault hal.FaultCode, networkDown bool) panel.View {
	v := panel.View{State: panel.StateFault, Fault: fault, NetworkDown: networkDown}
	if s >= 0 && int(s) < len(panelStates) {
		v.State = panelStates[s]
	}
	return v
}

// Panel is the technician panel as the agent drives it: it shows a view
// of the agent's state (hal/panel.Panel implements it).
type Panel interface {
	ShowView(v panel.View) error
}

var _ Panel = (*panel.Panel)(nil)
