package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/panel"
	"papscan/scan"
)

// fakeScanner scans each slide in `tiles` steps of 100 ms (fake time),
// through a magazine loop with scan.Scanner.Magazine's contract: the
// agent's BeforeSlide before each slot, every report (INCOMPLETE and
// marked for rerun when cancelled) handed over before the next slide, a
// fault stops the magazine.
type fakeScanner struct {
	tiles    int
	slots    int
	hooks    ScanHooks
	failAt   map[string]error // slide ID -> fault injected mid-scan
	selfTest func() *scan.SelfTestResult
	// interrupted are the reports RecoverInterrupted hands over, by magazine.
	interrupted map[string][]*scan.Report
	homes       *int
	mu          *sync.Mutex
}

var _ Scanner = (*fakeScanner)(nil)

func (f *fakeScanner) Home(ctx context.Context) error {
	f.mu.Lock()
	*f.homes++
	f.mu.Unlock()
	time.Sleep(time.Second)
	return ctx.Err()
}
func (f *fakeScanner) Halt() error { return nil }

func (f *fakeScanner) SelfTest(ctx context.Context) (*scan.SelfTestResult, error) {
	if err := f.Home(ctx); err != nil {
		return nil, err
	}
	if f.selfTest != nil {
		return f.selfTest(), nil
	}
	return &scan.SelfTestResult{OK: true, Checks: []scan.Check{{Name: "camera", OK: true, Detail: "frames change"}, {Name: "home_repeatability", OK: true}}}, nil
}

func (f *fakeScanner) RecoverInterrupted(_ context.Context, mag string, onReport func(*scan.Report) error) ([]*scan.Report, error) {
	rs := f.interrupted[mag]
	for _, r := range rs {
		if err := onReport(r); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func (f *fakeScanner) Magazine(ctx context.Context, mag string, onReport func(*scan.Report) error) (*scan.MagazineResult, error) {
	res := &scan.MagazineResult{Magazine: mag}
	if err := f.Home(ctx); err != nil {
		return res, err
	}
	for slot := 0; slot < f.slots; slot++ {
		if err := f.hooks.BeforeSlide(ctx, slot); err != nil {
			return res, err
		}
		r, err := f.scanSlot(ctx, mag, slot)
		if errors.Is(err, context.Canceled) {
			r.MarkRerun("scan cancelled")
		}
		if derr := onReport(r); derr != nil {
			return res, derr
		}
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func (f *fakeScanner) scanSlot(ctx context.Context, mag string, slot int) (*scan.Report, error) {
	id := scan.SlideID(mag, slot)
	r := &scan.Report{ResultID: fmt.Sprintf("r-%s", id), SlideID: id, Slot: slot, TilesPlanned: f.tiles, Verdict: "NEGATIVE"}
	for i := 0; i < f.tiles; i++ {
		if err := f.failAt[id]; err != nil && i == f.tiles/2 {
			r.Verdict, r.Error = "INCOMPLETE", err.Error()
			return r, err
		}
		select {
		case <-ctx.Done():
			r.Verdict, r.Error = "INCOMPLETE", ctx.Err().Error()
			return r, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		r.TilesCaptured, r.TilesAnalysed = i+1, i+1
		f.hooks.Progress(scan.Progress{SlideID: id, Phase: "scan", Done: i + 1, Total: f.tiles})
	}
	return r, nil
}

type fakeLoader struct{ n int }

func (l fakeLoader) String() string                   { return "loader" }
func (l fakeLoader) Slots() int                       { return l.n }
func (l fakeLoader) Occupied(int) (bool, error)       { return true, nil }
func (l fakeLoader) Load(context.Context, int) error  { return nil }
func (l fakeLoader) Unload(ctx context.Context) error { return nil }

type fakeDelivery struct {
	mu        sync.Mutex
	delivered []*scan.Report
	events    []map[string]any
	connected bool
	admitErr  error
}

func (d *fakeDelivery) Deliver(_ context.Context, r *scan.Report) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.delivered = append(d.delivered, r)
	return nil
}
func (d *fakeDelivery) Depth() int { return 0 }
func (d *fakeDelivery) Admit(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.admitErr
}
func (d *fakeDelivery) Connected() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.connected
}
func (d *fakeDelivery) Event(_ context.Context, kind string, body map[string]any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	body["kind"] = kind
	d.events = append(d.events, body)
	return nil
}
func (d *fakeDelivery) Flush(context.Context) error { return nil }

func (d *fakeDelivery) eventsOf(kind string) []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []map[string]any
	for _, e := range d.events {
		if e["kind"] == kind {
			out = append(out, e)
		}
	}
	return out
}

type fakeNotifier struct {
	mu   sync.Mutex
	msgs []string
}

func (n *fakeNotifier) add(s string) error {
	n.mu.Lock()
	n.msgs = append(n.msgs, s)
	n.mu.Unlock()
	return nil
}
func (n *fakeNotifier) Ready() error          { return n.add("READY=1") }
func (n *fakeNotifier) Stopping() error       { return n.add("STOPPING=1") }
func (n *fakeNotifier) Reloading() error      { return n.add("RELOADING=1") }
func (n *fakeNotifier) Watchdog() error       { return n.add("WATCHDOG=1") }
func (n *fakeNotifier) Status(s string) error { return n.add("STATUS=" + s) }
func (n *fakeNotifier) count(s string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if m == s {
			c++
		}
	}
	return c
}

type rig struct {
	a       *Agent
	presses chan hal.Press
	del     *fakeDelivery
	notify  *fakeNotifier
	panel   *panel.Panel
	homes   *int
	mu      *sync.Mutex
	cancel  context.CancelFunc
	done    chan error
	states  *stateLog // what StateChanged announced
}

func newRig(t *testing.T, slots int, failAt map[string]error) *rig {
	t.Helper()
	return newRigWith(t, slots, failAt, "", nil)
}

// newRigWith is newRig on stateDir ("" = a new one), with each fake
// scanner edited by tweak.
func newRigWith(t *testing.T, slots int, failAt map[string]error, stateDir string, tweak func(*fakeScanner)) *rig {
	t.Helper()
	cfg := config.Default()
	cfg.Agent.StateDir = stateDir
	if stateDir == "" {
		cfg.Agent.StateDir = t.TempDir()
	}
	led := func(n string) *panel.LED {
		l, err := panel.NewLED(n, &gpiotest.Pin{N: n, L: gpio.Low}, false)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	r := &rig{presses: make(chan hal.Press), del: &fakeDelivery{connected: true}, notify: &fakeNotifier{},
		panel: &panel.Panel{Ready: led("g"), Busy: led("a"), Fault: led("r")}, homes: new(int), mu: &sync.Mutex{}, done: make(chan error, 1),
		states: &stateLog{}}
	a, err := New(Options{
		Config: cfg,
		NewScanner: func(_ *config.Config, h ScanHooks) (Scanner, error) {
			f := &fakeScanner{tiles: 20, slots: slots, hooks: h, failAt: failAt, homes: r.homes, mu: r.mu}
			if tweak != nil {
				tweak(f)
			}
			return f, nil
		},
		Machine:  hal.Machine{Loader: fakeLoader{slots}},
		Delivery: r.del, Panel: r.panel, Buttons: r.presses, Notifier: r.notify, Watchdog: 4 * time.Second,
		StateChanged: r.states.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	r.a = a
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { // after a failure: end the agent inside the bubble
		cancel()
		select {
		case <-r.done:
		case <-time.After(5 * time.Minute):
		}
	})
	return r
}

func (r *rig) press(b string, long bool) { r.presses <- hal.Press{Button: b, Long: long} }

func (r *rig) wait(t *testing.T, what string, cond func(Status) bool) Status {
	t.Helper()
	for range 2000 {
		if s := r.a.Status(); cond(s) {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("never %s: %+v", what, r.a.Status())
	return Status{}
}

func (r *rig) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	err := <-r.done
	r.done <- nil // for the cleanup
	if err != nil {
		t.Fatal(err)
	}
}

func state(s string) func(Status) bool { return func(st Status) bool { return st.State == s } }

func TestButtonsDriveTheMagazine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 3, nil)
		r.wait(t, "ready", state("ready"))
		if r.notify.count("READY=1") != 1 {
			t.Fatal("READY not sent after the self-check")
		}
		r.press(ButtonStart, false)
		r.wait(t, "scanning slot 0", func(s Status) bool { return s.Current != nil && s.Current.Done > 2 })
		if g, a, _ := panel.Lights(r.panel.View()); g.Pattern != hal.On || a.Pattern != hal.BlinkSlow {
			t.Errorf("scanning LEDs: %v %v", g, a)
		}
		for _, cmd := range []string{"jog", "selftest", "home", "park"} {
			if resp := r.a.Do(context.Background(), Request{Cmd: cmd, Axis: "x", UM: 10}); resp.OK || !strings.Contains(resp.Error, "refused: scanning") {
				t.Errorf("%s while scanning: %+v", cmd, resp)
			}
		}
		if resp := r.a.Do(context.Background(), Request{Cmd: "press", Button: "start"}); resp.OK {
			t.Errorf("press accepted without a simulated panel: %+v", resp)
		}
		r.press(ButtonStart, false) // pause: takes effect after this slide
		r.wait(t, "paused", state("paused"))
		r.wait(t, "slide 0 done", func(s Status) bool { return s.SlidesDone == 1 })
		time.Sleep(10 * time.Second)
		if s := r.a.Status(); s.SlidesDone != 1 || s.Current != nil || !s.Healthy {
			t.Fatalf("pause did not hold between slides (or is reported unhealthy): %+v", s)
		}
		r.press(ButtonStart, false) // resume
		r.wait(t, "slide 1 started", func(s Status) bool { return s.Current != nil && s.Current.Slot == 1 })
		r.press(ButtonAbort, false) // a short press does not abort
		time.Sleep(500 * time.Millisecond)
		if s := r.a.Status(); s.State != "scanning" {
			t.Fatalf("short abort changed state: %+v", s)
		}
		r.press(ButtonAbort, true) // abort
		s := r.wait(t, "attention", state("attention"))
		if len(s.Rerun) != 1 || s.Rerun[0].Slot != 1 || s.Rerun[0].ResultID == "" {
			t.Errorf("aborted slide not marked for rerun: %+v", s.Rerun)
		}
		if _, a, _ := panel.Lights(r.panel.View()); a.Pattern != hal.BlinkFast {
			t.Errorf("attention LED: %v", a)
		}
		r.press(ButtonAck, false) // dismiss
		r.wait(t, "ready", state("ready"))
		r.stop(t)
		ps, err := ReadState(r.a.cfg.Agent.StateDir)
		if err != nil || ps.State != "stopped" || len(ps.Rerun) != 1 {
			t.Errorf("state file: %+v %v", ps, err)
		}
	})
}

func TestFaultLatchesUntilAcknowledged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam := hal.NewFault("camera", hal.FaultCamera, errors.New("ENODEV"))
		r := newRig(t, 2, map[string]error{"MAG0001-S01": cam})
		r.wait(t, "ready", state("ready"))
		r.press(ButtonStart, false)
		s := r.wait(t, "fault", state("fault"))
		if s.Fault == nil || s.Fault.Code != 5 || s.Fault.Device != "camera" {
			t.Fatalf("fault: %+v", s.Fault)
		}
		if _, _, red := panel.Lights(r.panel.View()); red != panel.Code(5) {
			t.Errorf("red LED shows %v, want code 5", red)
		}
		if ev := r.del.eventsOf("fault"); len(ev) != 1 || ev[0]["code"] != 5 {
			t.Errorf("fleet fault events: %v", ev)
		}
		if ev := r.del.eventsOf("self_test"); len(ev) != 1 || ev[0]["passed"] != true {
			t.Errorf("fleet self_test events: %v", ev)
		}
		if len(s.Rerun) != 1 || s.Rerun[0].SlideID != "MAG0001-S01" {
			t.Errorf("faulted slide not marked for rerun: %+v", s.Rerun)
		}
		r.press(ButtonStart, false) // refused while faulted
		time.Sleep(time.Second)
		if st := r.a.Status(); st.State != "fault" {
			t.Fatalf("start accepted during a fault: %+v", st)
		}
		r.mu.Lock()
		before := *r.homes
		r.mu.Unlock()
		r.press(ButtonAck, false) // acknowledge: clear and re-home
		r.wait(t, "ready again", state("ready"))
		r.mu.Lock()
		if *r.homes != before+1 {
			t.Errorf("acknowledge did not re-home")
		}
		r.mu.Unlock()
		if r.notify.count("READY=1") != 1 {
			t.Errorf("READY sent %d times", r.notify.count("READY=1"))
		}
		r.stop(t)
	})
}

func TestNetworkDownOverlay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 1, nil)
		r.wait(t, "ready", state("ready"))
		r.del.mu.Lock()
		r.del.connected = false
		r.del.mu.Unlock()
		time.Sleep(time.Second)
		if v := r.panel.View(); !v.NetworkDown {
			t.Errorf("network down not shown: %+v", v)
		}
		r.stop(t)
	})
}

func TestWatchdogFollowsHealth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHealth(nil)
		n := &fakeNotifier{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		missed := 0
		go runWatchdog(ctx, n, h, 4*time.Second, func() { missed++ })
		for range 8 { // healthy: the loop beats every 250 ms
			h.LoopBeat()
			time.Sleep(250 * time.Millisecond)
		}
		synctest.Wait()
		if c := n.count("WATCHDOG=1"); c < 1 {
			t.Fatalf("no pings while healthy")
		}
		// A job that stops beating (stuck outside the drivers) stops pings
		// even though the loop turns.
		h.jobStarted(true)
		time.Sleep(2500 * time.Millisecond)
		base := n.count("WATCHDOG=1")
		for range 16 {
			h.LoopBeat()
			time.Sleep(250 * time.Millisecond)
		}
		if c := n.count("WATCHDOG=1"); c != base {
			t.Errorf("%d pings with a stalled job", c-base)
		}
		// Driver sleeps through the health clock are beats.
		hc := h.Clock(hal.SystemClock{})
		for range 16 {
			h.LoopBeat()
			_ = hc.Sleep(ctx, 250*time.Millisecond)
		}
		if c := n.count("WATCHDOG=1"); c <= base {
			t.Errorf("no pings with a job beating through the clock")
		}
		if missed == 0 {
			t.Error("missed pings not reported")
		}
	})
}

// A slide left "current" in the state file (power cut, SIGKILL) is moved to
// the rerun list at the next start; an unreadable state file is set aside.
func TestRecoverAfterUncleanStop(t *testing.T) {
	dir := t.TempDir()
	if err := writeState(dir, PersistentState{Schema: 1, State: "scanning", Current: &Current{Magazine: "M1", Slot: 4, SlideID: "M1-S04", Phase: "scan"}}); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Agent.StateDir = dir
	o := Options{Config: cfg, NewScanner: func(*config.Config, ScanHooks) (Scanner, error) { return nil, nil },
		Machine: hal.Machine{Loader: fakeLoader{1}}, Delivery: &fakeDelivery{}}
	a, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if rs := a.Status().Rerun; len(rs) != 1 || rs[0].SlideID != "M1-S04" || rs[0].Slot != 4 {
		t.Errorf("rerun after an unclean stop: %+v", rs)
	}
	if err := os.WriteFile(statePath(dir), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if a, err = New(o); err != nil {
		t.Fatal(err)
	}
	if kept, _ := filepath.Glob(statePath(dir) + ".corrupt-*"); len(kept) != 1 || len(a.Status().Rerun) != 0 {
		t.Errorf("corrupt state file not set aside: %v", kept)
	}
}

// TestRequestsDriveTheMagazine: the fleet's commands (through Do) start a
// named magazine, pause, resume and abort it, each refused with a code in
// a state where it makes no sense; a reload that does not validate is
// refused; the magazine's end is an event.
func TestRequestsDriveTheMagazine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 3, nil)
		ctx := context.Background()
		r.wait(t, "ready", state("ready"))
		for _, cmd := range []string{"pause", "resume", "abort"} {
			if resp := r.a.Do(ctx, Request{Cmd: cmd}); resp.OK || resp.Code != CodeInvalidState {
				t.Errorf("%s while idle: %+v", cmd, resp)
			}
		}
		if resp := r.a.Do(ctx, Request{Cmd: "start", Magazine: "FLEET-7"}); !resp.OK || resp.Status.Magazine != "FLEET-7" || resp.Status.State != "scanning" {
			t.Fatalf("start: %+v", resp)
		}
		if resp := r.a.Do(ctx, Request{Cmd: "start"}); resp.OK || resp.Code != CodeBusy {
			t.Errorf("second start: %+v", resp)
		}
		r.wait(t, "scanning slot 0", func(s Status) bool { return s.Current != nil && s.Current.Done > 2 })
		if resp := r.a.Do(ctx, Request{Cmd: "pause"}); !resp.OK || resp.Status.State != "paused" {
			t.Errorf("pause: %+v", resp)
		}
		r.wait(t, "slide 0 done", func(s Status) bool { return s.SlidesDone == 1 })
		if resp := r.a.Do(ctx, Request{Cmd: "resume"}); !resp.OK || resp.Status.State != "scanning" {
			t.Errorf("resume: %+v", resp)
		}
		r.wait(t, "slide 1 started", func(s Status) bool { return s.Current != nil && s.Current.Slot == 1 })
		if resp := r.a.Do(ctx, Request{Cmd: "abort", Reason: "test"}); !resp.OK {
			t.Errorf("abort: %+v", resp)
		}
		r.wait(t, "attention", state("attention"))
		if ev := r.del.eventsOf("magazine_aborted"); len(ev) != 1 || ev[0]["magazine"] != "FLEET-7" {
			t.Errorf("magazine_aborted events: %v", ev)
		}
		if resp := r.a.Do(ctx, Request{Cmd: "reload"}); resp.OK || resp.Code != CodeBadRequest {
			t.Errorf("reload without a file: %+v", resp)
		}
		// A magazine that runs to its end.
		if resp := r.a.Do(ctx, Request{Cmd: "start", Magazine: "FLEET-8"}); !resp.OK {
			t.Fatalf("start: %+v", resp)
		}
		r.wait(t, "done", func(s Status) bool { return s.State == "done" || s.State == "attention" })
		if ev := r.del.eventsOf("magazine_done"); len(ev) != 1 || ev[0]["magazine"] != "FLEET-8" || ev[0]["slides"] != 3 {
			t.Errorf("magazine_done events: %v", ev)
		}
		r.stop(t)
	})
}

// TestFullStorageRefusesSlides: when the delivery cannot store results
// (Admit fails with a storage fault), no slide is scanned: the agent
// latches fault code 9 on the panel and reports it as an event.
func TestFullStorageRefusesSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, 2, nil)
		r.wait(t, "ready", state("ready"))
		r.del.mu.Lock()
		r.del.admitErr = hal.NewFault("storage", hal.FaultStorage, errors.New("outbox: disk full"))
		r.del.mu.Unlock()
		resp := r.a.Do(context.Background(), Request{Cmd: "start"})
		if resp.OK {
			t.Fatalf("start with a full disk: %+v", resp)
		}
		s := r.wait(t, "fault", state("fault"))
		if s.Fault == nil || s.Fault.Code != int(hal.FaultStorage) || s.Current != nil || s.SlidesDone != 0 {
			t.Fatalf("status: %+v %+v", s, s.Fault)
		}
		if _, _, red := panel.Lights(r.panel.View()); red != panel.Code(9) {
			t.Errorf("red LED shows %v, want code 9", red)
		}
		if ev := r.del.eventsOf("fault"); len(ev) != 1 || ev[0]["code"] != 9 {
			t.Errorf("fault events: %v", ev)
		}
		r.del.mu.Lock()
		n := len(r.del.delivered)
		r.del.mu.Unlock()
		if n != 0 {
			t.Errorf("%d results delivered with a full disk", n)
		}
		r.stop(t)
	})
}

// TestMagazineProgressAndResume: status shows the magazine's slots (done,
// pending, rerun); a fault leaves the magazine unfinished and START after
// the acknowledgement resumes it under the same name; an abort forgets it
// (the next START is a new magazine); a failed self-test latches code 8,
// lists its checks in status and in the self_test event, and READY is not
// sent again.
func TestMagazineProgressAndResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cam := hal.NewFault("camera", hal.FaultCamera, errors.New("ENODEV"))
		failAt := map[string]error{"MAG0001-S01": cam}
		var failSelfTest bool
		var mu sync.Mutex
		r := newRigWith(t, 3, failAt, "", func(f *fakeScanner) {
			f.selfTest = func() *scan.SelfTestResult {
				mu.Lock()
				defer mu.Unlock()
				if failSelfTest {
					return &scan.SelfTestResult{Checks: []scan.Check{{Name: "camera", OK: true}, {Name: "focus_reference", Detail: "focus 8 µm off"}},
						Failures: []string{"focus_reference: focus 8 µm off"}}
				}
				return &scan.SelfTestResult{OK: true, Checks: []scan.Check{{Name: "camera", OK: true}, {Name: "focus_reference", OK: true}}}
			}
		})
		s := r.wait(t, "ready", state("ready"))
		if s.SelfTest == nil || !s.SelfTest.OK || s.SelfTest.Context != "startup" || len(s.SelfTest.Checks) != 2 {
			t.Fatalf("startup self-test in status: %+v", s.SelfTest)
		}
		r.press(ButtonStart, false)
		s = r.wait(t, "slot 0 reported", func(s Status) bool { return s.Progress != nil && len(s.Progress.Done) == 1 })
		if p := s.Progress; p.Magazine != "MAG0001" || p.Occupied != 3 || fmt.Sprint(p.Pending) != "[1 2]" || s.Unfinished != "MAG0001" {
			t.Errorf("progress: %+v, unfinished %q", p, s.Unfinished)
		}
		s = r.wait(t, "fault", state("fault"))
		if p := s.Progress; fmt.Sprint(p.Done, p.Rerun, p.Pending) != "[0] [1] [2]" || s.Unfinished != "MAG0001" {
			t.Errorf("after the fault: %+v, unfinished %q", p, s.Unfinished)
		}
		var line strings.Builder
		s.WriteHuman(&line)
		if !strings.Contains(line.String(), "slots:     1 done [0], 1 pending [2], 1 to rerun [1]") || !strings.Contains(line.String(), "unfinished: magazine MAG0001") {
			t.Errorf("status for a person:\n%s", line.String())
		}
		delete(failAt, "MAG0001-S01")
		r.press(ButtonAck, false)
		r.wait(t, "ready", state("ready"))
		if s := r.a.Status(); s.SelfTest.Context != "acknowledge" {
			t.Errorf("self-test after the acknowledgement: %+v", s.SelfTest)
		}
		r.press(ButtonStart, false) // resumes the unfinished magazine
		s = r.wait(t, "resumed", func(s Status) bool { return s.Job == "magazine" })
		if s.Magazine != "MAG0001" {
			t.Errorf("START after a fault started %s, want MAG0001 resumed", s.Magazine)
		}
		r.wait(t, "scanning", func(s Status) bool { return s.Current != nil && s.Current.Done > 2 })
		r.press(ButtonAbort, true)
		s = r.wait(t, "attention", state("attention"))
		if s.Unfinished != "" {
			t.Errorf("aborted magazine still unfinished: %q", s.Unfinished)
		}
		r.press(ButtonAck, false)
		r.wait(t, "ready", state("ready"))
		if resp := r.a.Do(context.Background(), Request{Cmd: "start"}); !resp.OK || resp.Status.Magazine != "MAG0002" {
			t.Errorf("start after an abort: %+v", resp.Status)
		}
		s = r.wait(t, "magazine done", func(s Status) bool { return s.Job == "" && s.State == "done" })
		if p := s.Progress; fmt.Sprint(p.Done, p.Rerun, p.Pending) != "[0 1 2] [] []" || s.Unfinished != "" {
			t.Errorf("finished magazine: %+v, unfinished %q", p, s.Unfinished)
		}
		ps, err := ReadState(r.a.cfg.Agent.StateDir)
		if err != nil || ps.Magazines != 2 || ps.Unfinished != nil || ps.SelfTest == nil {
			t.Errorf("state file: %+v %v", ps, err)
		}

		mu.Lock()
		failSelfTest = true
		mu.Unlock()
		resp := r.a.Do(context.Background(), Request{Cmd: "selftest"})
		if resp.OK || resp.Status == nil || resp.Status.SelfTest == nil || resp.Status.SelfTest.OK || len(resp.Status.SelfTest.Checks) != 2 {
			t.Fatalf("failed self-test answer: %+v", resp)
		}
		s = r.wait(t, "fault", state("fault"))
		if s.Fault == nil || s.Fault.Code != int(hal.FaultSelfTest) || !strings.Contains(s.Fault.Error, "focus 8 µm off") {
			t.Errorf("self-test fault: %+v", s.Fault)
		}
		ev := r.del.eventsOf("self_test")
		if last := ev[len(ev)-1]; last["passed"] != false || last["context"] != "request" || len(last["checks"].([]scan.Check)) != 2 {
			t.Errorf("self_test event: %v", last)
		}
		if r.notify.count("READY=1") != 1 {
			t.Errorf("READY sent %d times", r.notify.count("READY=1"))
		}
		r.stop(t)
	})
}

// TestStartupReportsInterruptedSlide: after an unclean stop the startup
// hands the journal's interrupted slide to delivery and puts it on the
// rerun list before READY; with a journal entry for the slide on the stage
// no second, resultless rerun entry is made.
func TestStartupReportsInterruptedSlide(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Dir(scan.JournalPath(dir, "MAG0001")), 0o750); err != nil {
			t.Fatal(err)
		}
		j := `{"magazine":"MAG0001","slots":{"1":{"slot":1,"slide_id":"LBL-77","result_id":"r1","status":"scanning","tiles_planned":20,"tiles_captured":8}}}`
		if err := os.WriteFile(scan.JournalPath(dir, "MAG0001"), []byte(j), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := writeState(dir, PersistentState{Schema: 1, State: "scanning", Magazines: 1,
			Unfinished: &MagazineRef{Name: "MAG0001", Journal: scan.JournalPath(dir, "MAG0001")},
			Current:    &Current{Magazine: "MAG0001", Slot: 1, SlideID: "LBL-77", Phase: "scan"}}); err != nil {
			t.Fatal(err)
		}
		ir := &scan.Report{ResultID: "r1", SlideID: "LBL-77", Slot: 1, TilesPlanned: 20, TilesCaptured: 8, Verdict: "INCOMPLETE"}
		ir.MarkRerun("interrupted by a restart")
		r := newRigWith(t, 2, nil, dir, func(f *fakeScanner) { f.interrupted = map[string][]*scan.Report{"MAG0001": {ir}} })
		s := r.wait(t, "ready", state("ready"))
		r.del.mu.Lock()
		n := len(r.del.delivered)
		r.del.mu.Unlock()
		if n != 1 || len(s.Rerun) != 1 || s.Rerun[0].ResultID != "r1" || s.Rerun[0].Reason != "interrupted by a restart" || s.Unfinished != "MAG0001" {
			t.Errorf("after startup: %d delivered, rerun %+v, unfinished %q", n, s.Rerun, s.Unfinished)
		}
		r.stop(t)
	})
}

// TestNewMagazineRetiresOldJournal: a fleet that starts a magazine under a
// name used before gets every slot scanned: the earlier magazine's journal
// (slot 0 done) is set aside, not inherited.
func TestNewMagazineRetiresOldJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := scan.JournalPath(dir, "FLEET-1")
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		old := `{"magazine":"FLEET-1","slots":{"0":{"slot":0,"slide_id":"OLD","status":"done"}}}`
		if err := os.WriteFile(p, []byte(old), 0o640); err != nil {
			t.Fatal(err)
		}
		r := newRigWith(t, 2, nil, dir, nil)
		r.wait(t, "ready", state("ready"))
		if resp := r.a.Do(context.Background(), Request{Cmd: "start", Magazine: "FLEET-1"}); !resp.OK {
			t.Fatalf("start: %+v", resp)
		}
		es, err := scan.JournalEntries(dir, "FLEET-1")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.SlideID == "OLD" {
				t.Errorf("the new magazine inherited the old journal: %+v", es)
			}
		}
		kept, _ := filepath.Glob(p + ".retired-*")
		if len(kept) != 1 {
			t.Errorf("old journal kept as %v", kept)
		} else if b, _ := os.ReadFile(kept[0]); string(b) != old {
			t.Errorf("old journal changed: %s", b)
		}
		r.wait(t, "done", func(s Status) bool { return s.State == "done" || s.State == "attention" })
		r.stop(t)
	})
}
