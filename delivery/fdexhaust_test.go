package delivery

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/scan"
	"papscan/telemetry"
	"papscan/telemetry/outbox"
)

// TestResultWriteFDExhaustionIsNoStorageFault (issue 15, finding 4,
// delivery part): with the file descriptors used up (20,000 idle
// connections on the status socket), the slide's result.json write
// failed with EMFILE and the deliverer latched storage fault 9. Running
// out of descriptors says nothing about the disk: the result is still
// committed to the outbox, no fault is latched and the next slide is
// admitted; a real storage error (EIO) still latches.
func TestResultWriteFDExhaustionIsNoStorageFault(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := config.Default()
	cfg.Agent.StateDir = t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk, err := OpenWith(ctx, cfg, []string{"tcp://" + freeAddr(t)}, log, func(o *telemetry.Options) { o.Background = true },
		func(o *outbox.Options) { o.FreeSpace = func(string) (uint64, error) { return 1 << 40, nil } })
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close(ctx)
	d := &Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE} {
		d.writeFiles = func(r *scan.Report, dir string) (scan.Files, error) {
			return scan.Files{}, &os.PathError{Op: "open", Path: dir + "/result.json", Err: errno}
		}
		before := d.Depth()
		if err := d.Deliver(ctx, &scan.Report{SlideID: "M0001-S" + strconv.Itoa(int(errno)), ResultID: "r-" + strconv.Itoa(int(errno)), Verdict: "NILM"}); err != nil {
			t.Fatalf("%v: deliver: %v", errno, err)
		}
		if d.Depth() != before+1 {
			t.Fatalf("%v: result not committed to the outbox (depth %d -> %d)", errno, before, d.Depth())
		}
		if err := d.Admit(ctx); err != nil {
			t.Fatalf("%v: next slide refused: %v", errno, err)
		}
		var h telemetry.Health
		lk.fillHealth(&h, cfg.Agent.StateDir)
		if len(h.Faults) != 0 || h.Stage == "fault" {
			t.Fatalf("%v latched a fault: %+v", errno, h)
		}
	}
	d.writeFiles = func(r *scan.Report, dir string) (scan.Files, error) {
		return scan.Files{}, &os.PathError{Op: "write", Path: dir + "/result.json", Err: syscall.EIO}
	}
	err = d.Deliver(ctx, &scan.Report{SlideID: "M0001-S01", ResultID: "r-eio", Verdict: "NILM"})
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultStorage {
		t.Fatalf("EIO: %v, want a storage fault", err)
	}
}
