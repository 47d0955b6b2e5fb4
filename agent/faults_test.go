package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"papscan/agent"
	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/hal/camera"
	"papscan/hal/dacfocus"
	"papscan/hal/light"
	"papscan/hal/panel"
	"papscan/hal/stepdir"
	"papscan/hal/ticaxis"
	"papscan/robot"
	"papscan/robot/robottest"
	"papscan/scan"
)

// deviceCheck is the agent's Scanner reduced to what touches every
// device: homing the stage and the focus, the lamp and one camera frame.
// scan.SelfTest does the same and much more (focus sweeps on the
// reference, rendered frames); the subprocess tests in cmd/papscan run it.
type deviceCheck struct{ m hal.Machine }

func (d deviceCheck) Home(ctx context.Context) error {
	if err := d.m.Stage.Home(ctx); err != nil {
		return err
	}
	return d.m.Focus.Home(ctx)
}

func (d deviceCheck) Halt() error { return errors.Join(d.m.Stage.Halt(), d.m.Focus.Halt()) }

func (d deviceCheck) SelfTest(ctx context.Context) (*scan.SelfTestResult, error) {
	if err := d.Home(ctx); err != nil {
		return nil, err
	}
	if err := d.m.Light.SetBrightness(0.5); err != nil {
		return nil, err
	}
	if _, err := d.m.Camera.Capture(ctx, nil); err != nil {
		return nil, err
	}
	return &scan.SelfTestResult{OK: true, Checks: []scan.Check{{Name: "devices", OK: true}}}, nil
}

func (d deviceCheck) Magazine(context.Context, string, func(*scan.Report) error) (*scan.MagazineResult, error) {
	return nil, errors.New("deviceCheck scans no magazine")
}

func (d deviceCheck) RecoverInterrupted(context.Context, string, func(*scan.Report) error) ([]*scan.Report, error) {
	return nil, nil
}

// recordingDelivery keeps the events the agent sends to the fleet.
type recordingDelivery struct {
	mu     sync.Mutex
	events []map[string]any
}

func (d *recordingDelivery) Deliver(context.Context, *scan.Report) error { return nil }
func (d *recordingDelivery) Admit(context.Context) error                 { return nil }
func (d *recordingDelivery) Depth() int                                  { return 0 }
func (d *recordingDelivery) Connected() bool                             { return true }
func (d *recordingDelivery) Flush(context.Context) error                 { return nil }
func (d *recordingDelivery) Event(_ context.Context, kind string, body map[string]any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := map[string]any{"event": kind}
	for k, v := range body {
		e[k] = v
	}
	d.events = append(d.events, e)
	return nil
}

func (d *recordingDelivery) faults() []map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []map[string]any
	for _, e := range d.events {
		if e["event"] == "fault" {
			out = append(out, e)
		}
	}
	return out
}

// TestEveryDriverComboFaultsClearAndMove starts the agent on the simulated
// robot (robot.OpenSim, as `papscan agent --sim` does) for every
// axis/focus/lamp driver combination the configuration accepts. On each device of the fault registry it injects a fault at the
// wire (emulator), checks that the fault shows on the LEDs, in the status
// and in a fault event for the fleet, that ACK clears it (the agent is
// ready again), then parks and jogs every axis. It is what would have
// caught the typed-nil panic of ClearFaults (z on stepdir or dac) and the
// piezo, lamp and camera faults that no acknowledge cleared.
func TestEveryDriverComboFaultsClearAndMove(t *testing.T) {
	if testing.Short() {
		t.Skip("homes the simulated robot of every driver combination many times; skipped in -short")
	}
	for _, xy := range robottest.StageDrivers() {
		for _, z := range robottest.FocusDrivers() {
			for _, lamp := range robottest.LampDrivers() {
				t.Run(fmt.Sprintf("xy=%s,z=%s,light=%s", xy, z, lamp), func(t *testing.T) {
					cfg := robottest.DriverCombo(xy, z, lamp)
					cfg.Agent.StateDir = t.TempDir()
					cfg.Sim.Slides = 1
					if err := cfg.Validate(); err != nil {
						t.Skipf("the configuration refuses this combination: %v", err)
					}
					faultComboRun(t, cfg)
				})
			}
		}
	}
}

func faultComboRun(t *testing.T, cfg *config.Config) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rb, err := robot.OpenSim(ctx, cfg, robot.SimOptions{Synthetic: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	w := rb.World
	dl := &recordingDelivery{}
	presses := make(chan hal.Press)
	ag, err := agent.New(agent.Options{
		Config: cfg,
		NewScanner: func(*config.Config, agent.ScanHooks) (agent.Scanner, error) {
			return deviceCheck{rb.Machine}, nil
		},
		Machine:  rb.Machine,
		Axes:     rb.Axes,
		Faults:   rb.Faults,
		Delivery: dl,
		Panel:    rb.Panel,
		Buttons:  presses,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ag.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			t.Error("agent did not stop")
		}
	}()
	wait := func(what string, cond func(agent.Status) bool) agent.Status {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			if st := ag.Status(); cond(st) {
				return st
			}
			time.Sleep(20 * time.Millisecond)
		}
		st := ag.Status()
		t.Fatalf("timed out waiting for %s; state %s, message %q, fault %+v", what, st.State, st.Message, st.Fault)
		return st
	}
	idleIn := func(s string) func(agent.Status) bool {
		return func(st agent.Status) bool { return st.State == s && st.Job == "" }
	}
	wait("ready after the self-check", idleIn("ready"))

	devs := rb.Faults.Devices()
	// Every axis, the focus and the camera latch; a PCA9685 lamp too.
	want := 4
	if cfg.Machine.Light.Driver == "pca9685" {
		want++
	}
	if len(devs) != want {
		t.Fatalf("fault registry holds %d devices (%v), want %d", len(devs), devs, want)
	}
	for _, d := range devs {
		name := d.String()
		before := len(dl.faults())
		// Inject the fault at the wire, then make the agent use the device.
		var trigger agent.Request
		switch dev := d.(type) {
		case *ticaxis.Axis:
			map[string]interface{ InjectDriverError() }{"x": w.X, "y": w.Y, "z": w.Z}[name].InjectDriverError()
			trigger = agent.Request{Cmd: "jog", Axis: name, UM: 5}
		case *stepdir.Axis:
			um := -200.0 // 16 steps of a stage axis, towards its switch
			if name == "z" {
				um = -5
			}
			// Away from the switch first (a valid move), then a crash
			// pushes the carriage onto the switch without the driver
			// knowing: the next move towards it finds the switch active.
			if resp := ag.Do(ctx, agent.Request{Cmd: "jog", Axis: name, UM: -4 * um}); !resp.OK {
				t.Fatalf("%s: jog away from the switch: %s", name, resp.Error)
			}
			emu := w.StepDir(name)
			emu.Push(-emu.Position())
			trigger = agent.Request{Cmd: "jog", Axis: name, UM: um}
		case *dacfocus.Piezo:
			w.Piezo().InjectNACK(1)
			trigger = agent.Request{Cmd: "jog", Axis: "z", UM: 5}
		case *light.PCA9685:
			w.Lamp().InjectNACK(1)
			trigger = agent.Request{Cmd: "selftest"}
		case *camera.Recovering:
			w.UnplugCamera(0)
			trigger = agent.Request{Cmd: "selftest"}
		default:
			t.Fatalf("no fault injection for %T %s", dev, name)
		}
		resp := ag.Do(ctx, trigger)
		if resp.OK {
			t.Errorf("%s: %s with a fault injected succeeded", name, trigger.Cmd)
		}
		// The status changes first, then the LEDs, then the fleet event.
		st := wait(name+"'s fault on the LEDs and to the fleet", func(st agent.Status) bool {
			return idleIn("fault")(st) && rb.Panel.View().State == panel.StateFault && len(dl.faults()) > before
		})
		latched := rb.Faults.Faults()
		if len(latched) != 1 || !strings.Contains(name, latched[0].Device) {
			t.Errorf("%s: latched faults %v, want this device's", name, latched)
		}
		if st.Fault == nil || len(latched) == 0 || st.Fault.Code != int(latched[0].Code) || st.Fault.Device != latched[0].Device {
			t.Fatalf("%s: status fault %+v, latched %v", name, st.Fault, latched)
		}
		if v := rb.Panel.View(); int(v.Fault) != st.Fault.Code {
			t.Errorf("%s: LEDs show %+v, want the fault code %d", name, v, st.Fault.Code)
		}
		if e := dl.faults()[len(dl.faults())-1]; e["code"] != st.Fault.Code || e["device"] != st.Fault.Device {
			t.Errorf("%s: fleet event %v, status fault %+v", name, e, st.Fault)
		}
		if _, ok := d.(*camera.Recovering); ok {
			w.Camera.Reconnect() // the technician plugs the camera back in
		}
		presses <- hal.Press{Button: agent.ButtonAck}
		wait(name+": ready after ACK", idleIn("ready"))
		if f := rb.Faults.Faults(); len(f) != 0 {
			t.Errorf("%s: faults left after ACK: %v", name, f)
		}
	}

	if resp := ag.Do(ctx, agent.Request{Cmd: "park"}); !resp.OK {
		t.Errorf("park: %s", resp.Error)
	}
	for name, ax := range rb.Axes {
		um := 200.0
		if name == "z" {
			um = 5
		}
		before, _ := ax.Position()
		if resp := ag.Do(ctx, agent.Request{Cmd: "jog", Axis: name, UM: um}); !resp.OK {
			t.Errorf("jog %s: %s", name, resp.Error)
			continue
		}
		after, _ := ax.Position()
		if after <= before {
			t.Errorf("jog %s by %g µm: %s -> %s", name, um, before, after)
		}
	}
	if len(rb.Axes) != 3 {
		t.Errorf("axes %v, want x, y, z", rb.Axes)
	}
}
