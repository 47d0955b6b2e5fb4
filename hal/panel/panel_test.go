package panel

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	"papscan/hal"
)

func newPanel(t *testing.T) (*Panel, map[string]*gpiotest.Pin) {
	t.Helper()
	pins := map[string]*gpiotest.Pin{}
	mk := func(name string, activeLow bool) *LED {
		p := &gpiotest.Pin{N: name, L: gpio.High}
		pins[name] = p
		l, err := NewLED(name, p, activeLow)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	return &Panel{Ready: mk("ready", false), Busy: mk("busy", true), Fault: mk("fault", false)}, pins
}

func TestNewLEDSwitchesOff(t *testing.T) {
	_, pins := newPanel(t)
	if pins["ready"].Read() != gpio.Low {
		t.Error("active-high LED not driven low at start")
	}
	if pins["busy"].Read() != gpio.High {
		t.Error("active-low LED not driven high at start")
	}
}

func TestStateTable(t *testing.T) {
	for _, tc := range []struct {
		s                  State
		ready, busy, fault hal.Pattern
	}{
		{StateStarting, hal.BlinkSlow, hal.Off, hal.Off},
		{StateReady, hal.On, hal.Off, hal.Off},
		{StateScanning, hal.On, hal.BlinkSlow, hal.Off},
		{StateDone, hal.BlinkSlow, hal.Off, hal.Off},
		{StateFault, hal.Off, hal.Off, hal.BlinkFast},
	} {
		p, _ := newPanel(t)
		if err := p.Show(tc.s); err != nil {
			t.Fatal(err)
		}
		if p.Ready.Pattern() != tc.ready || p.Busy.Pattern() != tc.busy || p.Fault.Pattern() != tc.fault {
			t.Errorf("%v: got %v/%v/%v, want %v/%v/%v", tc.s, p.Ready.Pattern(), p.Busy.Pattern(), p.Fault.Pattern(), tc.ready, tc.busy, tc.fault)
		}
	}
}

func TestBlinkTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p, pins := newPanel(t)
		if err := p.Show(StateFault); err != nil {
			t.Fatal(err)
		}
		if err := p.Busy.Show(hal.BlinkSlow); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		var fault, busy []bool
		for i := 0; i < 8; i++ {
			synctest.Wait()
			fault = append(fault, pins["fault"].Read() == gpio.High)
			busy = append(busy, pins["busy"].Read() == gpio.Low) // active low
			time.Sleep(Tick)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		wantFault := []bool{true, false, true, false, true, false, true, false}
		wantBusy := []bool{true, true, true, true, false, false, false, false}
		for i := range wantFault {
			if fault[i] != wantFault[i] || busy[i] != wantBusy[i] {
				t.Fatalf("tick %d: fault %v busy %v, want %v %v", i, fault, busy, wantFault, wantBusy)
			}
		}
		if pins["fault"].Read() != gpio.Low || pins["busy"].Read() != gpio.High {
			t.Error("LEDs not switched off when Run ended")
		}
	})
}
