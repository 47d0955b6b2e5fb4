//go:build linux

package v4l2

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/blackjack/webcam"
)

// fakeControls is a device with a few controls; its gain rounds down to
// a step of 2 like a driver with a coarse control would.
type fakeControls struct {
	offered map[webcam.ControlID]webcam.Control
	values  map[webcam.ControlID]int32
	writes  []uint32
	fail    map[uint32]error
}

func (f *fakeControls) GetControls() map[webcam.ControlID]webcam.Control { return f.offered }
func (f *fakeControls) GetControl(id webcam.ControlID) (int32, error) {
	return f.values[id], nil
}
func (f *fakeControls) SetControl(id webcam.ControlID, v int32) error {
	if err := f.fail[uint32(id)]; err != nil {
		return err
	}
	f.writes = append(f.writes, uint32(id))
	if uint32(id) == CIDGain {
		v &^= 1 // a coarse gain control
	}
	f.values[id] = v
	return nil
}

func newFake() *fakeControls {
	return &fakeControls{
		offered: map[webcam.ControlID]webcam.Control{
			webcam.ControlID(CIDExposureAuto):     {Name: "Auto Exposure", Min: 0, Max: 3},
			webcam.ControlID(CIDExposureAbsolute): {Name: "Exposure Time, Absolute", Min: 3, Max: 2047},
			webcam.ControlID(CIDGain):             {Name: "Gain", Min: 0, Max: 255},
			webcam.ControlID(CIDBrightness):       {Name: "Brightness", Min: -64, Max: 64},
		},
		values: map[webcam.ControlID]int32{},
		fail:   map[uint32]error{},
	}
}

func TestExposureAndGain(t *testing.T) {
	dev := newFake()
	want, err := wantControls(Options{Exposure: 10 * time.Millisecond, Gain: 33}, dev.GetControls())
	if err != nil {
		t.Fatal(err)
	}
	got, err := applyControls(dev, want)
	if err != nil {
		t.Fatal(err)
	}
	// Manual exposure mode before the exposure time; no autogain control
	// on this device, so only the gain.
	if w := dev.writes; len(w) != 3 || w[0] != CIDExposureAuto || w[1] != CIDExposureAbsolute || w[2] != CIDGain {
		t.Errorf("writes %x", w)
	}
	if got[CIDExposureAbsolute] != 100 || got[CIDExposureAuto] != ExposureManual || got[CIDGain] != 32 {
		t.Errorf("read back %v (gain rounded by the driver to 32)", got)
	}
}

func TestUnsupportedControl(t *testing.T) {
	dev := newFake()
	delete(dev.offered, webcam.ControlID(CIDExposureAbsolute))
	want, _ := wantControls(Options{Exposure: 5 * time.Millisecond}, dev.GetControls())
	_, err := applyControls(dev, want)
	if err == nil {
		t.Fatal("unsupported exposure accepted")
	}
	for _, s := range []string{"exposure", "0x009a0902", "not supported", `"Brightness" (0x00980900, -64..64)`, `"Gain"`} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
}

func TestControlRangeAndWriteErrors(t *testing.T) {
	dev := newFake()
	_, err := applyControls(dev, []Control{{ID: CIDGain, Name: "gain", Value: 300}})
	if err == nil || !strings.Contains(err.Error(), "outside the device's range [0, 255]") {
		t.Errorf("out of range: %v", err)
	}
	if _, err := wantControls(Options{Exposure: time.Microsecond}, dev.offered); err == nil {
		t.Error("sub-unit exposure accepted")
	}
	dev.fail[CIDGain] = syscall.EACCES
	_, err = applyControls(dev, []Control{{ID: CIDGain, Value: 3}})
	if !errors.Is(err, syscall.EACCES) || !strings.Contains(err.Error(), "automatic mode") {
		t.Errorf("inactive control: %v", err)
	}
	if got, err := applyControls(dev, nil); got != nil || err != nil {
		t.Error("no controls should touch nothing")
	}
	if ControlName(CIDGain) != "gain" || ControlName(0x00f0f041) != "0x00f0f041" {
		t.Error("control names")
	}
}

func TestReleaseBuffersField(t *testing.T) {
	// A never-started handle has no buffers: nothing to unmap, but the
	// field must exist for the failed-start cleanup to work.
	if err := releaseBuffers(&webcam.Webcam{}); err != nil {
		t.Fatal(err)
	}
}
