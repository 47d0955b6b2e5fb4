package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/panel"
	"papscan/scan"
)

// loopTick is how often the control loop turns when nothing happens: it
// beats, refreshes the LEDs' network overlay and systemd's STATUS=. With a
// watchdog it turns at least 8 times per watchdog period, so a healthy loop
// always beats within the watchdog's limit of half a period.
const loopTick = 250 * time.Millisecond

func (a *Agent) tick() time.Duration {
	if a.o.Watchdog > 0 {
		return min(loopTick, a.o.Watchdog/8)
	}
	return loopTick
}

// Agent is the long-running agent. Build it with New and call Run once.
type Agent struct {
	o      Options
	log    *slog.Logger
	now    func() time.Time
	health *Health

	stateDir string // agent.state_dir; a reload never changes it

	// Owned by the control loop (cfg: replaced by it under mu).
	cfg       *config.Config
	state     State
	job       string
	lastJob   string // the job that ended last
	jobCancel context.CancelFunc
	jobDone   chan jobResult
	waiter    chan<- Response // socket request waiting for the job
	magazines int
	ready     bool
	lastLine  string
	lastView  panel.View
	viewShown bool
	announced State // the state StateChanged was last called with (-1: none yet)

	// Shared with the job goroutine and the socket.
	mu     sync.Mutex
	st     Status
	ps     PersistentState
	paused bool
	// damage is the state file's damage found by New (nil: none); the
	// startup reports it and recovers the interrupted slides it lists.
	damage *StateDamage
	// stateFault is a storage fault to latch (a damaged or unwritable
	// state file) once the agent is idle; nil: none.
	stateFault *hal.Fault
	resume     chan struct{} // closed when a pause ends

	reqs     chan request
	stopping chan struct{} // closed when the stop sequence begins
}

type jobResult struct {
	name string
	err  error
}

// New checks the options and returns an agent.
func New(o Options) (*Agent, error) {
	if o.Config == nil || o.NewScanner == nil || o.Delivery == nil || o.Machine.Loader == nil {
		return nil, errors.New("agent: Config, NewScanner, Delivery and Machine.Loader are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Health == nil {
		o.Health = NewHealth(o.Now)
	}
	if o.Magazine == nil {
		o.Magazine = func(n int) string { return fmt.Sprintf("MAG%04d", n) }
	}
	a := &Agent{
		o: o, log: o.Log, now: o.Now, health: o.Health, cfg: o.Config, stateDir: o.Config.Agent.StateDir,
		jobDone: make(chan jobResult, 1), reqs: make(chan request), stopping: make(chan struct{}),
		announced: -1,
	}
	ps, dmg := LoadState(o.Config.Agent.StateDir, o.Now())
	if dmg != nil {
		// The damaged file is kept aside for a person; the state was
		// rebuilt from the journals. The agent still starts: the startup
		// reports the interrupted slides and the damage, and a storage
		// fault is latched.
		a.log.Error("state file damaged; kept aside, state recovered from the journals", "err", dmg.Err, "kept", dmg.Kept,
			"unfinished", dmg.Unfinished, "interrupted", dmg.Interrupted, "rerun", dmg.Rerun)
		a.damage = dmg
		// A new magazine never takes a journalled name (RetireJournal
		// would keep it safe, but the fleet would see a name twice).
		for range maxMagazines {
			if _, err := os.Lstat(scan.JournalPath(o.Config.Agent.StateDir, o.Magazine(ps.Magazines+1))); err != nil {
				break
			}
			ps.Magazines++
		}
	}
	if c := ps.Current; c != nil {
		// The previous run died with a slide on the stage (power cut,
		// kill). If the magazine's journal knows the slide, the startup
		// reports it from there (INCOMPLETE, rerun; or it was already
		// reported); if it died before the journal did (loading, reading
		// the label), no result exists: the to-do list says so.
		if !journalKnows(o.Config.Agent.StateDir, ps.Unfinished, c) {
			ps.Rerun = addRerun(ps.Rerun, Rerun{Magazine: c.Magazine, Slot: c.Slot, SlideID: c.SlideID,
				Reason: "agent stopped uncleanly during " + c.Phase + "; no result was stored", At: o.Now()})
		}
		ps.Current = nil
	}
	ps.Schema, ps.PID = 1, os.Getpid()
	if ps.Rerun == nil {
		ps.Rerun = []Rerun{}
	}
	a.ps = ps
	a.st = Status{State: StateStarting.String(), PID: os.Getpid(), Started: o.Now(), Config: o.ConfigPath, Rerun: ps.Rerun, SelfTest: ps.SelfTest}
	if ps.Unfinished != nil {
		a.st.Unfinished = ps.Unfinished.Name
	}
	return a, nil
}

// journalKnows reports whether the unfinished magazine's journal has an
// entry for the slide c.
func journalKnows(stateDir string, u *MagazineRef, c *Current) bool {
	if u == nil || u.Name != c.Magazine {
		return false
	}
	es, err := scan.JournalEntries(stateDir, u.Name)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(es, func(e scan.JournalEntry) bool { return e.Slot == c.Slot })
}

// sameSlide: the same slide, by its ID or by its magazine slot (a slide
// named by its slot before its label was read is the same slide).
func sameSlide(x, r Rerun) bool {
	return x.SlideID == r.SlideID || (x.Magazine == r.Magazine && x.Slot == r.Slot)
}

func addRerun(rs []Rerun, r Rerun) []Rerun {
	rs = slices.DeleteFunc(rs, func(x Rerun) bool { return sameSlide(x, r) })
	return append(rs, r)
}

// Status is a snapshot of the agent's state.
func (a *Agent) Status() Status {
	a.mu.Lock()
	s := a.st
	s.Paused = a.paused
	s.Rerun = slices.Clone(a.ps.Rerun)
	s.Progress = s.Progress.clone()
	if s.Current != nil {
		c := *s.Current
		s.Current = &c
	}
	a.mu.Unlock()
	s.OutboxDepth = a.o.Delivery.Depth()
	s.BrokerConnected = a.o.Delivery.Connected()
	lm, jm := watchdogLimits(a.o.Watchdog)
	if a.o.Watchdog == 0 {
		lm, jm = 4*loopTick, time.Minute
	}
	s.Healthy = a.health.Healthy(lm, jm)
	return s
}

func (a *Agent) update(f func(s *Status)) {
	a.mu.Lock()
	f(&a.st)
	a.mu.Unlock()
}

// setState changes the panel state (loop only), records it and announces
// a transition (or a newly latched fault) to Options.StateChanged.
func (a *Agent) setState(s State, msg string) {
	a.state = s
	a.update(func(st *Status) {
		st.State = s.String()
		if msg != "" {
			st.Message = msg
		}
		if s != StateFault {
			st.Fault = nil
		}
	})
	a.persist()
	a.refresh()
	if s != a.announced || s == StateFault {
		a.announced = s
		if a.o.StateChanged != nil {
			a.o.StateChanged(s)
		}
	}
}

// persist writes the state file from the current status.
func (a *Agent) persist() {
	a.mu.Lock()
	ps := a.ps
	ps.State, ps.Updated, ps.Fault = a.st.State, a.now(), a.st.Fault
	if a.st.Current != nil {
		c := *a.st.Current
		ps.Current = &c
	} else {
		ps.Current = nil
	}
	ps.Rerun = slices.Clone(a.ps.Rerun)
	a.mu.Unlock()
	if err := writeState(a.stateDir, ps); err != nil {
		if scan.FDExhausted(err) {
			// Out of file descriptors: nothing wrong with the disk; the
			// next state change writes the whole file again.
			a.log.Warn("state file not written: out of file descriptors; retried at the next state change", "err", err)
			return
		}
		a.log.Error("state file not written", "err", err)
		a.latchStateFault(err)
	}
}

// latchStateFault records a storage fault of the state file (the first
// one until it is latched): the control loop latches it once idle
// (checkLatched), as the journal latches its own.
func (a *Agent) latchStateFault(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stateFault == nil {
		a.stateFault = hal.NewFault("state_dir", hal.FaultStorage, err)
	}
}

// refresh shows the state on the LEDs and in systemd's STATUS= (loop only).
func (a *Agent) refresh() {
	st := a.Status()
	var code hal.FaultCode
	if st.Fault != nil {
		code = hal.FaultCode(st.Fault.Code)
	}
	v := View(a.state, code, !st.BrokerConnected)
	if a.o.Panel != nil && (!a.viewShown || v != a.lastView) {
		if err := a.o.Panel.ShowView(v); err != nil {
			a.log.Warn("panel LEDs", "err", err)
		}
		a.lastView, a.viewShown = v, true
	}
	if line := st.Line(); line != a.lastLine && a.o.Notifier != nil {
		_ = a.o.Notifier.Status(line)
		a.lastLine = line
	}
}

// Run runs the agent until ctx ends (SIGTERM), then stops cleanly: the slide
// being scanned is finished or marked for rerun, the stage parked, results
// flushed. It returns nil after a clean stop.
func (a *Agent) Run(ctx context.Context) error {
	var srv *server
	if a.o.Socket != "" {
		var err error
		if srv, err = a.serve(a.o.Socket); err != nil {
			return err
		}
		defer srv.close()
	}
	wctx, stopWatchdog := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWatchdog()
	if a.o.Watchdog > 0 && a.o.Notifier != nil {
		go runWatchdog(wctx, a.o.Notifier, a.health, a.o.Watchdog, func() {
			a.log.Error("control loop or machine job stalled: watchdog not pinged")
		})
	}
	a.setState(StateStarting, "self-check")
	a.startJob(ctx, "selftest", a.startup)

	var stall <-chan struct{}
	if a.o.Hooks != nil {
		stall = a.o.Hooks.Stall
	}
	t := time.NewTicker(a.tick())
	defer t.Stop()
	for {
		a.health.LoopBeat()
		select {
		case <-ctx.Done():
			return a.stop(ctx)
		case <-t.C:
			a.checkLatched(ctx)
			a.refresh()
		case p, ok := <-a.o.Buttons:
			if !ok {
				a.o.Buttons = nil
				continue
			}
			a.onPress(ctx, p)
		case r := <-a.jobDone:
			a.onJobDone(ctx, r)
		case req := <-a.reqs:
			a.onRequest(ctx, req)
		case <-a.o.Hup:
			_ = a.reload()
		case <-stall:
			a.log.Error("TEST HOOK: control loop stalled on purpose (PAPSCAN_TESTHOOK_STALL)")
			<-ctx.Done()
			return a.stop(ctx)
		}
	}
}

// checkLatched turns a fault a device latched while the agent is idle
// (no job; not already in fault) into the agent's fault: LEDs, status and
// the fleet (loop only). A job's own failure is reported when it ends.
func (a *Agent) checkLatched(ctx context.Context) {
	if a.job != "" || a.state == StateFault || a.state == StateStopping || a.state == StateStarting {
		return
	}
	a.mu.Lock()
	sf := a.stateFault
	a.stateFault = nil
	a.mu.Unlock()
	if sf != nil {
		a.fault(ctx, sf)
		return
	}
	if a.o.Faults == nil {
		return
	}
	if fs := a.o.Faults.Faults(); len(fs) > 0 {
		a.fault(ctx, fs[0])
	}
}

// startJob runs f on the job goroutine; false if a job is running.
func (a *Agent) startJob(ctx context.Context, name string, f func(context.Context) error) bool {
	if a.job != "" {
		return false
	}
	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.job, a.jobCancel = name, cancel
	a.update(func(s *Status) { s.Job = name })
	a.health.jobStarted(true)
	go func() {
		err := f(jctx)
		a.health.jobStarted(false)
		a.jobDone <- jobResult{name, err}
	}()
	return true
}

// startup accounts for a slide a restart interrupted (from the unfinished
// magazine's journal: INCOMPLETE, rerun) and runs the self-check.
func (a *Agent) startup(ctx context.Context) error {
	a.mu.Lock()
	u := a.ps.Unfinished
	dmg := a.damage
	a.damage = nil
	a.mu.Unlock()
	if dmg != nil {
		a.event(ctx, "state_file_damaged", map[string]any{"error": dmg.Err.Error(), "kept": dmg.Kept,
			"unfinished": dmg.Unfinished, "interrupted": dmg.Interrupted, "rerun_recovered": dmg.Rerun})
		// Every other magazine whose journal holds an interrupted slide
		// (the unfinished one is below).
		for _, m := range dmg.Interrupted {
			if u != nil && m == u.Name {
				continue
			}
			sc, err := a.newScanner()
			if err != nil {
				return err
			}
			if _, err := sc.RecoverInterrupted(ctx, m, a.onReport(m, false)); err != nil {
				return err
			}
		}
		a.latchStateFault(dmg)
	}
	if u != nil {
		sc, err := a.newScanner()
		if err != nil {
			return err
		}
		rs, err := sc.RecoverInterrupted(ctx, u.Name, a.onReport(u.Name, false))
		if err != nil {
			return err
		}
		if len(rs) > 0 {
			a.log.Warn("a restart interrupted a slide: reported INCOMPLETE for rerun", "magazine", u.Name, "slides", len(rs))
		}
		a.log.Info("unfinished magazine: START resumes it", "magazine", u.Name, "journal", u.Journal)
	}
	return a.homeAndCheck("startup")(ctx)
}

func (a *Agent) newScanner() (Scanner, error) {
	return a.o.NewScanner(a.config(), ScanHooks{Progress: a.progress, BeforeSlide: a.beforeSlide})
}

// config is the running configuration (jobs read it; a reload replaces it
// on the loop).
func (a *Agent) config() *config.Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// homeAndCheck clears the drivers' faults and runs the hardware self-test
// (scan.SelfTest: home repeatability, focus on the reference, camera,
// illumination). A failed check is a self-test fault (code 8).
func (a *Agent) homeAndCheck(why string) func(context.Context) error {
	return func(ctx context.Context) error {
		if a.o.Faults != nil {
			if err := a.o.Faults.Clear(); err != nil {
				return err
			}
		}
		sc, err := a.newScanner()
		if err != nil {
			return err
		}
		var res *scan.SelfTestResult
		if a.o.Hooks != nil && a.o.Hooks.SelfTestError != nil {
			if err := sc.Home(ctx); err != nil {
				return err
			}
			msg := a.o.Hooks.SelfTestError.Error()
			res = &scan.SelfTestResult{At: a.now(), Checks: []scan.Check{{Name: "test_hook", Detail: msg}}, Failures: []string{"test_hook: " + msg}}
		} else if res, err = sc.SelfTest(ctx); err != nil {
			return err
		}
		a.recordSelfTest(why, res)
		if !res.OK {
			return hal.NewFault("selftest", hal.FaultSelfTest, fmt.Errorf("%w: %s", scan.ErrSelfTest, strings.Join(res.Failures, "; ")))
		}
		return nil
	}
}

// recordSelfTest keeps a self-test's outcome for status and the state file.
func (a *Agent) recordSelfTest(why string, res *scan.SelfTestResult) {
	if res == nil {
		return
	}
	info := &SelfTestInfo{Context: why, SelfTestResult: *res}
	a.mu.Lock()
	a.st.SelfTest, a.ps.SelfTest = info, info
	a.mu.Unlock()
	a.persist()
	lvl := slog.LevelInfo
	if !res.OK {
		lvl = slog.LevelError
	}
	a.log.Log(context.Background(), lvl, "self-test", "context", why, "ok", res.OK, "checks", len(res.Checks), "failures", strings.Join(res.Failures, "; "))
}

func (a *Agent) progress(p scan.Progress) {
	a.health.Beat()
	a.update(func(s *Status) {
		if c := s.Current; c != nil {
			// The slide is renamed by its label once read.
			c.SlideID, c.Phase, c.Done, c.Total = p.SlideID, p.Phase, p.Done, p.Total
		}
	})
}

// storageError is a result that could not be stored.
type storageError struct{ err error }

func (e storageError) Error() string { return "storing the result: " + e.err.Error() }
func (e storageError) Unwrap() error { return e.err }

// runMagazine scans the magazine through scan's Magazine (self-tests
// before and after, journalled progress, label-named slides); the agent
// holds it between slides while paused (beforeSlide) and records each
// report (onReport). The status names the magazine before the job runs,
// so the answer to the request that started it already shows it.
func (a *Agent) runMagazine(mag string, sc Scanner) func(context.Context) error {
	prog := a.initialProgress(mag)
	a.update(func(s *Status) { s.Magazine, s.SlidesDone, s.Current, s.Progress = mag, 0, nil, prog })
	return func(ctx context.Context) error {
		res, err := sc.Magazine(ctx, mag, a.onReport(mag, true))
		if res != nil {
			if res.After != nil {
				a.recordSelfTest("after_magazine", res.After)
			} else if res.Before != nil {
				a.recordSelfTest("before_magazine", res.Before)
			}
		}
		a.update(func(s *Status) {
			s.Current = nil
			if s.Progress != nil {
				s.Progress.Current = nil
			}
		})
		a.persist()
		return err
	}
}

// initialProgress lists the magazine's occupied slots, those its journal
// shows done (before a restart) as done, the others pending.
func (a *Agent) initialProgress(mag string) *MagazineProgress {
	p := &MagazineProgress{Magazine: mag, Done: []int{}, Rerun: []int{}, Pending: []int{}}
	done := map[int]bool{}
	if es, err := scan.JournalEntries(a.stateDir, mag); err == nil {
		for _, e := range es {
			done[e.Slot] = e.Status == scan.JournalDone
		}
	}
	l := a.o.Machine.Loader
	for slot := range l.Slots() {
		if ok, err := l.Occupied(slot); err != nil || !ok {
			continue
		}
		p.Occupied++
		if done[slot] {
			p.Done = append(p.Done, slot)
		} else {
			p.Pending = append(p.Pending, slot)
		}
	}
	return p
}

// beforeSlide is asked by the magazine before it loads a slot: it holds
// while a pause is requested and refuses the slide when no result could be
// stored now (Delivery.Admit).
func (a *Agent) beforeSlide(ctx context.Context, slot int) error {
	if err := a.waitWhilePaused(ctx); err != nil {
		return err
	}
	if err := a.o.Delivery.Admit(ctx); err != nil {
		return err
	}
	a.update(func(s *Status) {
		s.Current = &Current{Magazine: s.Magazine, Slot: slot, SlideID: scan.SlideID(s.Magazine, slot), Phase: "load"}
		if s.Progress != nil {
			v := slot
			s.Progress.Current = &v
		}
	})
	a.persist()
	return nil
}

// onReport stores each report of magazine mag durably (even when the job
// is being stopped: an INCOMPLETE result on disk is how a stopped slide is
// accounted for) and keeps the rerun list and the progress: a result that
// is not complete, or is marked for rerun, puts the slide on the list; a
// complete one takes it off. counted: a slide of this job (SlidesDone).
func (a *Agent) onReport(mag string, counted bool) func(*scan.Report) error {
	return func(r *scan.Report) error {
		dctx, cancel := context.WithTimeout(context.Background(), FlushBudget)
		err := a.o.Delivery.Deliver(dctx, r)
		cancel()
		if err != nil {
			return storageError{err}
		}
		complete := r.Complete() && !r.Rerun
		a.mu.Lock()
		x := Rerun{Magazine: mag, Slot: r.Slot, SlideID: r.SlideID, ResultID: r.ResultID, At: a.now()}
		if complete {
			a.ps.Rerun = slices.DeleteFunc(a.ps.Rerun, func(y Rerun) bool { return sameSlide(y, x) })
		} else {
			x.Reason = r.RerunReason
			if x.Reason == "" {
				x.Reason = "incomplete scan"
				if r.Error != "" {
					x.Reason += ": " + r.Error
				}
			}
			a.ps.Rerun = addRerun(a.ps.Rerun, x)
		}
		if counted && r.Supersedes == "" {
			a.st.SlidesDone++
		}
		if p := a.st.Progress; p != nil && p.Magazine == mag {
			p.reported(r.Slot, complete)
		}
		if c := a.st.Current; c != nil && c.Slot == r.Slot {
			a.st.Current = nil
		}
		a.mu.Unlock()
		a.persist()
		return nil
	}
}

// waitWhilePaused blocks while a pause is requested.
func (a *Agent) waitWhilePaused(ctx context.Context) error {
	for {
		a.mu.Lock()
		paused, resume := a.paused, a.resume
		a.mu.Unlock()
		if !paused {
			return ctx.Err()
		}
		a.health.jobStarted(false) // waiting for a person is not a stall
		select {
		case <-ctx.Done():
			a.health.jobStarted(true)
			return ctx.Err()
		case <-resume:
			a.health.jobStarted(true)
		}
	}
}

func (a *Agent) setPaused(on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if on == a.paused {
		return
	}
	a.paused = on
	if on {
		a.resume = make(chan struct{})
	} else {
		close(a.resume)
	}
}

// startMagazine starts scanning a magazine (loop only), named name or,
// if name is "", by Options.Magazine. It returns why it did not start.
func (a *Agent) startMagazine(ctx context.Context, name string) error {
	if name != "" {
		// Every path (socket, fleet, panel) names magazines the same way:
		// a name is a directory under the state directory.
		if err := scan.ValidateMagazine(name); err != nil {
			return errRefused{"start refused: " + err.Error(), CodeBadRequest}
		}
	}
	if why := a.refusal("start"); why != "" {
		return errRefused{why, CodeBusy}
	}
	switch a.state {
	case StateFault:
		return errRefused{"start refused: a fault is latched; acknowledge it first (ACK)", CodeInvalidState}
	case StateStarting:
		return errRefused{"start refused: the self-check has not passed", CodeInvalidState}
	}
	if err := a.o.Delivery.Admit(ctx); err != nil {
		a.fault(ctx, err)
		return err
	}
	sc, err := a.newScanner()
	if err != nil {
		a.fault(ctx, err)
		return err
	}
	a.magazines++
	a.mu.Lock()
	mag, resumed := name, false
	switch u := a.ps.Unfinished; {
	case u != nil && (name == "" || name == u.Name):
		mag, resumed = u.Name, true
	case name == "":
		a.ps.Magazines++
		mag = a.o.Magazine(a.ps.Magazines)
	}
	if u := a.ps.Unfinished; u != nil && !resumed {
		a.log.Warn("unfinished magazine set aside for a new one; its journal stays", "unfinished", u.Name, "journal", u.Journal, "magazine", mag)
	}
	if !resumed {
		// A new magazine never inherits the journal of an earlier one of
		// the same name: its "done" slots would be skipped unscanned.
		if old, err := scan.RetireJournal(a.stateDir, mag, a.now()); err != nil {
			a.mu.Unlock()
			a.fault(ctx, hal.NewFault("storage", hal.FaultStorage, err))
			return err
		} else if old != "" {
			a.log.Warn("a journal of an earlier magazine with this name was set aside; every slot will be scanned", "magazine", mag, "kept", old)
		}
		a.ps.Unfinished = &MagazineRef{Name: mag, Journal: scan.JournalPath(a.stateDir, mag), Started: a.now()}
	}
	a.st.Unfinished = mag
	a.mu.Unlock()
	a.persist() // the magazine is known before its first slide: a restart resumes it
	a.setPaused(false)
	a.startJob(ctx, "magazine", a.runMagazine(mag, sc))
	verb := "started"
	if resumed {
		verb = "resumed"
	}
	a.log.Info("magazine "+verb, "magazine", mag)
	a.setState(StateScanning, "scanning magazine "+mag+" ("+verb+")")
	return nil
}

// endMagazine forgets the unfinished magazine (it ended, or was aborted).
func (a *Agent) endMagazine() {
	a.mu.Lock()
	a.ps.Unfinished, a.st.Unfinished = nil, ""
	a.mu.Unlock()
	a.persist()
}

// selfTestEvent reports the last self-test to the fleet, check by check.
func (a *Agent) selfTestEvent(ctx context.Context, passed bool) {
	ev := map[string]any{"passed": passed}
	if t := a.Status().SelfTest; t != nil {
		ev["context"], ev["checks"], ev["failures"] = t.Context, t.Checks, t.Failures
	}
	a.event(ctx, "self_test", ev)
}

// onJobDone handles the end of a job (loop only).
func (a *Agent) onJobDone(ctx context.Context, r jobResult) {
	a.job, a.jobCancel, a.lastJob = "", nil, r.name
	a.update(func(s *Status) { s.Job = "" })
	if w := a.waiter; w != nil {
		a.waiter = nil
		resp := Response{OK: r.err == nil}
		if r.err != nil {
			resp.Error = r.err.Error()
		}
		st := a.Status()
		resp.Status = &st
		w <- resp
	}
	switch {
	case r.err == nil && r.name == "selftest":
		a.log.Info("self-check passed")
		a.becomeReady()
		a.setState(StateReady, "self-check passed")
		a.selfTestEvent(ctx, true)
		if a.o.Autostart && a.magazines == 0 {
			_ = a.startMagazine(ctx, "")
		}
	case r.err == nil && r.name == "magazine":
		a.setPaused(false)
		a.endMagazine()
		st := a.Status()
		rerun := 0
		var done []int
		if p := st.Progress; p != nil {
			rerun, done = len(p.Rerun), p.Done
		}
		if rerun > 0 {
			a.setState(StateAttention, fmt.Sprintf("magazine %s done; %d slides need a rerun", st.Magazine, rerun))
		} else {
			a.setState(StateDone, fmt.Sprintf("magazine %s done: %d slides", st.Magazine, st.SlidesDone))
		}
		a.log.Info("magazine done", "magazine", st.Magazine, "slides", st.SlidesDone, "rerun", rerun)
		ev := map[string]any{"magazine": st.Magazine, "slides": st.SlidesDone, "rerun": rerun, "done_slots": done}
		if t := st.SelfTest; t != nil && t.Context == "after_magazine" {
			ev["selftest_after_passed"] = t.OK
		}
		a.event(ctx, "magazine_done", ev)
	case r.err == nil:
		a.setState(StateReady, r.name+" done")
	case errors.Is(r.err, context.Canceled):
		a.setPaused(false)
		a.halt()
		a.setState(StateAttention, r.name+" aborted")
		if r.name == "magazine" {
			a.endMagazine() // aborted on purpose: START begins a new magazine
			st := a.Status()
			rerun := 0
			if p := st.Progress; p != nil {
				rerun = len(p.Rerun)
			}
			a.event(ctx, "magazine_aborted", map[string]any{"magazine": st.Magazine, "slides": st.SlidesDone, "rerun": rerun})
		}
	case r.name == "jog" && (errors.Is(r.err, hal.ErrOutOfTravel) || errors.Is(r.err, hal.ErrNotHomed)):
		a.setState(StateReady, "jog refused: "+r.err.Error())
	default:
		if r.name == "selftest" {
			a.selfTestEvent(ctx, false)
		}
		a.fault(ctx, r.err)
	}
}

// becomeReady sends READY=1 once: the configuration is valid (checked
// before the agent was built), delivery is open (likewise) and the
// self-check passed.
func (a *Agent) becomeReady() {
	if a.ready {
		return
	}
	a.ready = true
	a.update(func(s *Status) { s.Ready = true })
	if a.o.Notifier != nil {
		_ = a.o.Notifier.Ready()
	}
}

// faultInfo classifies err for the LED and the fleet.
func faultInfo(err error, at time.Time) *FaultInfo {
	fi := &FaultInfo{Error: err.Error(), At: at}
	var se storageError
	switch f := hal.FaultOf(err); {
	case f != nil:
		fi.Code, fi.Device = int(f.Code), f.Device
	case errors.As(err, &se):
		fi.Code, fi.Device = int(hal.FaultStorage), "state_dir"
	case errors.Is(err, hal.ErrTimeout), errors.Is(err, hal.ErrNotHomed), errors.Is(err, hal.ErrOutOfTravel):
		fi.Code, fi.Device = int(hal.FaultMotion), "motion"
	default:
		fi.Code, fi.Device = int(hal.FaultInternal), "agent"
	}
	fi.Name = hal.FaultCode(fi.Code).String()
	return fi
}

// fault halts motion, latches the fault for the technician and reports it.
func (a *Agent) fault(ctx context.Context, err error) {
	a.halt()
	a.setPaused(false)
	fi := faultInfo(err, a.now())
	if c := hal.FaultCode(fi.Code); (c == hal.FaultSelfTest || c == hal.FaultInternal) && a.o.Faults != nil {
		// A failed self-check (or an unclassified error) caused by a
		// device's latched fault shows that device's code.
		if fs := a.o.Faults.Faults(); len(fs) > 0 {
			fi.Code, fi.Device, fi.Name = int(fs[0].Code), fs[0].Device, fs[0].Code.String()
		}
	}
	a.log.Error("fault: motion halted; press ACK to clear and re-home", "code", fi.Code, "fault", fi.Name, "device", fi.Device, "err", err)
	a.update(func(s *Status) { s.Fault = fi })
	a.setState(StateFault, "")
	ev := map[string]any{"code": fi.Code, "name": fi.Name, "device": fi.Device, "error": fi.Error}
	if a.job == "selftest" || a.lastJob == "selftest" || fi.Code == int(hal.FaultSelfTest) {
		ev["during"] = "self_test"
	}
	a.event(ctx, "fault", ev)
}

// event stores an event for the fleet through the durable delivery.
func (a *Agent) event(ctx context.Context, kind string, body map[string]any) {
	ectx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := a.o.Delivery.Event(ectx, kind, body); err != nil {
		a.log.Warn("event not stored", "event", kind, "err", err)
	}
}

func (a *Agent) halt() {
	var errs []error
	if s := a.o.Machine.Stage; s.X != nil && s.Y != nil {
		errs = append(errs, s.Halt())
	}
	if f := a.o.Machine.Focus; f != nil {
		errs = append(errs, f.Halt())
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Error("halt", "err", err)
	}
}
