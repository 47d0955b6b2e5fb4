//go:build linux

package v4l2

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/blackjack/webcam"
)

// V4L2 control IDs (linux/v4l2-controls.h). The library defines only a few,
// so the ones papscan uses are spelled out here.
const (
	CIDBrightness       uint32 = 0x00980900 // V4L2_CID_BRIGHTNESS
	CIDContrast         uint32 = 0x00980901 // V4L2_CID_CONTRAST
	CIDAutoGain         uint32 = 0x00980912 // V4L2_CID_AUTOGAIN
	CIDGain             uint32 = 0x00980913 // V4L2_CID_GAIN
	CIDExposureAuto     uint32 = 0x009a0901 // V4L2_CID_EXPOSURE_AUTO (menu)
	CIDExposureAbsolute uint32 = 0x009a0902 // V4L2_CID_EXPOSURE_ABSOLUTE, 100 µs units
	CIDFocusAbsolute    uint32 = 0x009a090a // V4L2_CID_FOCUS_ABSOLUTE

	// ExposureManual is V4L2_EXPOSURE_MANUAL, the CIDExposureAuto value
	// that lets CIDExposureAbsolute take effect.
	ExposureManual int32 = 1
	// ExposureUnit is the unit of CIDExposureAbsolute.
	ExposureUnit = 100 * time.Microsecond
)

// Control is one V4L2 control value to set when the device is opened.
type Control struct {
	ID    uint32
	Name  string // for errors; e.g. "gain"
	Value int32
}

// controlNames of the IDs above, for errors.
var controlNames = map[uint32]string{
	CIDBrightness: "brightness", CIDContrast: "contrast", CIDAutoGain: "autogain", CIDGain: "gain",
	CIDExposureAuto: "exposure_auto", CIDExposureAbsolute: "exposure_absolute", CIDFocusAbsolute: "focus_absolute",
}

// ControlName is the name of a known control ID, or its hex form.
func ControlName(id uint32) string {
	if n, ok := controlNames[id]; ok {
		return n
	}
	return fmt.Sprintf("0x%08x", id)
}

// controlDevice is the part of *webcam.Webcam the control logic uses, so it
// can be tested without a device.
type controlDevice interface {
	GetControls() map[webcam.ControlID]webcam.Control
	GetControl(id webcam.ControlID) (int32, error)
	SetControl(id webcam.ControlID, value int32) error
}

// wantControls turns the exposure and gain options into the control writes
// that realise them, in order (automatic mode off before the manual value).
func wantControls(opts Options, offered map[webcam.ControlID]webcam.Control) ([]Control, error) {
	var out []Control
	if opts.Exposure > 0 {
		units := int64(opts.Exposure / ExposureUnit)
		if units < 1 || units > 1<<31-1 {
			return nil, fmt.Errorf("exposure %v: outside what V4L2 can express (100µs .. 59h)", opts.Exposure)
		}
		if _, ok := offered[webcam.ControlID(CIDExposureAuto)]; ok {
			out = append(out, Control{ID: CIDExposureAuto, Name: "exposure_auto", Value: ExposureManual})
		}
		out = append(out, Control{ID: CIDExposureAbsolute, Name: "exposure", Value: int32(units)})
	}
	if opts.Gain > 0 {
		if _, ok := offered[webcam.ControlID(CIDAutoGain)]; ok {
			out = append(out, Control{ID: CIDAutoGain, Name: "autogain", Value: 0})
		}
		out = append(out, Control{ID: CIDGain, Name: "gain", Value: opts.Gain})
	}
	return append(out, opts.Controls...), nil
}

// applyControls checks every control against what the device offers and
// sets it. It returns the values the device reports back (a driver may
// round to its step). An unsupported control or a value outside the
// device's range is an error that lists what the device offers.
func applyControls(dev controlDevice, want []Control) (map[uint32]int32, error) {
	if len(want) == 0 {
		return nil, nil
	}
	offered := dev.GetControls()
	got := make(map[uint32]int32, len(want))
	for _, c := range want {
		name := c.Name
		if name == "" {
			name = ControlName(c.ID)
		}
		info, ok := offered[webcam.ControlID(c.ID)]
		if !ok {
			return got, fmt.Errorf("control %s (0x%08x) not supported; the device offers %s", name, c.ID, describeControls(offered))
		}
		if c.Value < info.Min || c.Value > info.Max {
			return got, fmt.Errorf("control %s (%q): value %d outside the device's range [%d, %d]", name, info.Name, c.Value, info.Min, info.Max)
		}
		if err := dev.SetControl(webcam.ControlID(c.ID), c.Value); err != nil {
			if errors.Is(err, syscall.EACCES) {
				return got, fmt.Errorf("control %s: set %d: read-only or inactive (is its automatic mode on?): %w", name, c.Value, err)
			}
			return got, fmt.Errorf("control %s: set %d: %w", name, c.Value, err)
		}
		v, err := dev.GetControl(webcam.ControlID(c.ID))
		if err != nil {
			return got, fmt.Errorf("control %s: read back: %w", name, err)
		}
		got[c.ID] = v
	}
	return got, nil
}

func describeControls(offered map[webcam.ControlID]webcam.Control) string {
	if len(offered) == 0 {
		return "no controls"
	}
	var out []string
	for id, c := range offered {
		out = append(out, fmt.Sprintf("%q (0x%08x, %d..%d)", c.Name, uint32(id), c.Min, c.Max))
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}
