package main

import (
	"testing"

	"papscan/agent"
	"papscan/classify"
	"papscan/delivery"
	"papscan/scan"
)

// TestSimDoneStage: a magazine that ran to its end is "done" for health,
// or "attention" when a slide is INCOMPLETE (needs a rerun), like the
// agent's done/attention states.
func TestSimDoneStage(t *testing.T) {
	ok := &scan.Report{Verdict: classify.VerdictNILM}
	inc := &scan.Report{Verdict: classify.VerdictIncomplete}
	if got := simDoneStage([]*scan.Report{ok, ok}); got != delivery.StageDone {
		t.Errorf("all analysed: %q, want %q", got, delivery.StageDone)
	}
	if got := simDoneStage([]*scan.Report{ok, inc}); got != delivery.StageAttention {
		t.Errorf("one INCOMPLETE: %q, want %q", got, delivery.StageAttention)
	}
}

// TestStageNamesAreAgentStates: `papscan sim` and the daemon speak one
// vocabulary in health's stage.
func TestStageNamesAreAgentStates(t *testing.T) {
	for s, want := range map[string]agent.State{
		delivery.StageStarting:  agent.StateStarting,
		delivery.StageScanning:  agent.StateScanning,
		delivery.StageDone:      agent.StateDone,
		delivery.StageAttention: agent.StateAttention,
		delivery.StageFault:     agent.StateFault,
	} {
		if s != want.String() {
			t.Errorf("delivery stage %q, agent state %q", s, want.String())
		}
	}
}
