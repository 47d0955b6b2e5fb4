//go:build linux

package v4l2

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/blackjack/webcam"

	"papscan/hal"
)

func TestOpenMissingDevice(t *testing.T) {
	dev := filepath.Join(t.TempDir(), "video9")
	_, err := Open(dev, Options{Width: 640, Height: 480})
	if err == nil {
		t.Fatal("opened a missing device")
	}
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, syscall.ENOENT) {
		t.Errorf("error does not wrap ENOENT: %v", err)
	}
	if !strings.Contains(err.Error(), dev) {
		t.Errorf("error does not name the device: %v", err)
	}
}

func TestOpenNotAVideoDevice(t *testing.T) {
	f := filepath.Join(t.TempDir(), "plain")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(f, Options{Width: 640, Height: 480})
	if err == nil || !strings.Contains(err.Error(), f) {
		t.Fatalf("opening a plain file: %v", err)
	}
	// VIDIOC_QUERYCAP on a regular file fails with ENOTTY. Under
	// qemu-user (scripts/qemu-user.sh) the emulator does not translate
	// V4L2 ioctls and answers ENOSYS itself.
	if !errors.Is(err, syscall.ENOTTY) && !errors.Is(err, syscall.ENOSYS) {
		t.Errorf("error does not wrap ENOTTY: %v", err)
	}
}

func TestOpenNeedsSize(t *testing.T) {
	_, err := Open("/dev/null", Options{})
	if err == nil || !strings.Contains(err.Error(), "required") {
		t.Fatalf("missing size: %v", err)
	}
	// 65536² YUYV would overflow a 32-bit int frame length.
	_, err = Open("/dev/null", Options{Width: 65536, Height: 65536})
	if err == nil || !strings.Contains(err.Error(), "at most 16384") {
		t.Fatalf("huge size: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	got := describeFormats(map[webcam.PixelFormat]string{
		webcam.PixelFormat(hal.PixFmtYUYV):                   "YUYV 4:2:2",
		webcam.PixelFormat('M' | 'J'<<8 | 'P'<<16 | 'G'<<24): "Motion-JPEG",
	})
	if got != "MJPG (Motion-JPEG), YUYV (YUYV 4:2:2)" {
		t.Errorf("describeFormats = %q", got)
	}
	sizes := []webcam.FrameSize{
		{MinWidth: 640, MaxWidth: 640, MinHeight: 480, MaxHeight: 480},
		{MinWidth: 16, MaxWidth: 1920, StepWidth: 16, MinHeight: 16, MaxHeight: 1080, StepHeight: 8},
	}
	if !sizeSupported(sizes[:1], 640, 480) || sizeSupported(sizes[:1], 1280, 960) {
		t.Error("discrete size check wrong")
	}
	if !sizeSupported(sizes[1:], 1280, 960) || sizeSupported(sizes[1:], 1281, 960) {
		t.Error("stepwise size check wrong")
	}
	if d := describeSizes(sizes); d != "640x480, 16x16..1920x1080" {
		t.Errorf("describeSizes = %q", d)
	}
}

func TestClosedSource(t *testing.T) {
	s := &Source{dev: "/dev/video0", fourcc: hal.PixFmtYUYV, w: 2, h: 2}
	if _, err := s.ReadFrame(t.Context(), nil); !errors.Is(err, syscall.EBADF) {
		t.Errorf("read on closed source: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if frameLen(hal.PixFmtYUYV, 640, 480) != 614400 || frameLen(hal.PixFmtRGB3, 2, 2) != 12 {
		t.Error("frame lengths wrong")
	}
}
