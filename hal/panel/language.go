package panel

import (
	"fmt"

	"papscan/hal"
)

// Signal is what one LED shows: a steady or blinking Pattern, or, when
// Blinks > 0, a blink code: Blinks short flashes then a pause, repeated.
type Signal struct {
	Pattern hal.Pattern
	Blinks  int
}

func (s Signal) String() string {
	if s.Blinks > 0 {
		return fmt.Sprintf("code-%d", s.Blinks)
	}
	return s.Pattern.String()
}

// Steady signals, for tables.
var (
	sigOff  = Signal{Pattern: hal.Off}
	sigOn   = Signal{Pattern: hal.On}
	sigSlow = Signal{Pattern: hal.BlinkSlow}
	sigFast = Signal{Pattern: hal.BlinkFast}
)

// Code is the signal for blink code n (a fault code).
func Code(n int) Signal { return Signal{Blinks: n} }

// Blink code timing in Ticks: each flash is on for 2 ticks and off for 2,
// and the group ends with a pause of 12 ticks (1.5 s), so a technician can
// count the flashes: code 3 is "flash flash flash ... pause".
const (
	codeOnTicks    = 2
	codeOffTicks   = 2
	codePauseTicks = 12
)

// codeLit reports whether blink code n lights the LED at tick t.
func codeLit(n, t int) bool {
	if n <= 0 {
		return false
	}
	period := n*(codeOnTicks+codeOffTicks) + codePauseTicks
	i := t % period
	if i >= n*(codeOnTicks+codeOffTicks) {
		return false
	}
	return i%(codeOnTicks+codeOffTicks) < codeOnTicks
}

// View is everything the panel shows: the robot's activity plus the
// conditions that overlay it.
type View struct {
	State State
	// Fault is the latched fault's code (the same number the fleet
	// receives); it is shown in StateFault. FaultNone there shows a fast
	// red blink ("fault, code unknown").
	Fault hal.FaultCode
	// NetworkDown: no broker connection. The robot keeps working and
	// keeps results on disk; the red LED blinks slowly unless a fault
	// code is shown.
	NetworkDown bool
}

// Lights is the panel's LED language: what the ready (green), busy (amber)
// and fault (red) LEDs show for v. The README's technician table is this
// function in words; keep them in step.
//
//	state      green        amber        red
//	starting   slow blink   off          off
//	ready      on           off          off
//	scanning   on           slow blink   off
//	paused     on           on           off
//	done       slow blink   off          off     (magazine done: take it out)
//	attention  off          fast blink   off     (a slide needs a rerun, stopped with work left)
//	stopping   off          on           off     (parking, flushing results)
//	fault      off          off          blink code = fault code
//	+ network down: red slow blink (when no fault code is shown)
//
// Storage full is fault code 9 (hal.FaultStorage): results cannot be kept,
// so the robot stops.
func Lights(v View) (ready, busy, fault Signal) {
	switch v.State {
	case StateStarting:
		ready, busy, fault = sigSlow, sigOff, sigOff
	case StateReady:
		ready, busy, fault = sigOn, sigOff, sigOff
	case StateScanning:
		ready, busy, fault = sigOn, sigSlow, sigOff
	case StatePaused:
		ready, busy, fault = sigOn, sigOn, sigOff
	case StateDone:
		ready, busy, fault = sigSlow, sigOff, sigOff
	case StateAttention:
		ready, busy, fault = sigOff, sigFast, sigOff
	case StateStopping:
		ready, busy, fault = sigOff, sigOn, sigOff
	case StateFault:
		ready, busy = sigOff, sigOff
		if v.Fault > hal.FaultNone {
			return ready, busy, Code(int(v.Fault))
		}
		return ready, busy, sigFast
	default:
		return sigOff, sigOff, sigFast
	}
	if v.NetworkDown {
		fault = sigSlow
	}
	return ready, busy, fault
}
