package hal

import (
	"errors"
	"fmt"
)

// FaultCode classifies a device fault. The same number is the blink count of
// the panel's fault LED and the "code" the fleet receives, so a technician
// reading the LED and an engineer reading telemetry talk about the same thing.
// Codes are stable: never renumber, only append.
type FaultCode int

// Fault codes. Zero is "no fault".
const (
	FaultNone     FaultCode = iota
	FaultLimit              // 1: limit switch hit outside homing, or homing switch never found
	FaultDriver             // 2: motor driver error (over-temperature, low VIN, position uncertain...)
	FaultBus                // 3: I2C NACK, bus timeout or garbled answer
	FaultMotion             // 4: a move did not finish in its time budget, or was halted
	FaultCamera             // 5: camera gone, stuck or delivering bad frames
	FaultLight              // 6: illumination failed its check
	FaultLoader             // 7: slide loader jammed or lost a slide
	FaultSelfTest           // 8: self-test out of tolerance
	FaultStorage            // 9: state directory full or failing
	FaultInternal           // 10: software invariant broken (a bug): stop and report
)

var faultNames = [...]string{
	FaultNone:     "none",
	FaultLimit:    "limit",
	FaultDriver:   "driver",
	FaultBus:      "bus",
	FaultMotion:   "motion",
	FaultCamera:   "camera",
	FaultLight:    "light",
	FaultLoader:   "loader",
	FaultSelfTest: "selftest",
	FaultStorage:  "storage",
	FaultInternal: "internal",
}

// String is the code's stable lower-case name, used in telemetry.
func (c FaultCode) String() string {
	if c >= 0 && int(c) < len(faultNames) {
		return faultNames[c]
	}
	return fmt.Sprintf("fault(%d)", int(c))
}

// Fault is a device fault with the device that raised it and the cause.
// Drivers return it (wrapped or not) when they latch; errors.Is(err,
// ErrFault) is true for every Fault, and FaultOf extracts it.
type Fault struct {
	Device string    // e.g. "x", "z", "camera", "light"
	Code   FaultCode // classification; the panel's blink count
	Err    error     // the cause, e.g. "limit switch forward active"
}

func (f *Fault) Error() string {
	return fmt.Sprintf("%s: %s fault: %v", f.Device, f.Code, f.Err)
}

// Unwrap exposes the cause and ErrFault.
func (f *Fault) Unwrap() []error { return []error{ErrFault, f.Err} }

// NewFault returns a *Fault.
func NewFault(device string, code FaultCode, err error) *Fault {
	return &Fault{Device: device, Code: code, Err: err}
}

// FaultOf returns the first *Fault in err's tree, or nil.
func FaultOf(err error) *Fault {
	var f *Fault
	if errors.As(err, &f) {
		return f
	}
	return nil
}
