//go:build powercut && linux

package powercut

import (
	"bufio"
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"papscan/fleet"
	"papscan/telemetry"
	fleetcmd "papscan/telemetry/command"
)

// env reads a setting of the host driver (scripts/vm/powercut.sh sets them).
func env(t *testing.T, name, def string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		if def == "" {
			t.Fatalf("%s not set (run scripts/vm/powercut.sh)", name)
		}
		return def
	}
	return v
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	n, err := strconv.Atoi(env(t, name, strconv.Itoa(def)))
	if err != nil || n < 0 {
		t.Fatalf("%s: %q is not a count", name, os.Getenv(name))
	}
	return n
}

// TestPowerCut boots the guest POWERCUT_CUTS times on one ext4 disk image
// and kills qemu with SIGKILL at a random moment (up to
// POWERCUT_MAX_DELAY_MS after the first COMMITTED line), then boots it
// once more to verify, checks the file system with e2fsck and tallies the
// consoles (Tally). POWERCUT_DISK lists the cut modes, used in turn:
// kill (qemu on the image file: what qemu passed to the host stays,
// flushed or not), drop and half (the image behind Disk over NBD, a
// volatile write cache: at the cut every unflushed sector is lost, or
// each is kept with probability 1/2). Then (unless POWERCUT_DELIVER=0)
// one boot with qemu's user networking delivers the outbox to the fleet
// side running on the host (embedded broker, reference receiver signing
// its acks, SQLite) until it is empty, and checkFleet checks the store:
// every committed, unacked result once, with the body and crops Commit
// delivered. It fails, never skips: the script runs it only with a
// kernel and qemu at hand.
func TestPowerCut(t *testing.T) {
	kernel := env(t, "POWERCUT_KERNEL", "")
	initrd := env(t, "POWERCUT_INITRD", "")
	work := env(t, "POWERCUT_WORK", "")
	cuts := envInt(t, "POWERCUT_CUTS", 5)
	maxDelay := time.Duration(envInt(t, "POWERCUT_MAX_DELAY_MS", 2000)) * time.Millisecond
	seed := uint64(envInt(t, "POWERCUT_SEED", int(time.Now().UnixNano()%1e9)))
	cache := env(t, "POWERCUT_CACHE", "none")
	// A mount the cut left refused is repaired with e2fsck -p (as the
	// robot's boot should) unless POWERCUT_FSCK=0, which fails instead.
	noFsck := env(t, "POWERCUT_FSCK", "1") == "0"
	rng := rand.New(rand.NewPCG(seed, 15))
	t.Logf("seed %d, %d cuts, delay up to %v, cache=%s", seed, cuts, maxDelay, cache)

	img := filepath.Join(work, "disk.img")
	if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img, "256M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if f, err := os.OpenFile(img, os.O_RDWR|syscall.O_DIRECT, 0); err != nil && os.Getenv("POWERCUT_CACHE") == "" {
		// cache=none needs O_DIRECT (tmpfs has none). For a qemu kill the
		// cache mode makes no difference (docs/powercut.md).
		t.Logf("%s: no O_DIRECT (%v): cache=writeback", img, err)
		cache = "writeback"
	} else if err == nil {
		f.Close()
	}
	qemu := func(ctx context.Context, args, drive string, network ...string) *exec.Cmd {
		if len(network) == 0 {
			network = []string{"-net", "none"}
		}
		a := append([]string{"-accel", "tcg", "-m", "256", "-smp", "1",
			"-nographic", "-no-reboot", "-kernel", kernel, "-initrd", initrd,
			"-drive", drive + ",if=virtio,format=raw",
			"-append", "console=ttyS0 panic=-1 quiet loglevel=3 -- " + args}, network...)
		return exec.CommandContext(ctx, "qemu-system-x86_64", a...)
	}
	fileDrive := "file=" + img + ",cache=" + cache
	modes := strings.Split(env(t, "POWERCUT_DISK", "kill,drop,half"), ",")
	byMode := map[string]int{}
	var disk DiskStats
	var consoles, repairs []string
	start := time.Now()
	for i := range cuts {
		mode := modes[i%len(modes)]
		byMode[mode]++
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		drive := fileDrive
		var d *Disk
		served := make(chan error, 1)
		switch mode {
		case "kill":
			served <- nil
		case "drop", "half":
			// The disk is the NBD server's: a volatile write cache that
			// the cut empties (drop: every unflushed sector lost; half:
			// each kept with probability 1/2, in any order).
			sock := filepath.Join(work, "nbd.sock")
			_ = os.Remove(sock)
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			if d, err = OpenDisk(img); err != nil {
				t.Fatal(err)
			}
			conn := make(chan net.Conn, 1)
			go func() {
				c, err := l.Accept()
				l.Close()
				if err != nil {
					served <- err
					return
				}
				conn <- c
				served <- d.Serve(c)
			}()
			defer func() {
				select {
				case c := <-conn:
					c.Close()
				default:
				}
			}()
			drive = "file=nbd:unix:" + sock
		default:
			t.Fatalf("POWERCUT_DISK: unknown mode %q (kill, drop, half)", mode)
		}
		args := fmt.Sprintf("-mode=commit -boot=%d", i)
		if o := os.Getenv("POWERCUT_MOUNT_OPTS"); o != "" {
			args += " -mount=" + o // e.g. barrier=0: the negative control, which must fail
		}
		cmd := qemu(ctx, args, drive)
		out, first, wait := run(t, cmd)
		delay := time.Duration(rng.Int64N(int64(maxDelay) + 1))
		select {
		case <-first:
		case <-wait:
			cancel()
			c := out()
			if !needsFsck(c) || noFsck {
				t.Fatalf("boot %d ended before its first commit:\n%s", i, c)
			}
			// The mount refused the file system the cut left: a robot's
			// boot should run fsck -p on the state partition; so does the
			// test, and boots again (this boot committed nothing: not a cut).
			if err := <-served; err != nil {
				t.Fatalf("boot %d: nbd: %v", i, err)
			}
			if d != nil {
				if err := d.Close(); err != nil {
					t.Fatal(err)
				}
			}
			repairs = append(repairs, fsck(t, img, i, c))
			byMode[mode]--
			continue
		case <-time.After(10 * time.Minute): // TCG on a loaded machine: minutes
			cancel()
			<-wait
			t.Fatalf("boot %d: no COMMITTED within 10 min:\n%s", i, out())
		}
		how := fmt.Sprintf("after %v", delay.Round(time.Millisecond))
		if d != nil {
			// Cut right after a random write request, before its flush
			// (or at the delay if the guest writes too little).
			n := 1 + rng.IntN(400)
			d.ArmCut(n)
			select {
			case <-d.Tripped():
				how = fmt.Sprintf("at write %d", n)
			case <-time.After(delay + maxDelay):
			}
		} else {
			time.Sleep(delay)
		}
		if err := cmd.Process.Kill(); err != nil { // SIGKILL: the power cut
			t.Fatal(err)
		}
		<-wait
		cancel()
		if err := <-served; err != nil {
			t.Fatalf("boot %d: nbd: %v", i, err)
		}
		note := ""
		if d != nil {
			var keep func() bool
			if mode == "half" {
				keep = KeepHalf(rng)
			}
			kept, lost, err := d.Cut(keep)
			if err != nil {
				t.Fatal(err)
			}
			st := d.Stats()
			disk.Writes += st.Writes
			disk.FUAWrites += st.FUAWrites
			disk.Flushes += st.Flushes
			disk.Kept += kept
			disk.Lost += lost
			note = fmt.Sprintf(", %d flushes, unflushed sectors kept %d lost %d", st.Flushes, kept, lost)
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
		}
		c := out()
		if strings.Contains(c, "POWERCUT-ERROR") {
			t.Fatalf("boot %d failed:\n%s", i, c)
		}
		consoles = append(consoles, c)
		t.Logf("cut %d (%s) %s: %d committed%s", i, mode, how, strings.Count(c, "\n"+LineCommitted+" "), note)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var verify string
	verifyBoots := 0
	for try := 0; ; try++ {
		verifyBoots++
		cmd := qemu(ctx, fmt.Sprintf("-mode=verify -boot=%d", cuts), fileDrive)
		out, _, wait := run(t, cmd)
		<-wait
		verify = out()
		if try > 0 || !needsFsck(verify) || noFsck {
			break
		}
		repairs = append(repairs, fsck(t, img, cuts, verify))
	}
	if err := os.WriteFile(filepath.Join(work, "verify.txt"), []byte(verify), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "cuts.txt"), []byte(strings.Join(consoles, "\n=== cut ===\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	fsck, ferr := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	if ferr != nil {
		t.Errorf("e2fsck -fn after the verifying boot: %v\n%s", ferr, fsck)
	}
	f, err := Tally(consoles, verify)
	var sent string
	boots := cuts + verifyBoots
	if err == nil && env(t, "POWERCUT_DELIVER", "1") != "0" {
		boots++
		// Phase 3: one more boot, with networking, delivers what the
		// outbox holds to the fleet on the host; then the fleet's store
		// must hold every committed, unacked result once, as sent.
		sent, f.Delivered, err = deliver(t, work, func(ctx context.Context, args string, network ...string) *exec.Cmd {
			return qemu(ctx, args+fmt.Sprintf(" -boot=%d", cuts+1), fileDrive, network...)
		}, f.Unacked)
	}
	summary := fmt.Sprintf("power cut: %v; cuts by mode %v; volatile-cache disk: %d writes (%d FUA), %d flushes, unflushed sectors at cuts kept %d lost %d; e2fsck clean: %v; mounts refused and repaired by e2fsck -p: %d %v; %v for %d boots (seed %d, cache=%s)",
		f, byMode, disk.Writes, disk.FUAWrites, disk.Flushes, disk.Kept, disk.Lost, ferr == nil, len(repairs), repairs, time.Since(start).Round(time.Second), boots, seed, cache)
	t.Log(summary)
	if werr := os.WriteFile(filepath.Join(work, "figures.txt"), []byte(summary+"\n"), 0o644); werr != nil {
		t.Error(werr)
	}
	if err != nil {
		t.Fatalf("%v\nverifying console (also in %s):\n%s\ndelivering console:\n%s", err, work, tail(verify, 60), tail(sent, 60))
	}
	if f.Committed == 0 || f.Found != f.Committed || (f.Delivered >= 0 && f.Delivered != len(f.Unacked)) {
		t.Fatalf("figures %v", f)
	}
}

// deliver starts the fleet side on the host (fleet.StartLocal: the
// embedded broker, the reference receiver signing its acks, SQLite),
// boots the guest with qemu's user networking in -mode=deliver until the
// outbox is empty, and checks the store (checkFleet). It returns the
// console and how many of want reached the fleet intact.
func deliver(t *testing.T, work string, qemu func(ctx context.Context, args string, network ...string) *exec.Cmd, want []string) (string, int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := filepath.Join(work, "fleet")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	key, err := fleetcmd.GenerateKey(crand.Reader, "powercut-fleet")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := fleet.StartLocal(ctx, fleet.LocalOptions{Dir: dir, BrokerAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: log,
		SignAck:    func(a *telemetry.Ack) { fleetcmd.SignAck(key, a) },
		SignReplay: func(r *telemetry.Replay) { fleetcmd.SignReplay(key, r) }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Broker().Addr())
	if err != nil {
		t.Fatal(err)
	}
	trusted := key.Public()
	if os.Getenv("POWERCUT_FORGE_ACKS") == "1" {
		// Negative control: the guest trusts another key, so it must
		// refuse every ack of this fleet and the run must FAIL.
		other, err := fleetcmd.GenerateKey(crand.Reader, "powercut-fleet")
		if err != nil {
			t.Fatal(err)
		}
		trusted = other.Public()
	}
	waitS := envInt(t, "POWERCUT_DELIVER_WAIT", 600)
	start := time.Now()
	// The guest is 10.0.2.15; 10.0.2.2 is the host's loopback, where the
	// broker listens.
	cmd := qemu(ctx, fmt.Sprintf("-mode=deliver -broker=tcp://10.0.2.2:%s -ackkey=%s -wait=%ds", port, trusted, waitS),
		"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile=")
	out, _, wait := run(t, cmd)
	<-wait
	c := out()
	if err := os.WriteFile(filepath.Join(work, "deliver.txt"), []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(c, "damage=none check=ok") {
		return c, 0, fmt.Errorf("the delivering boot's open found the outbox damaged or failing Check")
	}
	if !strings.Contains(c, LineDelivered+" depth=0") {
		return c, 0, fmt.Errorf("the delivering boot did not empty the outbox")
	}
	line, _, _ := strings.Cut(c[strings.Index(c, LineDelivered):], "\n")
	t.Logf("delivering boot: %v wall, %s", time.Since(start).Round(time.Second), line)
	n, err := checkFleet(ctx, l.Store, want)
	return c, n, err
}

// needsFsck reports whether the guest's mount refused the file system
// (EUCLEAN: e.g. jbd2 found the transaction in flight at the cut
// corrupt and aborted the journal replay).
func needsFsck(console string) bool {
	return strings.Contains(console, "POWERCUT-ERROR: mount ") && strings.Contains(console, "structure needs cleaning")
}

// fsck runs e2fsck -p on the image, as a robot's boot should on its state
// partition, after boot's mount was refused; it fails the test unless
// e2fsck repaired the file system (exit 0 or 1). It returns a line for
// the figures.
func fsck(t *testing.T, img string, boot int, console string) string {
	t.Helper()
	out, err := exec.Command("e2fsck", "-p", img).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("boot %d: mount refused and e2fsck -p did not repair: %v\n%s\nconsole:\n%s", boot, err, out, console)
	}
	t.Logf("boot %d: mount refused (structure needs cleaning); e2fsck -p: %s", boot, strings.Join(strings.Fields(string(out)), " "))
	return fmt.Sprintf("boot%d", boot)
}

// run starts cmd with its console captured; first is closed at the first
// COMMITTED line, wait when qemu exited.
func run(t *testing.T, cmd *exec.Cmd) (out func() string, first, wait chan struct{}) {
	t.Helper()
	var mu sync.Mutex
	var buf bytes.Buffer
	first, wait = make(chan struct{}), make(chan struct{})
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	pw.Close()
	go func() {
		defer close(wait)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		seen := false
		for sc.Scan() {
			line := strings.ReplaceAll(sc.Text(), "\r", "")
			mu.Lock()
			buf.WriteString(line + "\n")
			mu.Unlock()
			if !seen && strings.HasPrefix(line, LineCommitted+" ") {
				seen = true
				close(first)
			}
		}
		pr.Close()
		_ = cmd.Wait()
	}()
	return func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }, first, wait
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
