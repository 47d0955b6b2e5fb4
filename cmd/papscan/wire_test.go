package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/agent"
	"papscan/remote"
	"papscan/telemetry"
	"papscan/telemetry/broker"
	fleetcmd "papscan/telemetry/command"
	"papscan/telemetry/fleet"
)

// freeAddr is a loopback address nothing listens on (yet).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// withBroker points the sim configuration at url.
func withBroker(url string, more func(string) string) func(string) string {
	return func(s string) string {
		s = strings.Replace(s, "brokers: []", fmt.Sprintf("brokers: [%q]", url), 1)
		s = strings.Replace(s, "health_interval: 1m0s", "health_interval: 1s", 1)
		if more != nil {
			s = more(s)
		}
		return s
	}
}

// fleetSide is the in-process fleet: the reference receiver (stores and
// acks results and events) on a broker.
type fleetSide struct {
	mu      sync.Mutex
	records []fleet.Record
	stop    func()
}

func startFleet(t *testing.T, url string) *fleetSide {
	return startFleetWith(t, url, "fleet-test", nil)
}

// startFleetWith is startFleet with the receiver's client ID and, if
// ackKey is set, acks signed with it.
func startFleetWith(t *testing.T, url, clientID string, ackKey *fleetcmd.SigningKey) *fleetSide {
	t.Helper()
	f := &fleetSide{}
	store, err := fleet.OpenStore(filepath.Join(t.TempDir(), "fleet.db"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := fleet.Options{Brokers: []string{url}, ClientID: clientID, OnStored: func(rs []fleet.Record) {
		f.mu.Lock()
		f.records = append(f.records, rs...)
		f.mu.Unlock()
	}}
	if ackKey != nil {
		o.SignAck = func(a *telemetry.Ack) { fleetcmd.SignAck(*ackKey, a) }
	}
	r, err := fleet.Start(ctx, store, o)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	f.stop = func() { once.Do(func() { cancel(); <-r.Done(); r.Close(); store.Close() }) }
	t.Cleanup(f.stop)
	return f
}

func (f *fleetSide) count(kind, event string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.records {
		if r.Kind == kind && (event == "" || r.Event == event) {
			n++
		}
	}
	return n
}

// TestAgentOfflineThenBrokerAppears: the agent starts with its broker
// down, still becomes READY, scans the magazine and keeps every result in
// its durable outbox (status: broker DOWN, outbox depth); when the broker
// comes up it connects by itself, the sender delivers and the fleet's
// acks empty the outbox. The robot trusts one receiver key
// (agent.mqtt.ack_keys): a receiver acking unsigned first is refused and
// the results stay until the signing receiver acks them.
func TestAgentOfflineThenBrokerAppears(t *testing.T) {
	addr := freeAddr(t)
	recvKey, err := fleetcmd.GenerateKey(rand.Reader, "lab-receiver")
	if err != nil {
		t.Fatal(err)
	}
	a := startAgentWith(t, withBroker("tcp://"+addr, func(s string) string {
		s = strings.Replace(s, "ack_keys: []", fmt.Sprintf("ack_keys: [%q]", recvKey.Public().String()), 1)
		return smallSlides(strings.Replace(s, "slides: 2", "slides: 1", 1))
	}), nil, "--autostart")
	a.waitFor("READY=1", 2*time.Minute, func() bool { return a.count("READY=1") > 0 })
	if st := a.status(); st.BrokerConnected || !st.Ready {
		t.Fatalf("status with no broker: %+v", st)
	}
	a.waitFor("magazine done", 5*time.Minute, func() bool {
		st := a.status()
		return st.Job == "" && (st.State == "done" || st.State == "attention")
	})
	st := a.status()
	if st.SlidesDone != 1 || st.OutboxDepth < 2 || st.BrokerConnected {
		t.Fatalf("after the magazine, broker down: %+v", st)
	}
	if len(readResults(t, a.stateDir)) != 1 {
		t.Errorf("results on disk: %v", readResults(t, a.stateDir))
	}
	sawDown := false
	for _, m := range a.msgs() {
		sawDown = sawDown || (strings.HasPrefix(m, "STATUS=") && strings.Contains(m, "broker DOWN"))
	}
	if !sawDown {
		t.Errorf("STATUS= never said broker DOWN: %q", a.msgs())
	}

	b, err := broker.Start(context.Background(), addr, nil)
	if err != nil {
		t.Fatalf("broker on %s: %v", addr, err)
	}
	t.Cleanup(func() { b.Close() })
	rogue := startFleetWith(t, b.URL(), "rogue-receiver", nil)
	a.waitFor("unsigned acks refused", 2*time.Minute, func() bool {
		return rogue.count("result", "") == 1 && strings.Contains(a.stderr.String(), "refusing a fleet ack")
	})
	if st := a.status(); st.OutboxDepth < 2 {
		t.Fatalf("an unsigned ack emptied the outbox: depth %d", st.OutboxDepth)
	}
	rogue.stop()
	f := startFleetWith(t, b.URL(), "fleet-test", &recvKey)
	a.waitFor("outbox drained", 2*time.Minute, func() bool {
		st := a.status()
		return st.BrokerConnected && st.OutboxDepth == 0
	})
	if n := f.count("result", ""); n != 1 {
		t.Errorf("fleet stored %d results, want 1", n)
	}
	for _, ev := range []string{"self_test", "magazine_done"} {
		if f.count("event", ev) != 1 {
			t.Errorf("fleet has %d %s events", f.count("event", ev), ev)
		}
	}
	// Periodic health (every second here) carries the agent's state.
	health := make(chan []byte, 16)
	mc := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("health-watch"))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer mc.Disconnect(100)
	mc.Subscribe("papscan/sim-01/health", 0, func(_ paho.Client, m paho.Message) {
		select {
		case health <- m.Payload():
		default:
		}
	}).WaitTimeout(10 * time.Second)
	deadline := time.After(30 * time.Second)
	for ok := false; !ok; {
		select {
		case p := <-health:
			var env struct {
				Body struct {
					Stage     string `json:"stage"`
					Connected bool   `json:"connected"`
					Outbox    struct {
						Depth int `json:"depth"`
					} `json:"outbox"`
					Scan struct {
						Results int `json:"results"`
					} `json:"scan"`
				} `json:"body"`
			}
			_ = json.Unmarshal(p, &env)
			h := env.Body
			ok = (h.Stage == "done" || h.Stage == "attention") && h.Outbox.Depth == 0 && h.Scan.Results == 1
		case <-deadline:
			t.Fatal("no health message with the agent's stage, an empty outbox and 1 result")
		}
	}
	a.signal(syscall.SIGTERM)
	if code := a.waitExit(StopTimeout(t)); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// fleetCmd publishes signed commands and collects the replies.
type fleetCmd struct {
	t       *testing.T
	mc      paho.Client
	mu      sync.Mutex
	replies []fleetcmd.Reply
}

func newFleetCmd(t *testing.T, url string) *fleetCmd {
	t.Helper()
	c := &fleetCmd{t: t}
	mc := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("fleet-cmd-test").SetConnectTimeout(10 * time.Second))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { mc.Disconnect(100) })
	tok := mc.Subscribe(fleetcmd.ReplyTopic("papscan", "sim-01"), 1, func(_ paho.Client, m paho.Message) {
		r, err := fleetcmd.DecodeReply(m.Payload())
		if err != nil {
			t.Errorf("reply %q: %v", m.Payload(), err)
			return
		}
		c.mu.Lock()
		c.replies = append(c.replies, r)
		c.mu.Unlock()
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe replies")
	}
	c.mc = mc
	return c
}

func (c *fleetCmd) publish(msg []byte) {
	c.t.Helper()
	if tok := c.mc.Publish(fleetcmd.CmdTopic("papscan", "sim-01"), 1, false, msg); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.t.Fatal("publish command")
	}
}

// reply waits for the reply with this correlation ID (and code, for
// refusals without one).
func (c *fleetCmd) reply(id string, code fleetcmd.Code, d time.Duration) (fleetcmd.Reply, bool) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		for i, r := range c.replies {
			if r.ID == id && (id != "" || r.Code == code) {
				c.replies = append(c.replies[:i], c.replies[i+1:]...)
				c.mu.Unlock()
				return r, true
			}
		}
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
	return fleetcmd.Reply{}, false
}

func sign(t *testing.T, k fleetcmd.SigningKey, typ string, args any, at time.Time) (fleetcmd.Command, []byte) {
	t.Helper()
	cmd, err := fleetcmd.NewCommand("sim-01", typ, args, at)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := fleetcmd.Sign(k, cmd)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, msg
}

// TestAgentFleetCommands: signed commands over MQTT reach the running
// agent (subscription, verification, replay guard in the state directory,
// agent.Agent.Do) and are answered on cmd/reply; a wrong key, a replayed
// nonce, a stale timestamp, another robot and malformed JSON are answered
// with an error and change nothing; every command leaves a durable
// command_audit event that the fleet receives.
func TestAgentFleetCommands(t *testing.T) {
	key, err := fleetcmd.GenerateKey(nil, "fleet-t")
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := fleetcmd.GenerateKey(nil, "fleet-t") // same ID, other key
	b, err := broker.Start(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	f := startFleet(t, b.URL())
	a := startAgentWith(t, withBroker(b.URL(), func(s string) string {
		s = strings.Replace(s, "fleet_keys: []", fmt.Sprintf("fleet_keys: [%q]", key.Public().String()), 1)
		return strings.Replace(s, "clock_skew: 30s", "clock_skew: 0s", 1)
	}), nil)
	a.waitFor("READY=1", 2*time.Minute, func() bool { return a.count("READY=1") > 0 })
	fc := newFleetCmd(t, b.URL())

	// The agent subscribes right after it connects: ask until it answers.
	var statusMsg []byte
	var rep fleetcmd.Reply
	for i := 0; ; i++ {
		var cmd fleetcmd.Command
		cmd, statusMsg = sign(t, key, fleetcmd.TypeStatus, nil, time.Now())
		fc.publish(statusMsg)
		var ok bool
		if rep, ok = fc.reply(cmd.ID, "", 2*time.Second); ok {
			break
		}
		if i == 30 {
			t.Fatal("no reply to status")
		}
	}
	var st fleetcmd.Status
	if !rep.OK || rep.Code != fleetcmd.CodeOK || json.Unmarshal(rep.Result, &st) != nil || st.State != "ready" || st.LogLevel != "info" {
		t.Fatalf("status reply %+v (%s)", rep, rep.Result)
	}

	refused := []struct {
		name string
		msg  []byte
		id   string
		code fleetcmd.Code
	}{}
	add := func(name string, cmd fleetcmd.Command, msg []byte, code fleetcmd.Code) {
		refused = append(refused, struct {
			name string
			msg  []byte
			id   string
			code fleetcmd.Code
		}{name, msg, cmd.ID, code})
	}
	cmd, msg := sign(t, rogue, fleetcmd.TypeStartMagazine, fleetcmd.StartMagazineArgs{Magazine: "ROGUE"}, time.Now())
	add("wrong key", cmd, msg, fleetcmd.CodeUnauthorized)
	cmd, msg = sign(t, key, fleetcmd.TypeStartMagazine, fleetcmd.StartMagazineArgs{Magazine: "OLD"}, time.Now().Add(-time.Hour))
	add("stale", cmd, msg, fleetcmd.CodeStale)
	cmd, _ = fleetcmd.NewCommand("robot-99", fleetcmd.TypeSetLogLevel, fleetcmd.SetLogLevelArgs{Level: "debug"}, time.Now())
	other, _ := fleetcmd.Sign(key, cmd)
	add("other robot", cmd, other, fleetcmd.CodeWrongRobot)
	add("replayed nonce", fleetcmd.Command{ID: rep.ID}, statusMsg, fleetcmd.CodeReplay)
	add("malformed JSON", fleetcmd.Command{}, []byte(`{"schema":"papscan.command/v1","body":`), fleetcmd.CodeBadRequest)
	for _, r := range refused {
		fc.publish(r.msg)
		got, ok := fc.reply(r.id, r.code, 30*time.Second)
		if !ok {
			t.Errorf("%s: no reply", r.name)
			continue
		}
		if got.OK || got.Code != r.code {
			t.Errorf("%s: reply %+v, want code %s", r.name, got, r.code)
		}
	}
	if s := a.status(); s.State != "ready" || s.Magazine != "" || s.Job != "" {
		t.Errorf("a refused command changed the agent: %+v", s)
	}

	// Accepted commands.
	run := func(typ string, args any) fleetcmd.Reply {
		t.Helper()
		cmd, msg := sign(t, key, typ, args, time.Now())
		fc.publish(msg)
		r, ok := fc.reply(cmd.ID, "", 2*time.Minute)
		if !ok {
			t.Fatalf("%s: no reply", typ)
		}
		return r
	}
	if r := run(fleetcmd.TypeSetLogLevel, fleetcmd.SetLogLevelArgs{Level: "debug"}); !r.OK {
		t.Errorf("set_log_level: %+v", r)
	}
	if r := run(fleetcmd.TypeStatus, nil); !r.OK || !strings.Contains(string(r.Result), `"log_level":"debug"`) {
		t.Errorf("status after set_log_level: %+v %s", r, r.Result)
	}
	if r := run(fleetcmd.TypeReloadConfig, nil); !r.OK {
		t.Errorf("reload_config: %+v", r)
	}
	if r := run(fleetcmd.TypePause, nil); r.OK || r.Code != fleetcmd.CodeInvalidState {
		t.Errorf("pause while idle: %+v", r)
	}
	if r := run(fleetcmd.TypeFetch, fleetcmd.FetchArgs{SlideID: "M0001-S00", ResultID: "none", Item: fleetcmd.ItemResult}); r.Code != fleetcmd.CodeNotFound {
		t.Errorf("fetch of a missing result: %+v", r)
	}
	if r := run(fleetcmd.TypeSelfTest, nil); !r.OK || !strings.Contains(string(r.Result), `"passed":true`) {
		t.Errorf("self_test: %+v %s", r, r.Result)
	} else {
		var res fleetcmd.SelfTestResult
		if err := json.Unmarshal(r.Result, &res); err != nil || len(res.Checks) != 4 {
			t.Errorf("self_test reply does not list the checks: %v %s", err, r.Result)
		}
		for _, c := range res.Checks {
			if !c.OK || c.Detail == "" || !strings.Contains("camera illumination focus_reference home_repeatability", c.Name) {
				t.Errorf("self_test check %+v", c)
			}
		}
	}
	if r := run(fleetcmd.TypeStartMagazine, fleetcmd.StartMagazineArgs{Magazine: "FLEET-1"}); !r.OK {
		t.Fatalf("start_magazine: %+v", r)
	}
	if s := a.status(); s.Magazine != "FLEET-1" || s.Job != "magazine" {
		t.Errorf("after start_magazine: %+v", s)
	}
	if r := run(fleetcmd.TypeAbort, fleetcmd.AbortArgs{Reason: "test"}); !r.OK {
		t.Errorf("abort: %+v", r)
	}
	a.waitFor("aborted", 2*time.Minute, func() bool { return a.status().Job == "" })

	// Every message above left an audit record that reached the fleet.
	want := 1 + len(refused) + 8
	deadline := time.Now().Add(time.Minute)
	for f.count("event", "command_audit") < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := f.count("event", "command_audit"); n < want {
		t.Errorf("fleet received %d command_audit events, want at least %d", n, want)
	}
	if _, err := os.Stat(filepath.Join(a.stateDir, remote.ReplayFile)); err != nil {
		t.Errorf("replay store: %v", err)
	}
	resp := a.query(agent.Request{Cmd: "status"})
	if resp.Status == nil || resp.Status.Fault != nil {
		t.Errorf("status at the end: %+v", resp)
	}
	a.signal(syscall.SIGTERM)
	if code := a.waitExit(StopTimeout(t)); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}
