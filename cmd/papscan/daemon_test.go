package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"papscan/agent"
	"papscan/scan"
)

// TestMain lets the test binary run as papscan itself, so the daemon tests
// start the agent as a real subprocess (signals, exit codes, sd_notify)
// without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("PAPSCAN_TEST_BE_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe for the subprocess's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type notification struct {
	msg string
	at  time.Time
}

// shortTempDir is a temporary directory with a short path (unix socket
// paths are limited to about 100 bytes; t.TempDir's can be longer).
func shortTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "papscan-agent")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// writeSimConfig writes the sim profile (two slides), edited, to dir.
func writeSimConfig(t *testing.T, dir string, edit func(string) string) string {
	t.Helper()
	_, shown, _ := runCmd(t, "config", "show", "sim")
	shown = strings.Replace(shown, "slides: 3", "slides: 2", 1)
	if edit != nil {
		shown = edit(shown)
	}
	p := filepath.Join(dir, "sim.yaml")
	if err := os.WriteFile(p, []byte(shown), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// agentProc is `papscan agent --sim` running as a subprocess under a fake
// service manager: a notify socket collecting every sd_notify datagram.
type agentProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	stderr   *syncBuffer
	socket   string
	stateDir string
	cfgPath  string
	exited   chan struct{}
	exitErr  error

	mu     sync.Mutex
	notify []notification
}

func startAgent(t *testing.T, extraEnv []string, args ...string) *agentProc {
	t.Helper()
	return startAgentWith(t, nil, extraEnv, args...)
}

// startAgentWith is startAgent with the sim configuration edited first.
func startAgentWith(t *testing.T, edit func(string) string, extraEnv []string, args ...string) *agentProc {
	t.Helper()
	if testing.Short() {
		t.Skip("daemon subprocess test (runs the simulated robot) skipped in -short")
	}
	dir := shortTempDir(t)
	a := &agentProc{t: t, socket: filepath.Join(dir, "agent.sock"), stateDir: filepath.Join(dir, "state")}
	a.cfgPath = writeSimConfig(t, dir, edit)
	return a.launch(extraEnv, args...)
}

// restart starts a new agent on a's configuration, state directory and
// socket (a must have exited).
func (a *agentProc) restart(extraEnv []string, args ...string) *agentProc {
	a.t.Helper()
	n := &agentProc{t: a.t, socket: a.socket, stateDir: a.stateDir, cfgPath: a.cfgPath}
	return n.launch(extraEnv, args...)
}

// launch runs the agent under a fresh notify socket.
func (a *agentProc) launch(extraEnv []string, args ...string) *agentProc {
	t := a.t
	t.Helper()
	a.stderr, a.exited = &syncBuffer{}, make(chan struct{})
	nsock := filepath.Join(filepath.Dir(a.cfgPath), "notify")
	os.Remove(nsock) // a previous agent's
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: nsock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				return
			}
			a.mu.Lock()
			a.notify = append(a.notify, notification{string(buf[:n]), time.Now()})
			a.mu.Unlock()
		}
	}()
	argv := append([]string{"agent", "--sim", "--config", a.cfgPath, "--socket", a.socket, "--state-dir", a.stateDir}, args...)
	a.cmd = exec.Command(os.Args[0], argv...)
	a.cmd.Env = append(os.Environ(), "PAPSCAN_TEST_BE_MAIN=1", "NOTIFY_SOCKET="+nsock, "PAPSCAN_DATA=/nonexistent")
	a.cmd.Env = append(a.cmd.Env, extraEnv...)
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { a.exitErr = a.cmd.Wait(); nc.Close(); close(a.exited) }()
	t.Cleanup(func() {
		select {
		case <-a.exited:
		default:
			a.cmd.Process.Kill()
			<-a.exited
		}
		if t.Failed() {
			t.Logf("agent stderr:\n%s", a.stderr.String())
		}
	})
	return a
}

func (a *agentProc) msgs() []string {
	var out []string
	for _, n := range a.notifications() {
		out = append(out, n.msg)
	}
	return out
}

func (a *agentProc) notifications() []notification {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]notification(nil), a.notify...)
}

func (a *agentProc) count(msg string) int {
	n := 0
	for _, m := range a.notifications() {
		if m.msg == msg {
			n++
		}
	}
	return n
}

// waitFor polls cond until it holds or the deadline passes.
func (a *agentProc) waitFor(what string, d time.Duration, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case <-a.exited:
			a.t.Fatalf("agent exited (%v) while waiting for %s", a.exitErr, what)
		default:
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("no %s within %s; notifications %q", what, d, a.msgs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (a *agentProc) status() agent.Status {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := agent.Query(ctx, a.socket, agent.Request{Cmd: "status"})
	if err != nil || resp.Status == nil {
		a.t.Fatalf("status: %v %+v", err, resp)
	}
	return *resp.Status
}

func (a *agentProc) query(req agent.Request) agent.Response {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := agent.Query(ctx, a.socket, req)
	if err != nil {
		a.t.Fatalf("%s: %v", req.Cmd, err)
	}
	return resp
}

func (a *agentProc) waitExit(d time.Duration) int {
	a.t.Helper()
	select {
	case <-a.exited:
	case <-time.After(d):
		a.t.Fatalf("agent did not exit within %s", d)
	}
	var ee *exec.ExitError
	if errors.As(a.exitErr, &ee) {
		return ee.ExitCode()
	}
	if a.exitErr != nil {
		a.t.Fatal(a.exitErr)
	}
	return 0
}

func (a *agentProc) signal(s os.Signal) {
	if err := a.cmd.Process.Signal(s); err != nil {
		a.t.Fatal(err)
	}
}

// TestAgentReadyScanAndStopMidScan: READY only after the self-check; the
// start button (pressed through its simulated GPIO pin, so through the
// real debouncer) starts the magazine; jog is refused while scanning;
// SIGTERM mid-scan sends STOPPING, exits 0, and leaves a consistent state
// directory: the interrupted slide has an INCOMPLETE result and a rerun
// entry, and the state file is valid with nothing "current".
func TestAgentReadyScanAndStopMidScan(t *testing.T) {
	a := startAgentWith(t, smallSlides, []string{"WATCHDOG_USEC=2000000"})
	a.waitFor("READY=1", 2*time.Minute, func() bool { return a.count("READY=1") > 0 })
	st := a.status()
	if !st.Ready || st.State != "ready" || st.Fault != nil || !st.BrokerConnected {
		t.Fatalf("after READY: %+v", st)
	}
	var sawSelfCheck bool
	for _, n := range a.notifications() {
		if n.msg == "READY=1" {
			break
		}
		sawSelfCheck = sawSelfCheck || strings.Contains(n.msg, "self-check")
	}
	if !sawSelfCheck {
		t.Errorf("READY before the self-check status: %q", a.msgs())
	}
	if r := a.query(agent.Request{Cmd: "press", Button: "start"}); !r.OK {
		t.Fatalf("press start: %+v", r)
	}
	var slide string
	a.waitFor("scan phase", 3*time.Minute, func() bool {
		st := a.status()
		if st.Current != nil && st.Current.Phase == "scan" && st.Current.Done > 0 {
			slide = st.Current.SlideID
			return true
		}
		return false
	})
	code, _, stderr := runCmd(t, "jog", "--socket", a.socket, "x", "100um")
	if code != exitFailure || !strings.Contains(stderr, "refused: scanning") {
		t.Errorf("jog while scanning: exit %d, %q", code, stderr)
	}
	if a.count("WATCHDOG=1") == 0 {
		t.Error("no watchdog ping while healthy")
	}
	a.signal(syscall.SIGTERM)
	if code := a.waitExit(StopTimeout(t)); code != exitOK {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	if a.count("STOPPING=1") != 1 {
		t.Errorf("STOPPING=1 sent %d times", a.count("STOPPING=1"))
	}
	ps, err := agent.ReadState(a.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if ps.State != "stopped" || ps.Current != nil || ps.Unfinished == nil || ps.Unfinished.Name != "M0001" {
		t.Errorf("state file after stop (the magazine must stay resumable): %+v", ps)
	}
	results := readResults(t, a.stateDir)
	r, ok := results[slide]
	if !ok {
		t.Fatalf("no result stored for the interrupted slide %s (have %v)", slide, results)
	}
	rerun := false
	for _, x := range ps.Rerun {
		rerun = rerun || (x.SlideID == slide && x.ResultID == r.ResultID)
	}
	switch {
	case r.Verdict == "INCOMPLETE" && (!rerun || !r.Rerun):
		t.Errorf("slide %s stopped INCOMPLETE but not marked for rerun: %+v", slide, ps.Rerun)
	case r.Verdict != "INCOMPLETE" && (rerun || r.TilesAnalysed != r.TilesPlanned):
		t.Errorf("slide %s: verdict %s with %d/%d tiles, rerun %v", slide, r.Verdict, r.TilesAnalysed, r.TilesPlanned, rerun)
	}
}

// StopTimeout is the subprocess's stop budget in tests: far below the
// unit's TimeoutStopSec on a simulated robot.
func StopTimeout(*testing.T) time.Duration { return agent.StopBudget }

// readResults parses every stored result.json, by slide.
func readResults(t *testing.T, stateDir string) map[string]scan.Report {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(stateDir, "slides", "*", "*", "result.json"))
	out := map[string]scan.Report{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r scan.Report
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("%s is not valid JSON: %v", f, err)
		}
		out[r.SlideID] = r
	}
	return out
}

// TestAgentWatchdogStopsWhenLoopStalls: pings flow while the control loop
// turns; after the test hook stalls it, they stop. A SIGHUP with an invalid
// file keeps the running configuration and names the key.
func TestAgentWatchdogStopsWhenLoopStalls(t *testing.T) {
	a := startAgent(t, []string{"WATCHDOG_USEC=1000000", "PAPSCAN_TESTHOOK_STALL=1"})
	a.waitFor("READY=1", 2*time.Minute, func() bool { return a.count("READY=1") > 0 })
	a.waitFor("3 watchdog pings", 10*time.Second, func() bool { return a.count("WATCHDOG=1") >= 3 })

	// Service engineer's tools while idle.
	if code, out, stderr := runCmd(t, "jog", "--socket", a.socket, "x", "250um"); code != exitOK || !strings.Contains(out, "jogged x") {
		t.Errorf("jog while idle: exit %d %q %q", code, out, stderr)
	}
	if code, _, stderr := runCmd(t, "jog", "--socket", a.socket, "x", "-1000mm"); code != exitFailure || !strings.Contains(stderr, "travel") {
		t.Errorf("jog outside travel: exit %d %q", code, stderr)
	}
	if code, _, stderr := runCmd(t, "jog", "--socket", a.socket, "w", "1um"); code != exitFailure || !strings.Contains(stderr, "no axis") {
		t.Errorf("jog unknown axis: exit %d %q", code, stderr)
	}
	if code, out, stderr := runCmd(t, "selftest", "--socket", a.socket); code != exitOK || !strings.Contains(out, "passed") ||
		!strings.Contains(out, "ok   home_repeatability") || !strings.Contains(out, "ok   focus_reference") {
		t.Errorf("selftest: exit %d %q %q", code, out, stderr)
	}
	code, out, _ := runCmd(t, "status", "--json", "--socket", a.socket)
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); code != exitOK || err != nil || st.State != "ready" || !st.Ready || !st.Healthy {
		t.Errorf("status --json: exit %d %v %q", code, err, out)
	}
	if code, _, _ := runCmd(t, "status", "--socket", filepath.Join(filepath.Dir(a.socket), "none.sock")); code != exitNoAgent {
		t.Errorf("status without an agent: exit %d, want %d", code, exitNoAgent)
	}

	good, _ := os.ReadFile(a.cfgPath)
	bad := strings.Replace(string(good), "max_speed: 40mm/s", "max_speed: 500mm/s", 1)
	if err := os.WriteFile(a.cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	a.signal(syscall.SIGHUP)
	a.waitFor("reload refusal", 10*time.Second, func() bool {
		return strings.Contains(a.stderr.String(), "configuration reload refused") && strings.Contains(a.stderr.String(), "machine.axes.x.max_speed")
	})
	if st := a.status(); st.State != "ready" || !st.Healthy {
		t.Errorf("after a refused reload: %+v", st)
	}
	if err := os.WriteFile(a.cfgPath, []byte(strings.Replace(string(good), "log_level: info", "log_level: debug", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	a.signal(syscall.SIGHUP)
	a.waitFor("reload", 10*time.Second, func() bool { return strings.Contains(a.stderr.String(), "configuration reloaded") })
	if a.count("RELOADING=1") != 2 || a.count("READY=1") != 3 {
		t.Errorf("reloads must be RELOADING=1 ... READY=1: %q", a.msgs())
	}

	a.signal(syscall.SIGUSR1) // PAPSCAN_TESTHOOK_STALL
	a.waitFor("stall", 10*time.Second, func() bool { return strings.Contains(a.stderr.String(), "stalled on purpose") })
	// Once the agent itself reports the loop stalled (the same limit the
	// watchdog uses), a ping already decided may still be in flight: allow
	// it, then no more may come.
	a.waitFor("unhealthy status", 10*time.Second, func() bool { return !a.status().Healthy })
	time.Sleep(500 * time.Millisecond)
	before := a.count("WATCHDOG=1")
	time.Sleep(2 * time.Second) // two watchdog periods: systemd would restart us
	if after := a.count("WATCHDOG=1"); after != before {
		t.Errorf("watchdog pinged %d times after the loop stalled", after-before)
	}
	a.cmd.Process.Kill()
}

// TestAgentSelfTestFailureIsNotReady: a failing self-check latches fault
// code 8 (selftest) on the panel and in STATUS=, and READY is never sent.
func TestAgentSelfTestFailureIsNotReady(t *testing.T) {
	a := startAgent(t, []string{"PAPSCAN_TESTHOOK_SELFTEST_FAIL=lamp intensity 12% of nominal"})
	a.waitFor("fault", 2*time.Minute, func() bool {
		_, err := os.Stat(a.socket)
		return err == nil && a.status().State == "fault"
	})
	st := a.status()
	if st.Ready || st.Fault == nil || st.Fault.Code != 8 || !strings.Contains(st.Fault.Error, "lamp intensity") {
		t.Errorf("status after a failed self-check: %+v %+v", st, st.Fault)
	}
	a.waitFor("STATUS with the fault code", 5*time.Second, func() bool {
		for _, n := range a.notifications() {
			if strings.HasPrefix(n.msg, "STATUS=fault") && strings.Contains(n.msg, "code 8") {
				return true
			}
		}
		return false
	})
	code, out, _ := runCmd(t, "status", "--socket", a.socket)
	if code != exitFault || !strings.Contains(out, "code 8 (selftest)") || !strings.Contains(out, "selftest:  FAILED (startup") ||
		!strings.Contains(out, "FAIL test_hook") {
		t.Errorf("papscan status: exit %d\n%s", code, out)
	}
	a.signal(syscall.SIGTERM)
	if code := a.waitExit(StopTimeout(t)); code != exitOK {
		t.Errorf("exit %d", code)
	}
	if n := a.count("READY=1"); n != 0 {
		t.Errorf("READY=1 sent %d times though the self-check failed", n)
	}
}

// TestAgentBadConfig: an invalid configuration exits with code 3 and a
// message naming the key, before anything is reported ready.
func TestAgentBadConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("subprocess test")
	}
	dir := shortTempDir(t)
	cfg := writeSimConfig(t, dir, func(s string) string { return strings.Replace(s, "debounce: 20ms", "debounce: 2s", 1) })
	nsock := filepath.Join(dir, "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: nsock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cmd := exec.Command(os.Args[0], "agent", "--sim", "--config", cfg, "--socket", filepath.Join(dir, "a.sock"))
	cmd.Env = append(os.Environ(), "PAPSCAN_TEST_BE_MAIN=1", "NOTIFY_SOCKET="+nsock)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitConfig {
		t.Fatalf("exit %v, want %d; stderr %q", err, exitConfig, stderr.String())
	}
	if !strings.Contains(stderr.String(), "machine.panel.debounce") {
		t.Errorf("message does not name the key: %q", stderr.String())
	}
	nc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 512)
	for {
		n, err := nc.Read(buf)
		if err != nil {
			break
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			t.Error("READY=1 sent with an invalid configuration")
		}
	}
}
