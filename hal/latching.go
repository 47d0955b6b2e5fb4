package hal

import "fmt"

// Latching is a device that latches faults: after a fault it refuses to act
// until a technician acknowledges it with ClearFault (and, for motion, the
// device is homed again). Fault returns the latched fault, a *Fault, or nil.
// Every driver in hal/ticaxis, hal/stepdir, hal/dacfocus and the PCA9685
// lamp of hal/light implements it; hal/machine lists them in
// Machine.Latching so the agent can report and clear them.
type Latching interface {
	fmt.Stringer
	Fault() error
	ClearFault() error
}

// Faults returns the latched faults of devs, in order, skipping devices
// without one.
func Faults(devs []Latching) []*Fault {
	var out []*Fault
	for _, d := range devs {
		if err := d.Fault(); err != nil {
			f := FaultOf(err)
			if f == nil {
				f = NewFault(d.String(), FaultInternal, err)
			}
			out = append(out, f)
		}
	}
	return out
}
