package integration_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/internal/mqtttest"
	"papscan/telemetry/outbox"
)

// TestBrokerKilled20Times: 500 results are produced while Mosquitto is
// SIGKILLed and restarted (no persistence: it forgets every session and
// in-flight message) 20 times at random moments. All 500 reach the fleet;
// duplicates carry the same result ID and content.
func TestBrokerKilled20Times(t *testing.T) {
	const results, kills = 500, 20
	m := mqtttest.StartMosquitto(t, nil)
	f := startFleet(t, []string{m.URL}, nil)
	r := startRobot(t, t.TempDir(), []string{m.URL}, "robot-kill", nil)
	rng := rand.New(rand.NewPCG(1, 2))

	start := time.Now()
	killErr := make(chan error, 1)
	killed := 0
	go func() {
		krng := rand.New(rand.NewPCG(3, 4))
		for i := 0; i < kills; i++ {
			time.Sleep(time.Duration(150+krng.IntN(300)) * time.Millisecond)
			m.Kill()
			killed++
			time.Sleep(time.Duration(10+krng.IntN(90)) * time.Millisecond)
			if err := m.Restart(); err != nil {
				killErr <- err
				return
			}
		}
		killErr <- nil
	}()
	want := map[string]string{}
	for i := 0; i < results; i++ {
		id, slide := telemetry.NewID(), fmt.Sprintf("S%04d", i)
		if _, err := r.ob.PutResult(slide, id, []byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
		want[id] = slide
		time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond)
	}
	produced := time.Since(start)
	if err := <-killErr; err != nil {
		t.Fatal(err)
	}
	if missing := f.waitFor(want, 90*time.Second); len(missing) > 0 {
		t.Fatalf("%d of %d results never reached the fleet (e.g. %s); sender %+v fleet %+v",
			len(missing), results, missing[0], r.snd.Stats(), f.rcv.Stats())
	}
	arrived := time.Since(start)
	if !waitDepth0(r.ob, 30*time.Second) {
		t.Fatalf("outbox still holds %d entries: acks lost", r.ob.Depth())
	}
	copies := f.checkRecords(t, want)
	st, fs := r.snd.Stats(), f.rcv.Stats()
	t.Logf("FIGURES broker-kill: %d results, %d broker kills; produced in %v, all at the fleet after %v, outbox empty after %v; "+
		"fleet stored %d distinct, %d copies (%d duplicates, same result_id), %d replay requests; robot published %d (%d resends, %d ack timeouts, %d publish errors)",
		results, killed, produced.Round(time.Millisecond), arrived.Round(time.Millisecond), time.Since(start).Round(time.Millisecond),
		f.count(), copies, fs.Duplicates, fs.Replays, st.Published, st.Resent, st.AckTimeouts, st.PublishErrors)
	if f.count() != results {
		t.Fatalf("fleet holds %d results, want %d", f.count(), results)
	}
}

const producerEnv = "PAPSCAN_TEST_PRODUCER"

// runProducer is the SIGKILL test's robot process (the test binary run
// again): it opens the outbox, connects, and commits results as fast as the
// disk allows, printing "C <id>" after each commit; with mode "drain" it
// only sends until the outbox is empty.
func runProducer() int {
	dir, url, mode := os.Getenv("PRODUCER_DIR"), os.Getenv("PRODUCER_BROKER"), os.Getenv(producerEnv)
	run, _ := strconv.Atoi(os.Getenv("PRODUCER_RUN"))
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MinFreeBytes: -1, Logger: logger()})
	if err != nil {
		fmt.Printf("E open: %v\n", err)
		return 3
	}
	if err := ob.Check(); err != nil {
		fmt.Printf("E check: %v\n", err)
		return 4
	}
	fmt.Printf("O depth=%d\n", ob.Depth())
	snd := outbox.NewSender(ob, outbox.SenderOptions{AckTimeout: ackTimeout, RetryInterval: 200 * time.Millisecond, Logger: logger()})
	o := robotOptions([]string{url}, "robot-sigkill")
	o.OnAck, o.OnReplay, o.OnConnected = snd.HandleAck, snd.HandleReplay, snd.Reconnected
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tm, err := telemetry.Dial(ctx, o)
	cancel()
	if err != nil {
		fmt.Printf("E dial: %v\n", err)
		return 5
	}
	go func() { _ = snd.Run(context.Background(), tm) }()
	if mode == "drain" {
		if !waitDepth0(ob, 60*time.Second) {
			fmt.Printf("E drain: depth %d\n", ob.Depth())
			return 6
		}
		_ = tm.Close(context.Background())
		fmt.Println("D")
		return 0
	}
	for n := 0; ; n++ {
		id := fmt.Sprintf("run%02d-%05d", run, n)
		if _, err := ob.PutResult(fmt.Sprintf("S%02d-%05d", run, n), id, []byte(`{"x":1}`)); err != nil {
			fmt.Printf("E put: %v\n", err)
			return 7
		}
		fmt.Printf("C %s\n", id)
	}
}

// TestAgentSIGKILLed50Times: a robot process is SIGKILLed at random points
// of result production 50 times. Every restart opens a consistent outbox
// (bbolt page check + index check), and every result whose commit returned
// reaches the fleet.
func TestAgentSIGKILLed50Times(t *testing.T) {
	if testing.Short() {
		// The test re-executes its own binary as the robot; under qemu-user
		// (scripts/qemu-user.sh runs -short) that foreign binary cannot be
		// exec'd by the kernel. The native run does all 50 kills.
		t.Skip("-short: spawns the test binary as a subprocess 50 times")
	}
	runs := 50
	m := mqtttest.StartMosquitto(t, nil)
	f := startFleet(t, []string{m.URL}, nil)
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	want := map[string]string{}
	start := time.Now()
	maxDepth := 0
	spawn := func(run int, mode string) (*exec.Cmd, *bufio.Scanner) {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), producerEnv+"="+mode, "PRODUCER_DIR="+dir, "PRODUCER_BROKER="+m.URL, "PRODUCER_RUN="+strconv.Itoa(run))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() || !strings.HasPrefix(sc.Text(), "O ") {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("run %d: producer did not start cleanly: %q", run, sc.Text())
		}
		d, _ := strconv.Atoi(strings.TrimPrefix(sc.Text(), "O depth="))
		maxDepth = max(maxDepth, d)
		return cmd, sc
	}
	for run := 0; run < runs; run++ {
		cmd, sc := spawn(run, "produce")
		lines := make(chan string, 1024)
		go func() {
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		killAt := time.After(time.Duration(20+rng.IntN(250)) * time.Millisecond)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				if id, ok := strings.CutPrefix(l, "C "); ok {
					want[id] = "S" + strings.TrimPrefix(id, "run")
				} else if strings.HasPrefix(l, "E ") {
					t.Fatalf("run %d: %s", run, l)
				}
			case <-killAt:
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killAt = nil
			}
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("run %d: producer ended with %v, want SIGKILL", run, err)
		}
	}
	killedAfter := time.Since(start)
	cmd, sc := spawn(runs, "drain")
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "E ") {
			t.Fatalf("drain: %s", sc.Text())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("drain run: %v", err)
	}
	if missing := f.waitFor(want, 60*time.Second); len(missing) > 0 {
		t.Fatalf("%d of %d committed results never reached the fleet (e.g. %s)", len(missing), len(want), missing[0])
	}
	copies := f.checkRecords(t, want)
	t.Logf("FIGURES sigkill: %d SIGKILLs in %v, %d results committed (returned before the kill), %d stored by the fleet (extra = committed but killed before reporting), %d copies received (%d duplicates); largest outbox at restart %d; every restart opened a consistent outbox; all delivered after %v",
		runs, killedAfter.Round(time.Millisecond), len(want), f.count(), copies, f.rcv.Stats().Duplicates, maxDepth, time.Since(start).Round(time.Millisecond))
}

// TestDiskFull: the state directory is a tiny tmpfs (or, where mounting is
// not permitted, reports too little free space). The robot takes slides
// until Admit refuses; no panic, a commit never evicts anything, and every
// committed result reaches the fleet afterwards.
func TestDiskFull(t *testing.T) {
	t.Run("tmpfs", func(t *testing.T) { testDiskFull(t, false) })
	t.Run("injected", func(t *testing.T) { testDiskFull(t, true) })
}

func testDiskFull(t *testing.T, inject bool) {
	m := mqtttest.StartMosquitto(t, nil)
	f := startFleet(t, []string{m.URL}, nil)
	dir, real := t.TempDir(), false
	if !inject {
		dir, real = tinyDir(t)
	}
	ob, err := outbox.Open(filepath.Join(dir, "outbox.db"), outbox.Options{MinFreeBytes: 96 << 10, Logger: logger(),
		FreeSpace: func(d string) (uint64, error) {
			if real {
				return outbox.FreeSpace(d)
			}
			fi, err := os.Stat(filepath.Join(d, "outbox.db"))
			if err != nil {
				return 0, err
			}
			return uint64(max(0, 512<<10-fi.Size())), nil // a 512 KiB "disk"
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer ob.Close()
	body := []byte(fmt.Sprintf(`{"pad":%q}`, strings.Repeat("x", 3000)))
	want := map[string]string{}
	var refused, putErr error
	for i := 0; i < 10000; i++ {
		if refused = ob.Admit(); refused != nil { // the agent's check before each slide
			break
		}
		id, slide := telemetry.NewID(), fmt.Sprintf("S%05d", i)
		if _, err := ob.PutResult(slide, id, body); err != nil {
			putErr = err // real ENOSPC inside the reserve: reported, nothing evicted
			break
		}
		want[id] = slide
	}
	if refused == nil && putErr == nil {
		t.Fatal("the full disk never refused a slide")
	}
	if !errors.Is(refused, outbox.ErrFull) && !errors.Is(putErr, outbox.ErrFull) {
		t.Fatalf("refusal %v / put error %v: want ErrFull", refused, putErr)
	}
	if ob.Depth() != len(want) {
		t.Fatalf("outbox depth %d, committed %d", ob.Depth(), len(want))
	}
	// Delivery works on a full disk (acks delete, freeing pages).
	snd := outbox.NewSender(ob, outbox.SenderOptions{AckTimeout: ackTimeout, Logger: logger()})
	o := robotOptions([]string{m.URL}, "robot-full")
	o.OnAck, o.OnReplay, o.OnConnected = snd.HandleAck, snd.HandleReplay, snd.Reconnected
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tm, err := telemetry.Dial(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer tm.Close(context.Background())
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = snd.Run(sctx, tm) }()
	defer func() { stop(); <-done }()
	if missing := f.waitFor(want, 60*time.Second); len(missing) > 0 {
		t.Fatalf("%d committed results lost after the disk filled", len(missing))
	}
	// Once the fleet acked them, their pages are free for new results:
	// the robot takes slides again.
	if !waitDepth0(ob, 30*time.Second) {
		t.Fatalf("outbox depth %d: acks not applied on the full disk", ob.Depth())
	}
	if err := ob.Admit(); err != nil {
		t.Fatalf("after every result was acked the robot still refuses slides: %v", err)
	}
	t.Logf("FIGURES disk-full (tmpfs=%v): %d results committed, then refused: %v (put error: %v); all %d reached the fleet; after the acks slides are admitted again",
		real, len(want), refused, putErr, f.count())
}

// tinyDir mounts a 512 KiB tmpfs when permitted (root), else returns a
// plain directory and false (the caller injects the free space).
func tinyDir(t *testing.T) (string, bool) {
	dir := t.TempDir()
	if os.Geteuid() == 0 {
		if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", dir).Run(); err == nil {
			t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
			return dir, true
		}
	}
	t.Log("tmpfs not permitted here: injecting a full disk through Options.FreeSpace")
	return dir, false
}

// TestNetworkBlackholeAndReset: the robot talks to Mosquitto through a
// proxy. A blackhole (bytes vanish, the socket stays open) is detected
// within KeepAlive + PingTimeout and the robot reconnects within the
// reconnect back-off once it heals; a reset reconnects within the
// back-off. Results committed meanwhile arrive, and the goroutine count
// returns to its baseline.
func TestNetworkBlackholeAndReset(t *testing.T) {
	m := mqtttest.StartMosquitto(t, nil)
	f := startFleet(t, []string{m.URL}, nil)
	p := mqtttest.NewProxy(t, m.Addr())
	base := runtime.NumGoroutine()
	r := startRobot(t, t.TempDir(), []string{p.URL()}, "robot-net", nil)
	want := map[string]string{}
	put := func(n int) {
		for range n {
			id, slide := telemetry.NewID(), fmt.Sprintf("S%d", len(want))
			if _, err := r.ob.PutResult(slide, id, []byte(`{}`)); err != nil {
				t.Fatal(err)
			}
			want[id] = slide
		}
	}
	put(5)
	if missing := f.waitFor(want, 20*time.Second); len(missing) > 0 {
		t.Fatalf("before faults: %d missing", len(missing))
	}
	waitDepth0(r.ob, 10*time.Second)
	steady := settle(0)

	// Blackhole.
	p.Blackhole(true)
	t0 := time.Now()
	put(5)
	for r.tm.Connected() && time.Since(t0) < 20*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	detected := time.Since(t0)
	if limit := keepAlive + pingTimeout + 3*time.Second; detected > limit { // slack: keepalive tick + a loaded CI machine
		t.Fatalf("blackhole detected after %v, want <= keepalive+ping timeout (+slack) %v", detected, limit)
	}
	time.Sleep(time.Second) // a while in the hole, reconnect attempts time out
	p.Blackhole(false)
	p.Reset() // connections accepted during the hole were never answered
	t1 := time.Now()
	for !r.tm.Connected() && time.Since(t1) < 20*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	healed := time.Since(t1)
	// paho waits ConnectTimeout for an attempt in flight, then backs off
	// at most MaxReconnectInterval.
	if limit := 2*time.Second + maxReconnect + 2*time.Second; healed > limit {
		t.Fatalf("reconnected %v after the blackhole ended, want <= %v", healed, limit)
	}
	if missing := f.waitFor(want, 20*time.Second); len(missing) > 0 {
		t.Fatalf("after blackhole: %d missing", len(missing))
	}

	// Reset.
	t2 := time.Now()
	p.Reset()
	put(5)
	time.Sleep(50 * time.Millisecond)
	for !r.tm.Connected() && time.Since(t2) < 20*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	reset := time.Since(t2)
	if limit := maxReconnect + 2*time.Second; reset > limit {
		t.Fatalf("reconnected %v after a reset, want <= %v", reset, limit)
	}
	if missing := f.waitFor(want, 20*time.Second); len(missing) > 0 {
		t.Fatalf("after reset: %d missing", len(missing))
	}
	waitDepth0(r.ob, 10*time.Second)
	after := settle(steady)
	if after > steady {
		t.Fatalf("goroutines: %d after the faults, %d before", after, steady)
	}
	r.stop()
	final := settle(base)
	t.Logf("FIGURES network: blackhole detected in %v (keepalive %v + ping timeout %v), reconnected %v after it healed; reset -> reconnected in %v; goroutines %d steady before, %d after, %d base / %d after Close",
		detected.Round(time.Millisecond), keepAlive, pingTimeout, healed.Round(time.Millisecond), reset.Round(time.Millisecond), steady, after, base, final)
	if final > base {
		t.Fatalf("goroutines after Close: %d, baseline %d", final, base)
	}
}

// settle waits (up to 5 s) for the goroutine count to come down to target
// (0: just let it settle) and returns it.
func settle(target int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 250; i++ {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if target > 0 && m <= target {
			return m
		}
		if target == 0 && m == n && i > 10 {
			return m
		}
		n = m
	}
	return n
}
