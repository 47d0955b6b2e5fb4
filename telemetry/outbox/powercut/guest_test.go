//go:build powercut_guest && linux

package powercut

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"papscan/internal/vmguest"
)

// The guest's flags come from the kernel command line (after "--").
var (
	mode    = flag.String("mode", "commit", "commit (until killed), verify or deliver")
	boot    = flag.Int("boot", 0, "boot number (result IDs carry it)")
	maxN    = flag.Int("max", 100000, "results to commit at most")
	console = flag.String("console", "/dev/ttyS0", "serial console of the VM")
	mountOp = flag.String("mount", "", "ext4 mount options (the negative control: barrier=0)")
	broker  = flag.String("broker", "", "deliver: the fleet's MQTT broker (qemu user networking: the host is 10.0.2.2)")
	ackKey  = flag.String("ackkey", "", "deliver: the fleet receiver's public key (agent.mqtt.ack_keys)")
	sendFor = flag.Duration("wait", 10*time.Minute, "deliver: how long to wait for the fleet's acks")
)

const (
	disk  = "/dev/vda"
	mnt   = "/data"
	state = mnt + "/state"
)

// TestMain is the VM's /init: it mounts the disk under test and runs
// Commit or Verify, then powers the VM off (a commit run normally ends
// killed by the host first).
func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getpid() != 1 {
		fmt.Println("powercut: the guest runs as PID 1 inside the VM; use scripts/vm/powercut.sh")
		os.Exit(0)
	}
	if err := run(); err != nil {
		fmt.Printf("\nPOWERCUT-ERROR: %s\n", strings.Join(strings.Fields(err.Error()), " "))
	}
	if err := vmguest.PowerOff(); err != nil {
		fmt.Fprintf(os.Stderr, "power off: %v\n", err)
	}
	os.Exit(1)
}

func run() error {
	if err := vmguest.Init(*console); err != nil {
		return err
	}
	start := time.Now()
	if _, err := vmguest.LoadModules("/modules"); err != nil {
		return err
	}
	if err := vmguest.WaitFor(disk, 60*time.Second); err != nil {
		return err
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	// ext4 with its defaults (data=ordered, barriers on), as on the robot.
	if err := unix.Mount(disk, mnt, "ext4", 0, *mountOp); err != nil {
		return fmt.Errorf("mount %s: %w", disk, err)
	}
	fmt.Printf("powercut: %s mounted in %v (%s boot %d)\n", disk, time.Since(start).Round(time.Millisecond), *mode, *boot)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	o := Options{StateDir: state, Boot: *boot, Max: *maxN, Out: os.Stdout, Log: log, Broker: *broker, AckKey: *ackKey}
	ctx := context.Background()
	switch *mode {
	case "commit":
		if err := Commit(ctx, o); err != nil {
			return err
		}
	case "verify":
		if err := Verify(ctx, o); err != nil {
			return err
		}
	case "deliver":
		// qemu's user networking: the guest is 10.0.2.15/24, the host's
		// loopback 10.0.2.2 (on-link, no route needed).
		if err := vmguest.WaitFor("/sys/class/net/eth0", 60*time.Second); err != nil {
			return err
		}
		if err := vmguest.IfUp("eth0", netip.MustParsePrefix("10.0.2.15/24")); err != nil {
			return err
		}
		sctx, cancel := context.WithTimeout(ctx, *sendFor)
		defer cancel()
		if err := Send(sctx, o); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown -mode %q", *mode)
	}
	return unix.Unmount(mnt, 0)
}
