package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry/broker"
	"papscan/telemetry/command"
)

func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "fleet.pem")
	var out, errb bytes.Buffer
	if code := run(t.Context(), []string{"keygen", "--id", "fleet-t", "--out", pem}, &out, &errb); code != 0 {
		t.Fatalf("keygen: exit %d %s", code, errb.String())
	}
	line := strings.TrimSpace(out.String())
	pub, err := command.ParsePublicKey(line)
	if err != nil || pub.ID != "fleet-t" {
		t.Fatalf("keygen printed %q: %v", line, err)
	}
	sk, err := command.ReadSigningKeyFile(pem)
	if err != nil || !sk.Public().Key.Equal(pub.Key) {
		t.Fatalf("private key does not match the printed line: %v", err)
	}
	if st, _ := os.Stat(pem); st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	if code := run(t.Context(), []string{"keygen", "--id", "fleet-t", "--out", pem}, &out, &errb); code != 1 {
		t.Errorf("keygen over an existing file: exit %d", code)
	}
	if code := run(t.Context(), []string{"keygen", "--id", "fleet-t"}, &out, &errb); code != 2 {
		t.Errorf("keygen without --out: exit %d", code)
	}
}

// fakeRobot answers commands like an agent would, through the real
// verifier, replay guard and dispatcher.
type fakeRobot struct{ state string }

func (f *fakeRobot) StartMagazine(context.Context, command.StartMagazineArgs) error {
	return command.ErrInvalidState
}
func (f *fakeRobot) Pause(context.Context) error                                { return nil }
func (f *fakeRobot) Resume(context.Context) error                               { return nil }
func (f *fakeRobot) Abort(context.Context, command.AbortArgs) error             { return nil }
func (f *fakeRobot) SetLogLevel(context.Context, command.SetLogLevelArgs) error { return nil }
func (f *fakeRobot) ReloadConfig(context.Context) error                         { return nil }
func (f *fakeRobot) Status(context.Context) (command.Status, error) {
	return command.Status{State: f.state}, nil
}
func (f *fakeRobot) SelfTest(context.Context, command.SelfTestArgs) (command.SelfTestResult, error) {
	return command.SelfTestResult{Passed: true}, nil
}
func (f *fakeRobot) Fetch(context.Context, command.FetchArgs) (command.FetchResult, error) {
	return command.FetchResult{Item: "result", Path: "slides/s/r/result.json", ContentType: "application/json", Size: 2, Data: []byte("{}")}, nil
}

// startRobot subscribes a dispatcher for robot r-1 trusting key.
func startRobot(t *testing.T, url string, key command.PublicKey) {
	t.Helper()
	keys, err := command.NewKeyRing(key)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := command.OpenReplayGuard("", 0, time.Now().Add(-time.Minute), 0)
	if err != nil {
		t.Fatal(err)
	}
	mc := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID("robot-r-1"))
	if tok := mc.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { mc.Disconnect(100) })
	d, err := command.NewDispatcher(command.DispatcherOptions{
		Verifier: command.Verifier{RobotID: "r-1", Keys: keys, MaxAge: time.Minute},
		Replay:   guard, Agent: &fakeRobot{state: "ready"}, Logger: slog.New(slog.DiscardHandler),
		Publish: func(_ context.Context, b []byte) error {
			tok := mc.Publish(command.ReplyTopic("papscan", "r-1"), 1, false, b)
			tok.WaitTimeout(10 * time.Second)
			return tok.Error()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if tok := mc.Subscribe(command.CmdTopic("papscan", "r-1"), 1, func(_ paho.Client, m paho.Message) { d.Deliver(m.Payload()) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal("subscribe")
	}
}

// TestSend: send signs with the fleet key, publishes and prints the
// robot's reply (exit 0); a key the robot does not trust gets the
// unauthorized reply (exit 1); fetch --out writes the file.
func TestSend(t *testing.T) {
	b, err := broker.Start(context.Background(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	dir := t.TempDir()
	good, rogue := filepath.Join(dir, "good.pem"), filepath.Join(dir, "rogue.pem")
	line, err := command.Keygen("fleet-t", good)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := command.Keygen("fleet-t", rogue); err != nil {
		t.Fatal(err)
	}
	pub, _ := command.ParsePublicKey(line)
	startRobot(t, b.URL(), pub)

	send := func(key string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		argv := append([]string{"send", "--broker", b.URL(), "--robot", "r-1", "--fleet-key", key, "--timeout", "20s"}, args...)
		code := run(t.Context(), argv, &out, &errb)
		return code, out.String(), errb.String()
	}
	code, out, errs := send(good, "status")
	var r command.Reply
	if code != 0 || json.Unmarshal([]byte(out), &r) != nil || !r.OK || !strings.Contains(out, `"state": "ready"`) {
		t.Fatalf("send status: exit %d %q %q", code, out, errs)
	}
	if code, out, _ := send(rogue, "status"); code != 1 || !strings.Contains(out, `"unauthorized"`) {
		t.Errorf("send with an untrusted key: exit %d %q", code, out)
	}
	if code, out, _ := send(good, "--args", `{"magazine":"M1"}`, "start_magazine"); code != 1 || !strings.Contains(out, "invalid_state") {
		t.Errorf("refused start_magazine: exit %d %q", code, out)
	}
	file := filepath.Join(dir, "result.json")
	if code, out, errs := send(good, "--out", file, "--args", `{"slide_id":"s","result_id":"r","item":"result"}`, "fetch"); code != 0 || strings.Contains(out, "e30=") {
		t.Errorf("fetch: exit %d %q %q", code, out, errs)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "{}" {
		t.Errorf("fetched file: %q %v", b, err)
	}
	for _, bad := range [][]string{{"status", "extra"}, {"--args", "[1]", "status"}, {}} {
		if code, _, _ := send(good, bad...); code != 2 {
			t.Errorf("send %v: exit %d, want 2", bad, code)
		}
	}
}
