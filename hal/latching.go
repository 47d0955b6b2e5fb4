package hal

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
)

// Latching is a device that latches faults: after a fault it refuses to act
// until a technician acknowledges it with ClearFault (and, for motion, the
// device is homed again). Fault returns the latched fault, a *Fault, or nil.
// Every driver in hal/ticaxis, hal/stepdir, hal/dacfocus, the PCA9685
// lamp of hal/light and hal/camera.Recovering implement it; the assembly
// point (papscan/robot) registers each one it builds in a FaultRegistry
// so the agent can report and clear them.
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

// FaultRegistry holds every device of a robot that latches faults (axes of
// every driver, the focus, the lamp, the camera, the loader), so that the
// agent reports them from one place and the technician's acknowledge
// clears them all. The assembly point (papscan/robot) fills it with what
// it built; the zero value is empty and ready to use. It is safe for
// concurrent use.
type FaultRegistry struct {
	mu   sync.Mutex
	devs []Latching
}

// Add registers devices; nil entries (and typed nils) are skipped.
func (r *FaultRegistry) Add(devs ...Latching) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range devs {
		if !isNil(d) {
			r.devs = append(r.devs, d)
		}
	}
}

// Devices returns the registered devices, in registration order.
func (r *FaultRegistry) Devices() []Latching {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.devs)
}

// Faults returns the latched faults, in registration order.
func (r *FaultRegistry) Faults() []*Fault { return Faults(r.Devices()) }

// Clear clears every registered device's latched fault (the technician's
// acknowledge); it tries every device and returns their errors joined.
// Motion devices must be homed again afterwards.
func (r *FaultRegistry) Clear() error {
	var errs []error
	for _, d := range r.Devices() {
		if err := d.ClearFault(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// isNil reports whether v is nil or an interface holding a nil pointer.
func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return rv.IsNil()
	}
	return false
}
