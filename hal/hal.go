package hal

import (
	"context"
	"errors"
	"fmt"
	"image"
	"sync"
	"time"

	"periph.io/x/conn/v3/physic"
)

// Sentinel errors shared by drivers. Drivers wrap them with the device name
// and the cause, so callers can test with errors.Is and people can read the
// message.
var (
	// ErrNotHomed is returned by a move on an axis that has not been homed.
	ErrNotHomed = errors.New("axis not homed")
	// ErrOutOfTravel is returned by a move whose target lies outside the
	// axis's configured travel.
	ErrOutOfTravel = errors.New("target outside travel")
	// ErrFault is returned while a device has a latched fault.
	ErrFault = errors.New("device fault latched")
	// ErrTimeout is returned when a device did not answer or finish in time.
	ErrTimeout = errors.New("device timeout")
	// ErrNoSlide is returned by loader operations on an empty slot.
	ErrNoSlide = errors.New("no slide")
)

// Clock is the time source of every time-dependent driver and of the scan
// loop. The robot uses SystemClock; the simulator uses a virtual clock whose
// Sleep advances simulated machine time instantly, so a simulated slide scan
// takes the machine time physics dictates but little wall time.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, whichever comes first, and
	// returns ctx.Err() in the latter case.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the wall clock.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep implements Clock.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Axis is one linear motion axis (stage X, stage Y, focus Z on a stepper).
//
// An axis refuses moves until it has been homed and refuses targets outside
// its travel. Start begins a move and returns at once; Wait blocks until the
// axis stands still at its target (settled). Halt stops at once, whatever
// state the axis is in, and is safe to call from any goroutine.
type Axis interface {
	fmt.Stringer
	// Home runs the homing procedure against the axis's limit switch and
	// sets the position reference. It fails if the switch never triggers.
	Home(ctx context.Context) error
	// Homed reports whether the axis has a valid position reference.
	Homed() bool
	// Start begins a move to target.
	Start(target physic.Distance) error
	// Wait blocks until the move started last has finished.
	Wait(ctx context.Context) error
	// Position is the axis's current position as the driver knows it.
	Position() (physic.Distance, error)
	// Travel is the configured range of allowed targets.
	Travel() (min, max physic.Distance)
	// Halt stops motion immediately.
	Halt() error
}

// MoveTo starts a move of a to target and waits for it to finish.
func MoveTo(ctx context.Context, a Axis, target physic.Distance) error {
	if err := a.Start(target); err != nil {
		return err
	}
	return a.Wait(ctx)
}

// Stage is the XY slide stage.
type Stage struct {
	X, Y Axis
}

// Home homes both axes, Y then X.
func (s Stage) Home(ctx context.Context) error {
	if err := s.Y.Home(ctx); err != nil {
		return err
	}
	return s.X.Home(ctx)
}

// MoveTo moves X and Y together and waits until both have arrived.
func (s Stage) MoveTo(ctx context.Context, x, y physic.Distance) error {
	if err := s.X.Start(x); err != nil {
		return err
	}
	if err := s.Y.Start(y); err != nil {
		_ = s.X.Halt()
		return err
	}
	if err := s.X.Wait(ctx); err != nil {
		_ = s.Y.Halt()
		return err
	}
	return s.Y.Wait(ctx)
}

// Position returns the stage's current X and Y.
func (s Stage) Position() (x, y physic.Distance, err error) {
	if x, err = s.X.Position(); err != nil {
		return 0, 0, err
	}
	y, err = s.Y.Position()
	return x, y, err
}

// Halt stops both axes; it returns the first error but always tries both.
func (s Stage) Halt() error {
	return errors.Join(s.X.Halt(), s.Y.Halt())
}

// Machine is the set of devices a slide scan drives.
type Machine struct {
	Stage  Stage
	Focus  Focus
	Camera Camera
	Light  Light // optional
	Loader SlideLoader
	Clock  Clock
	// Overview is the optional low-magnification camera that sees the whole
	// slide on the holder (label code, cell spot); nil when the robot has
	// none. Its PixelSize is the slide size of one of its pixels.
	Overview Camera
}

// Focus moves the objective (or the specimen) along the optical axis. A Z
// axis on a stepper and a piezo stage behind a DAC both implement it.
type Focus interface {
	fmt.Stringer
	Home(ctx context.Context) error
	// SetZ moves to z and returns when the focus has settled there.
	SetZ(ctx context.Context, z physic.Distance) error
	Z() (physic.Distance, error)
	Range() (min, max physic.Distance)
	Halt() error
}

// AxisFocus adapts a stepper Axis to Focus.
type AxisFocus struct{ Axis }

var _ Focus = AxisFocus{}

// SetZ implements Focus.
func (f AxisFocus) SetZ(ctx context.Context, z physic.Distance) error {
	return MoveTo(ctx, f.Axis, z)
}

// Z implements Focus.
func (f AxisFocus) Z() (physic.Distance, error) { return f.Position() }

// Range implements Focus.
func (f AxisFocus) Range() (min, max physic.Distance) { return f.Travel() }

// Camera delivers decoded colour frames. Capture exposes one frame and
// decodes it into dst, which it (re)allocates when its bounds do not match
// the camera's frame size, so a caller that reuses dst allocates nothing per
// frame.
type Camera interface {
	fmt.Stringer
	Capture(ctx context.Context, dst *image.RGBA) (*image.RGBA, error)
	// Size is the frame size in pixels.
	Size() (w, h int)
	// PixelSize is the size of one pixel projected onto the specimen.
	PixelSize() physic.Distance
}

// Light is the transmitted-light illumination.
type Light interface {
	fmt.Stringer
	// SetBrightness sets the relative brightness, 0 (off) to 1 (full).
	SetBrightness(level float64) error
	Brightness() float64
}

// Pattern is what an indicator LED shows.
type Pattern int

// LED patterns.
const (
	Off Pattern = iota
	On
	BlinkSlow // 1 Hz, 50 % duty
	BlinkFast // 4 Hz, 50 % duty
)

func (p Pattern) String() string {
	switch p {
	case Off:
		return "off"
	case On:
		return "on"
	case BlinkSlow:
		return "blink-slow"
	case BlinkFast:
		return "blink-fast"
	}
	return fmt.Sprintf("Pattern(%d)", int(p))
}

// Indicator is one status LED on the technician panel.
type Indicator interface {
	fmt.Stringer
	Show(p Pattern) error
	Pattern() Pattern
}

// Press is a debounced button event.
type Press struct {
	Button string
	Long   bool // held longer than the long-press threshold
	At     time.Time
}

// Buttons delivers debounced presses from the technician panel.
type Buttons interface {
	// Presses returns the channel of presses; it is closed when ctx passed
	// to the driver's Run ends.
	Presses() <-chan Press
}

// SlideLoader moves slides between the magazine and the stage.
type SlideLoader interface {
	fmt.Stringer
	// Slots is the number of magazine slots.
	Slots() int
	// Occupied reports whether slot holds a slide.
	Occupied(slot int) (bool, error)
	// Load moves the slide in slot onto the stage. It returns ErrNoSlide if
	// the slot is empty.
	Load(ctx context.Context, slot int) error
	// Unload returns the slide on the stage to the slot it came from.
	Unload(ctx context.Context) error
}

// V4L2 pixel formats (fourcc codes) the camera decoder understands.
const (
	PixFmtYUYV uint32 = 'Y' | 'U'<<8 | 'Y'<<16 | 'V'<<24
	PixFmtRGB3 uint32 = 'R' | 'G'<<8 | 'B'<<16 | '3'<<24
)

// FourCC renders a V4L2 fourcc code as its four characters.
func FourCC(code uint32) string {
	return string([]byte{byte(code), byte(code >> 8), byte(code >> 16), byte(code >> 24)})
}

// FrameSource is a camera at the wire: it hands out raw frames in a V4L2
// pixel format, exactly as the kernel's video4linux driver delivers them. The
// V4L2 driver (hal/v4l2) and the simulated camera (hal/sim) implement it, and
// hal/camera decodes it, so the decode path is the same on the robot and in
// simulation. A FrameSource is owned by one goroutine.
type FrameSource interface {
	fmt.Stringer
	// Format is the negotiated pixel format and frame size.
	Format() (fourcc uint32, w, h int)
	// ReadFrame waits for the next frame and copies its raw bytes into dst,
	// growing it if needed, and returns the filled slice. The bytes belong to
	// the caller.
	ReadFrame(ctx context.Context, dst []byte) ([]byte, error)
	Close() error
}

// FocusAxis adapts a Focus (a piezo behind a DAC) to Axis, so that jog and
// park drive every focus driver alike: Start records the target (checked
// against the range), Wait moves there with SetZ. Homed asks the focus
// when it can tell (interface{ Homed() bool }), else reports true.
type FocusAxis struct {
	Focus
	mu     sync.Mutex
	target physic.Distance
	moving bool
}

var _ Axis = (*FocusAxis)(nil)

// Homed implements Axis.
func (f *FocusAxis) Homed() bool {
	if h, ok := f.Focus.(interface{ Homed() bool }); ok {
		return h.Homed()
	}
	return true
}

// Start implements Axis.
func (f *FocusAxis) Start(target physic.Distance) error {
	lo, hi := f.Range()
	if target < lo || target > hi {
		return fmt.Errorf("%s: %s outside %s..%s: %w", f, target, lo, hi, ErrOutOfTravel)
	}
	if !f.Homed() {
		return fmt.Errorf("%s: %w", f, ErrNotHomed)
	}
	f.mu.Lock()
	f.target, f.moving = target, true
	f.mu.Unlock()
	return nil
}

// Wait implements Axis.
func (f *FocusAxis) Wait(ctx context.Context) error {
	f.mu.Lock()
	target, moving := f.target, f.moving
	f.moving = false
	f.mu.Unlock()
	if !moving {
		return nil
	}
	return f.SetZ(ctx, target)
}

// Position implements Axis.
func (f *FocusAxis) Position() (physic.Distance, error) { return f.Z() }

// Travel implements Axis.
func (f *FocusAxis) Travel() (min, max physic.Distance) { return f.Range() }
