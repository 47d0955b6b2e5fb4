package agent

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"testing/synctest"

	"papscan/hal"
)

// stateLog records what the agent announced through StateChanged.
type stateLog struct {
	mu     sync.Mutex
	states []State
}

func (l *stateLog) add(s State) {
	l.mu.Lock()
	l.states = append(l.states, s)
	l.mu.Unlock()
}

func (l *stateLog) get() []State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.states)
}

// TestStateChangesAnnounced: every state transition of a magazine run (and
// of a fault and its acknowledge) is announced through StateChanged, in
// order and as it happens, not on a timer: the health message the daemon
// publishes from it follows each one. Virtual time (synctest): no
// announcement waits for a health interval.
func TestStateChangesAnnounced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 2, map[string]error{"MAG0002-S00": hal.NewFault("camera", hal.FaultCamera, errors.New("ENODEV"))})
		r.wait(t, "ready", state("ready"))
		if got := r.states.get(); !slices.Equal(got, []State{StateStarting, StateReady}) {
			t.Fatalf("at ready: announced %v", got)
		}
		r.press(ButtonStart, false)
		r.wait(t, "done", state("done"))
		synctest.Wait()
		want := []State{StateStarting, StateReady, StateScanning, StateDone}
		if got := r.states.get(); !slices.Equal(got, want) {
			t.Fatalf("after a magazine: announced %v, want %v", got, want)
		}
		r.press(ButtonAck, false) // dismiss
		r.wait(t, "ready", state("ready"))
		// The second magazine faults on its first slide; ACK clears it
		// and the agent re-homes.
		r.press(ButtonStart, false)
		r.wait(t, "fault", state("fault"))
		synctest.Wait()
		r.press(ButtonAck, false)
		r.wait(t, "ready again", state("ready"))
		synctest.Wait()
		want = append(want, StateReady, StateScanning, StateFault, StateStarting, StateReady)
		if got := r.states.get(); !slices.Equal(got, want) {
			t.Fatalf("after a fault: announced %v, want %v", got, want)
		}
		r.stop(t)
		if got := r.states.get(); got[len(got)-1] != StateStopping {
			t.Errorf("stop not announced: %v", got)
		}
	})
}
