package remote

import (
	"papscan/agent"
	"papscan/hal"
	"papscan/telemetry"
)

// Health fills the agent's part of the health message from its status
// (delivery.Link.SetHealth): its state, its latched fault, and no new
// slides while storage is faulted.
func Health(ag *agent.Agent) func(h *telemetry.Health) {
	return func(h *telemetry.Health) {
		st := ag.Status()
		h.Stage = st.State
		if f := st.Fault; f != nil && st.State == "fault" {
			h.Faults = []telemetry.FaultInfo{{Code: f.Code, Name: f.Name, Device: f.Device, Cause: f.Error}}
		}
		if f := st.Fault; f != nil && f.Code == int(hal.FaultStorage) {
			h.AcceptSlides = false
		}
	}
}
