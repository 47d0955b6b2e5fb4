//go:build powercut

package powercut

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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
// consoles (Tally). It fails, never skips: the script runs it only with a
// kernel and qemu at hand.
func TestPowerCut(t *testing.T) {
	kernel := env(t, "POWERCUT_KERNEL", "")
	initrd := env(t, "POWERCUT_INITRD", "")
	work := env(t, "POWERCUT_WORK", "")
	cuts := envInt(t, "POWERCUT_CUTS", 5)
	maxDelay := time.Duration(envInt(t, "POWERCUT_MAX_DELAY_MS", 2000)) * time.Millisecond
	seed := uint64(envInt(t, "POWERCUT_SEED", int(time.Now().UnixNano()%1e9)))
	cache := env(t, "POWERCUT_CACHE", "none")
	rng := rand.New(rand.NewPCG(seed, 15))
	t.Logf("seed %d, %d cuts, delay up to %v, cache=%s", seed, cuts, maxDelay, cache)

	img := filepath.Join(work, "disk.img")
	if err := os.Remove(img); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", img, "256M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	qemu := func(ctx context.Context, args string) *exec.Cmd {
		return exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-smp", "1",
			"-nographic", "-no-reboot", "-net", "none", "-kernel", kernel, "-initrd", initrd,
			"-drive", "file="+img+",if=virtio,format=raw,cache="+cache,
			"-append", "console=ttyS0 panic=-1 quiet loglevel=3 -- "+args)
	}
	var consoles []string
	start := time.Now()
	for i := range cuts {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := qemu(ctx, fmt.Sprintf("-mode=commit -boot=%d", i))
		out, first, wait := run(t, cmd)
		delay := time.Duration(rng.Int64N(int64(maxDelay) + 1))
		select {
		case <-first:
		case <-wait:
			cancel()
			t.Fatalf("boot %d ended before its first commit:\n%s", i, out())
		case <-time.After(3 * time.Minute):
			cancel()
			<-wait
			t.Fatalf("boot %d: no COMMITTED within 3 min:\n%s", i, out())
		}
		time.Sleep(delay)
		if err := cmd.Process.Kill(); err != nil { // SIGKILL: the power cut
			t.Fatal(err)
		}
		<-wait
		cancel()
		c := out()
		if strings.Contains(c, "POWERCUT-ERROR") {
			t.Fatalf("boot %d failed:\n%s", i, c)
		}
		consoles = append(consoles, c)
		t.Logf("cut %d after %v: %d committed", i, delay.Round(time.Millisecond), strings.Count(c, "\n"+LineCommitted+" "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := qemu(ctx, fmt.Sprintf("-mode=verify -boot=%d", cuts))
	out, _, wait := run(t, cmd)
	<-wait
	verify := out()
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
	summary := fmt.Sprintf("power cut: %v; e2fsck clean: %v; %v for %d boots (seed %d, cache=%s)", f, ferr == nil, time.Since(start).Round(time.Second), cuts+1, seed, cache)
	t.Log(summary)
	if werr := os.WriteFile(filepath.Join(work, "figures.txt"), []byte(summary+"\n"), 0o644); werr != nil {
		t.Error(werr)
	}
	if err != nil {
		t.Fatalf("%v\nverifying console (also in %s):\n%s", err, work, tail(verify, 60))
	}
	if f.Committed == 0 || f.Found != f.Committed {
		t.Fatalf("figures %v", f)
	}
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
