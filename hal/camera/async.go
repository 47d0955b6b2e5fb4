package camera

import (
	"context"
	"errors"
	"fmt"
	"image"
	"sync"

	"papscan/hal"
)

// AsyncOptions configure an Async camera. Zero fields take defaults.
type AsyncOptions struct {
	// Workers is the number of decode goroutines; default 1.
	Workers int
	// Depth is how many frames may be read and not yet released
	// (Frame.Release): raw buffers in flight; default Workers+2. Grab
	// waits for a release when Depth frames are out, so memory stays
	// flat.
	Depth int
}

// Async reads a frame source on the caller's goroutine and decodes its
// frames on a small pool of decode goroutines, so that reading the next
// frame never waits for the last one's decode (an MJPEG frame takes
// 13–23 ms to decode on one core: see BENCHMARKS.md). Grab returns at once
// after the raw read with a Frame whose Wait gives the decoded image;
// frames are decoded concurrently and each waits for its own, so a
// consumer that waits in grab order gets them in order. Like the source,
// Grab is owned by one goroutine; Frame.Wait and Frame.Release may be
// called from another.
type Async struct {
	src  hal.FrameSource
	opts AsyncOptions
	name string

	jobs chan *Frame
	free chan *Frame // released frames, their raw and decoded buffers kept
	wg   sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

// Frame is one grabbed frame: its timing (taken at the read), then, once
// decoded, its image.
type Frame struct {
	info hal.FrameInfo

	a      *Async
	raw    []byte
	img    *image.RGBA
	err    error
	fourcc uint32
	w, h   int
	done   chan struct{}
}

// NewAsync starts the decode pool on src. Close stops it.
func NewAsync(src hal.FrameSource, o AsyncOptions) *Async {
	if o.Workers <= 0 {
		o.Workers = 1
	}
	if o.Depth <= 0 {
		o.Depth = o.Workers + 2
	}
	a := &Async{src: src, opts: o, name: src.String(), jobs: make(chan *Frame, o.Depth), free: make(chan *Frame, o.Depth)}
	for range o.Depth {
		a.free <- &Frame{a: a}
	}
	for range o.Workers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			for f := range a.jobs {
				f.img, f.err = Decode(f.img, f.raw, f.fourcc, f.w, f.h)
				if f.err != nil {
					f.err = fmt.Errorf("camera %s: %w", a.name, f.err)
				}
				close(f.done)
			}
		}()
	}
	return a
}

// String names the camera.
func (a *Async) String() string { return a.name }

// Grab reads the next raw frame from the source (waiting only for the
// camera, and for a released buffer when Depth frames are out) and queues
// its decode. Source errors are returned wrapped, as Capture wraps them.
func (a *Async) Grab(ctx context.Context) (*Frame, error) {
	a.mu.Lock()
	closed := a.closed
	a.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("camera %s: %w", a.name, ErrClosed)
	}
	var f *Frame
	select {
	case f = <-a.free:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	fourcc, w, h := a.src.Format()
	if _, err := FrameBytes(fourcc, w, h); err != nil {
		a.free <- f
		return nil, fmt.Errorf("camera %s: %w", a.name, err)
	}
	raw, err := a.src.ReadFrame(ctx, f.raw[:0])
	f.raw = raw
	if err != nil {
		a.free <- f
		return nil, fmt.Errorf("camera %s: capture: %w", a.name, err)
	}
	f.info = hal.FrameInfo{}
	if t, ok := a.src.(hal.FrameTimer); ok {
		f.info = t.LastFrame()
	}
	f.fourcc, f.w, f.h, f.err = fourcc, w, h, nil
	f.done = make(chan struct{})
	a.jobs <- f // never blocks: at most Depth frames exist
	return f, nil
}

var _ hal.GrabbedFrame = (*Frame)(nil)

// Info is the source's timing of the frame (hal.FrameTimer), read right
// after the raw read; zero when the source gives none.
func (f *Frame) Info() hal.FrameInfo { return f.info }

// Wait waits for the frame's decode and returns the image (owned by the
// frame until Release) or the decode error.
func (f *Frame) Wait(ctx context.Context) (*image.RGBA, error) {
	select {
	case <-f.done:
		return f.img, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Release waits for the decode to end and hands the frame's buffers back
// for a later Grab; the image must not be used after it.
func (f *Frame) Release() {
	<-f.done
	f.a.free <- f
}

// ErrClosed is returned by Grab after Close.
var ErrClosed = errors.New("camera: async decode closed")

// Close stops the decode goroutines after the queued decodes; it does not
// close the source. Later Grabs fail with ErrClosed. Call it from the
// goroutine that grabs.
func (a *Async) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.closed = true
	a.mu.Unlock()
	close(a.jobs)
	a.wg.Wait()
}
