package camera

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"papscan/hal"
)

// Opener opens the camera's frame source, streaming; Recovering calls it
// once at start and again after the camera failed.
type Opener func(ctx context.Context) (hal.FrameSource, error)

// RecoverOptions configure NewRecovering. Zero fields take defaults.
type RecoverOptions struct {
	// Device names the camera in faults and logs; default "camera".
	Device string
	// Attempts is how many times a failed camera is reopened before the
	// fault latches; default 5.
	Attempts int
	// Backoff is the wait before the first reopen; it doubles after every
	// failed attempt up to MaxBackoff. Defaults 200 ms and 5 s.
	Backoff, MaxBackoff time.Duration
	// Clock times the backoff; default hal.SystemClock.
	Clock hal.Clock
	// Log receives a line per failure and reopen; default slog.Default().
	Log *slog.Logger
}

// Recovering is a hal.FrameSource that survives a camera that drops off
// the bus or stalls: when a read fails with ENODEV, ENXIO, ENOENT, EIO or
// hal.ErrTimeout it closes the source and reopens it with exponential
// backoff, then reads again. When the camera stays gone for
// RecoverOptions.Attempts reopens it latches a *hal.Fault (device
// "camera", hal.FaultCamera) that every later read returns until
// ClearFault. Any other error (a bad frame, a cancelled context) is
// returned as is, without reopening.
//
// Like its source a Recovering is owned by one goroutine.
type Recovering struct {
	open   Opener
	opts   RecoverOptions
	src    hal.FrameSource // nil while closed
	name   string
	four   uint32
	w, h   int
	closed bool

	// fault is the latched fault; faultMu guards it because the agent
	// reads and clears it (hal.Latching) from another goroutine than the
	// one that owns the camera.
	faultMu sync.Mutex
	fault   *hal.Fault

	reopens int // successful reopens, for telemetry

	// The current outage: reopen attempts made since the last good frame,
	// the next backoff, when it began and what started it. A reopen that
	// works but whose source fails again before delivering a frame (a
	// stalled camera) does not end the outage.
	attempt int
	delay   time.Duration
	since   time.Time
	first   error

	trigger Trigger // fired before every read attempt; nil: free-running
}

// SetTrigger puts the camera in external-trigger mode: every read
// attempt, also one retried after a reopen, first fires t (a
// TriggerLine). A camera that gives no frame after its trigger times out
// like a stalled one, and after the reopen attempts latches the camera
// fault: a trigger that never brings a frame is a camera fault. Call it
// before the first read.
func (r *Recovering) SetTrigger(t Trigger) { r.trigger = t }

var (
	_ hal.FrameSource = (*Recovering)(nil)
	_ hal.Latching    = (*Recovering)(nil)
)

// NewRecovering opens the camera through open, retrying like a read would
// when the first open fails with one of the errors above (the camera may
// still be enumerating). A configuration error (unsupported format, size
// or control) is returned at once.
func NewRecovering(ctx context.Context, open Opener, opts RecoverOptions) (*Recovering, error) {
	if opts.Device == "" {
		opts.Device = "camera"
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 5
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff < opts.Backoff {
		opts.MaxBackoff = max(opts.Backoff, 5*time.Second)
	}
	if opts.Clock == nil {
		opts.Clock = hal.SystemClock{}
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	r := &Recovering{open: open, opts: opts, name: opts.Device}
	src, err := open(ctx)
	if err != nil {
		if !Recoverable(err) || ctx.Err() != nil {
			return nil, fmt.Errorf("%s: open: %w", opts.Device, err)
		}
		if err = r.reopen(ctx, err); err != nil {
			return nil, err
		}
	} else {
		r.src = src
	}
	r.four, r.w, r.h = r.src.Format()
	r.name = r.src.String()
	return r, nil
}

// Recoverable reports whether err means the camera went away or stalled,
// so that closing and reopening it may help: ENODEV, ENXIO, ENOENT (the
// device node vanished while the camera re-enumerates), EIO and
// hal.ErrTimeout.
func Recoverable(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) ||
		errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EIO) ||
		errors.Is(err, hal.ErrTimeout)
}

// String implements hal.FrameSource.
func (r *Recovering) String() string { return r.name }

// Format implements hal.FrameSource: the format negotiated at the first
// open. A reopen negotiates the same.
func (r *Recovering) Format() (fourcc uint32, w, h int) { return r.four, r.w, r.h }

// Reopens is the number of successful reopens so far.
func (r *Recovering) Reopens() int { return r.reopens }

// Fault implements hal.Latching: the latched *hal.Fault, or nil.
func (r *Recovering) Fault() error {
	if f := r.latched(); f != nil {
		return f
	}
	return nil
}

func (r *Recovering) latched() *hal.Fault {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	return r.fault
}

func (r *Recovering) setFault(f *hal.Fault) *hal.Fault {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	r.fault = f
	return f
}

// ClearFault implements hal.Latching, the technician's acknowledge: the
// next read tries to open the camera again. It is safe to call from any
// goroutine.
func (r *Recovering) ClearFault() error {
	r.setFault(nil)
	return nil
}

// LastFrame implements hal.FrameTimer when the open source does; with a
// trigger (SetTrigger) its timestamp is the trigger's edge.
func (r *Recovering) LastFrame() hal.FrameInfo {
	if r.trigger != nil && r.src != nil {
		return triggeredInfo(r.src, r.trigger)
	}
	if t, ok := r.src.(hal.FrameTimer); ok && r.src != nil {
		return t.LastFrame()
	}
	return hal.FrameInfo{}
}

// ReadFrame implements hal.FrameSource.
func (r *Recovering) ReadFrame(ctx context.Context, dst []byte) ([]byte, error) {
	if r.closed {
		return dst[:0], fmt.Errorf("%s: read frame: closed: %w", r.name, syscall.EBADF)
	}
	if f := r.latched(); f != nil {
		return dst[:0], f
	}
	if r.src == nil { // after ClearFault
		if err := r.reopen(ctx, errors.New("fault cleared")); err != nil {
			return dst[:0], err
		}
	}
	for {
		if r.trigger != nil {
			if err := r.trigger.Trigger(ctx); err != nil {
				return dst[:0], fmt.Errorf("%s: %w", r.name, err)
			}
		}
		buf, err := r.src.ReadFrame(ctx, dst)
		if err == nil {
			r.attempt = 0 // a good frame ends the outage
			return buf, nil
		}
		dst = buf
		if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
			return dst[:0], fmt.Errorf("%w (camera: %v)", cerr, err)
		}
		if ctx.Err() != nil || !Recoverable(err) {
			return dst[:0], err
		}
		r.opts.Log.Warn("camera failed; reopening", "camera", r.name, "err", err)
		if cerr := r.src.Close(); cerr != nil {
			r.opts.Log.Debug("camera close after failure", "camera", r.name, "err", cerr)
		}
		r.src = nil
		if err := r.reopen(ctx, err); err != nil {
			return dst[:0], err
		}
	}
}

// reopen opens the source again with backoff. cause is the failure that
// made the camera close. Attempts count from the last good frame, so a
// camera that reopens but never delivers still runs out of attempts. When
// they are used up it latches and returns the fault; a cancelled ctx
// returns ctx.Err().
func (r *Recovering) reopen(ctx context.Context, cause error) error {
	if r.attempt == 0 {
		r.delay, r.since, r.first = r.opts.Backoff, r.opts.Clock.Now(), cause
	}
	last := cause
	for r.attempt < r.opts.Attempts {
		r.attempt++
		if err := r.opts.Clock.Sleep(ctx, r.delay); err != nil {
			return err
		}
		r.delay = min(2*r.delay, r.opts.MaxBackoff)
		src, err := r.open(ctx)
		if err == nil {
			if f, w, h := src.Format(); r.w != 0 && (f != r.four || w != r.w || h != r.h) {
				_ = src.Close()
				err = fmt.Errorf("reopened with %s %dx%d, not %s %dx%d", hal.FourCC(f), w, h, hal.FourCC(r.four), r.w, r.h)
				r.attempt = 0
				return r.setFault(hal.NewFault(r.opts.Device, hal.FaultCamera, err))
			}
			r.src = src
			r.reopens++
			r.opts.Log.Info("camera reopened", "camera", r.name, "attempt", r.attempt, "of", r.opts.Attempts)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		last = err
		r.opts.Log.Warn("camera reopen failed", "camera", r.name, "attempt", r.attempt, "of", r.opts.Attempts, "err", err)
	}
	f := hal.NewFault(r.opts.Device, hal.FaultCamera,
		fmt.Errorf("no working camera after %d reopen attempts over %v (first failure: %v): %w",
			r.opts.Attempts, r.opts.Clock.Now().Sub(r.since), r.first, last))
	r.attempt = 0
	return r.setFault(f)
}

// Close implements hal.FrameSource.
func (r *Recovering) Close() error {
	r.closed = true
	if r.src == nil {
		return nil
	}
	err := r.src.Close()
	r.src = nil
	return err
}
