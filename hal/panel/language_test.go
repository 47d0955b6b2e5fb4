package panel

import (
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"

	"papscan/hal"
)

func TestLights(t *testing.T) {
	off, on, slow, fast := Signal{Pattern: hal.Off}, Signal{Pattern: hal.On}, Signal{Pattern: hal.BlinkSlow}, Signal{Pattern: hal.BlinkFast}
	for _, tc := range []struct {
		v                  View
		ready, busy, fault Signal
	}{
		{View{State: StateStarting}, slow, off, off},
		{View{State: StateReady}, on, off, off},
		{View{State: StateScanning}, on, slow, off},
		{View{State: StatePaused}, on, on, off},
		{View{State: StateDone}, slow, off, off},
		{View{State: StateAttention}, off, fast, off},
		{View{State: StateStopping}, off, on, off},
		{View{State: StateFault}, off, off, fast},
		{View{State: StateFault, Fault: hal.FaultCamera}, off, off, Code(5)},
		{View{State: StateFault, Fault: hal.FaultStorage, NetworkDown: true}, off, off, Code(9)},
		{View{State: StateReady, NetworkDown: true}, on, off, slow},
		{View{State: StateScanning, NetworkDown: true}, on, slow, slow},
		{View{State: StatePaused, NetworkDown: true}, on, on, slow},
		{View{State: State(99)}, off, off, fast},
	} {
		t.Run(tc.v.State.String(), func(t *testing.T) {
			r, b, f := Lights(tc.v)
			if r != tc.ready || b != tc.busy || f != tc.fault {
				t.Errorf("%+v: got %v/%v/%v, want %v/%v/%v", tc.v, r, b, f, tc.ready, tc.busy, tc.fault)
			}
			p, _ := newPanel(t)
			if err := p.ShowView(tc.v); err != nil {
				t.Fatal(err)
			}
			if p.Ready.Signal() != tc.ready || p.Busy.Signal() != tc.busy || p.Fault.Signal() != tc.fault || p.View() != tc.v {
				t.Errorf("panel shows %v/%v/%v", p.Ready.Signal(), p.Busy.Signal(), p.Fault.Signal())
			}
		})
	}
}

// Every fault code the fleet can receive blinks as that many flashes.
func TestBlinkCodeCountsFaultCode(t *testing.T) {
	for code := hal.FaultLimit; code <= hal.FaultInternal; code++ {
		synctest.Test(t, func(t *testing.T) {
			p, pins := newPanel(t)
			if err := p.ShowView(View{State: StateFault, Fault: code}); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- p.Run(ctx) }()
			var trace strings.Builder
			period := int(code)*(codeOnTicks+codeOffTicks) + codePauseTicks
			for range 2 * period {
				synctest.Wait()
				if pins["fault"].Read() == gpio.High {
					trace.WriteByte('#')
				} else {
					trace.WriteByte('.')
				}
				time.Sleep(Tick)
			}
			cancel()
			<-done
			// Count rising edges in one period, and check the pause.
			s := trace.String()
			flashes := strings.Count(s[:period], ".#") + btoi(s[0] == '#')
			if flashes != int(code) {
				t.Errorf("code %d: %d flashes in %q", code, flashes, s)
			}
			if !strings.Contains(s, strings.Repeat(".", codePauseTicks)) {
				t.Errorf("code %d: no pause in %q", code, s)
			}
			if s[:period] != s[period:] {
				t.Errorf("code %d: pattern does not repeat: %q", code, s)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
