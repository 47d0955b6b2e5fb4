//go:build linux

package v4l2

import (
	"fmt"
	"reflect"

	"github.com/blackjack/webcam"
	"golang.org/x/sys/unix"
)

// releaseBuffers unmaps the capture buffers webcam.StartStreaming mapped
// when it failed part-way (REQBUFS and mmap done, STREAMON refused).
// webcam v0.6.1 leaves them mapped in that case, and Close does not unmap
// them either because the stream never started. A mapping holds the
// device's file open in the kernel, so the closed handle keeps owning the
// buffer queue and every later open fails with EBUSY until the process
// exits: the camera could never be reopened. (Found by the vivid VM test,
// which injects a STREAMON error.)
//
// The library keeps the mappings in an unexported field; reflect reads it
// without unsafe. TestReleaseBuffersField fails if a library upgrade
// renames it.
func releaseBuffers(cam *webcam.Webcam) error {
	bufs := reflect.ValueOf(cam).Elem().FieldByName("buffers")
	if !bufs.IsValid() || bufs.Kind() != reflect.Slice || bufs.Type().Elem().Kind() != reflect.Slice {
		return fmt.Errorf("webcam.Webcam has no buffers [][]byte field: cannot unmap after a failed start")
	}
	var first error
	for i := 0; i < bufs.Len(); i++ {
		b := bufs.Index(i).Bytes()
		if len(b) == 0 {
			continue
		}
		if err := unix.Munmap(b); err != nil && first == nil {
			first = fmt.Errorf("munmap buffer %d: %w", i, err)
		}
	}
	return first
}
