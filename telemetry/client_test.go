package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"papscan/telemetry"
)

func TestPublishResultDelivered(t *testing.T) {
	b := startBroker(t)
	results := subscribe(t, b.URL(), telemetry.ResultFilter(telemetry.DefaultTopicPrefix))
	c := dial(t, b.URL(), "robot-1", nil)
	if !c.Connected() {
		t.Fatal("Connected() = false after Dial")
	}

	body := []byte(`{"verdict":"NILM","counts":{"cells":18234,"abnormal":0},"model":"cnn-v3","timings_ms":{"scan":91000}}`)
	rid := telemetry.NewID()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.PublishResult(ctx, "S-2026-000123", rid, body); err != nil {
		t.Fatalf("PublishResult: %v", err)
	}
	rid2 := telemetry.NewID()
	if err := c.PublishResult(ctx, "S-2026-000124", rid2, []byte(`{"verdict":"ASC-US"}`)); err != nil {
		t.Fatalf("PublishResult 2: %v", err)
	}

	m, e := recvRaw(t, results)
	if want := "papscan/robot-1/result/S-2026-000123"; m.Topic() != want {
		t.Errorf("topic = %q, want %q", m.Topic(), want)
	}
	if m.Qos() != 1 || m.Retained() {
		t.Errorf("qos=%d retained=%v, want qos 1 not retained", m.Qos(), m.Retained())
	}
	if !bytes.Equal(e.Body, body) {
		t.Errorf("body = %s, want %s", e.Body, body)
	}
	if e.Schema != telemetry.Schema || e.Kind != telemetry.KindResult || e.ResultID != rid ||
		e.SlideID != "S-2026-000123" || e.RobotID != "robot-1" || e.SessionID != c.SessionID() ||
		e.MessageID == "" || e.Seq == 0 || e.SentAt.IsZero() {
		t.Errorf("envelope = %+v", e)
	}
	// The next message is the second result: the first was delivered exactly once.
	m2, e2 := recvRaw(t, results)
	if m2.Topic() != "papscan/robot-1/result/S-2026-000124" || e2.ResultID != rid2 || e2.Seq <= e.Seq {
		t.Errorf("second message: topic %q envelope %+v", m2.Topic(), e2)
	}
}

func TestBirthRetainedAndOfflineOnClose(t *testing.T) {
	b := startBroker(t)
	topics, err := telemetry.NewTopics("lab/papscan", "robot-2")
	if err != nil {
		t.Fatal(err)
	}
	watcher := subscribe(t, b.URL(), topics.State())
	c := dial(t, b.URL(), "robot-2", func(o *telemetry.Options) { o.TopicPrefix = "lab/papscan" })

	_, e := recv(t, watcher)
	if e.State != telemetry.StateOnline || e.Kind != telemetry.KindState || e.RobotID != "robot-2" {
		t.Fatalf("birth = %+v", e)
	}
	// A subscriber arriving later gets the birth as a retained message.
	m, e := recv(t, subscribe(t, b.URL(), topics.State()))
	if !m.Retained() || m.Qos() != 1 || e.State != telemetry.StateOnline {
		t.Fatalf("late subscriber: retained=%v qos=%d envelope %+v", m.Retained(), m.Qos(), e)
	}

	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	_, e = recv(t, watcher)
	if e.State != telemetry.StateOffline || !strings.Contains(string(e.Body), "shutdown") {
		t.Fatalf("offline on close = %+v (body %s)", e, e.Body)
	}
	m, e = recv(t, subscribe(t, b.URL(), topics.State()))
	if !m.Retained() || e.State != telemetry.StateOffline {
		t.Fatalf("after close, late subscriber: retained=%v envelope %+v", m.Retained(), e)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.PublishResult(ctx, "S1", telemetry.NewID(), []byte(`{}`)); !errors.Is(err, telemetry.ErrClosed) {
		t.Errorf("PublishResult after Close = %v, want ErrClosed", err)
	}
	if err := c.PublishProgress("S1", 1, 2); !errors.Is(err, telemetry.ErrClosed) {
		t.Errorf("PublishProgress after Close = %v, want ErrClosed", err)
	}
}

// TestWillAndReconnect cuts the TCP connection under the client (no
// DISCONNECT), as a network failure would.
func TestWillAndReconnect(t *testing.T) {
	b := startBroker(t)
	p := startProxy(t, b.Addr())
	topics, _ := telemetry.NewTopics("", "robot-3")
	watcher := subscribe(t, b.URL(), topics.State())
	results := subscribe(t, b.URL(), telemetry.ResultFilter("papscan"))
	c := dial(t, p.url(), "robot-3", func(o *telemetry.Options) { o.MaxReconnectInterval = 200 * time.Millisecond })

	if _, e := recv(t, watcher); e.State != telemetry.StateOnline {
		t.Fatalf("birth = %+v", e)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := c.PublishState(ctx, "fault", map[string]any{"code": "E12"}); err != nil {
		t.Fatal(err)
	}
	if _, e := recv(t, watcher); e.State != "fault" {
		t.Fatalf("state = %+v", e)
	}

	p.setRefuse(true)
	p.cut()
	_, e := recv(t, watcher)
	if e.State != telemetry.StateOffline || e.SessionID != c.SessionID() || e.MessageID != "" ||
		!strings.Contains(string(e.Body), "connection lost") {
		t.Fatalf("will = %+v (body %s)", e, e.Body)
	}
	m, e := recv(t, subscribe(t, b.URL(), topics.State()))
	if !m.Retained() || e.State != telemetry.StateOffline {
		t.Fatalf("will not retained: retained=%v %+v", m.Retained(), e)
	}

	// While the link is down a result is not confirmed: the caller gets an
	// error (and keeps the result)...
	short, cancelShort := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancelShort()
	rid := telemetry.NewID()
	err := c.PublishResult(short, "S-9", rid, []byte(`{"verdict":"HSIL"}`))
	if !errors.Is(err, telemetry.ErrNotAcked) {
		t.Fatalf("PublishResult while down = %v, want ErrNotAcked", err)
	}

	// A publish waiting across the reconnect succeeds only once the broker
	// has acknowledged it (paho completes its token early on resume).
	rid2 := telemetry.NewID()
	long := make(chan error, 1)
	go func() { long <- c.PublishResult(ctx, "S-10", rid2, []byte(`{"verdict":"NILM"}`)) }()

	// ...and after the reconnect: birth, the application state restored,
	// and paho's resend of the unconfirmed results (at least once).
	p.setRefuse(false)
	if _, e := recv(t, watcher); e.State != telemetry.StateOnline {
		t.Fatalf("re-birth = %+v", e)
	}
	if _, e := recv(t, watcher); e.State != "fault" || !strings.Contains(string(e.Body), "E12") {
		t.Fatalf("restored state = %+v", e)
	}
	got := map[string]bool{}
	for len(got) < 2 {
		_, e := recv(t, results)
		got[e.ResultID] = true
	}
	if !got[rid] || !got[rid2] {
		t.Fatalf("results after reconnect: %v, want %s and %s", got, rid, rid2)
	}
	select {
	case err := <-long:
		if err != nil {
			t.Fatalf("PublishResult across reconnect = %v", err)
		}
	case <-time.After(wait):
		t.Fatal("PublishResult across reconnect did not return")
	}
}

// willHook captures the CONNECT packet of one client.
type willHook struct {
	mqtt.HookBase
	clientID string
	got      chan packets.ConnectParams
}

func (h *willHook) ID() string { return "capture-will" }
func (h *willHook) Provides(b byte) bool {
	return b == mqtt.OnConnect
}
func (h *willHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.Connect.ClientIdentifier == h.clientID {
		select {
		case h.got <- pk.Connect:
		default:
		}
	}
	return nil
}

func TestConnectPacketWillAndSession(t *testing.T) {
	b := startBroker(t)
	h := &willHook{clientID: "papscan-robot-4", got: make(chan packets.ConnectParams, 1)}
	if err := b.Server().AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	c := dial(t, b.URL(), "robot-4", func(o *telemetry.Options) { o.KeepAlive = 7 * time.Second })
	var cp packets.ConnectParams
	select {
	case cp = <-h.got:
	case <-time.After(wait):
		t.Fatal("no CONNECT captured")
	}
	if !cp.WillFlag || cp.WillTopic != "papscan/robot-4/state" || cp.WillQos != 1 || !cp.WillRetain {
		t.Errorf("will: flag=%v topic=%q qos=%d retain=%v", cp.WillFlag, cp.WillTopic, cp.WillQos, cp.WillRetain)
	}
	var e telemetry.Envelope
	if err := json.Unmarshal(cp.WillPayload, &e); err != nil || e.State != telemetry.StateOffline ||
		e.RobotID != "robot-4" || e.SessionID != c.SessionID() || e.Kind != telemetry.KindState {
		t.Errorf("will payload %s: %v", cp.WillPayload, err)
	}
	if cp.Clean {
		t.Error("CleanSession = true, want false (persistent session)")
	}
	if cp.Keepalive != 7 {
		t.Errorf("keepalive = %d, want 7", cp.Keepalive)
	}
}

func TestDialUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "tcp://" + ln.Addr().String()
	_ = ln.Close() // nothing listens there now

	const timeout = 1500 * time.Millisecond
	start := time.Now()
	_, err = telemetry.Dial(t.Context(), telemetry.Options{
		Brokers: []string{url}, RobotID: "robot-5", ConnectTimeout: timeout, Logger: testLogger(),
	})
	elapsed := time.Since(start)
	if !errors.Is(err, telemetry.ErrUnreachable) {
		t.Fatalf("Dial = %v, want ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), url) {
		t.Errorf("error %q does not name %s", err, url)
	}
	if elapsed > timeout+2*time.Second { // slack for a loaded machine; typically timeout+1ms
		t.Errorf("Dial took %v, connect timeout %v", elapsed, timeout)
	}
	t.Logf("Dial error after %v: %v", elapsed.Round(time.Millisecond), err)

	// ctx bounds Dial as well.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err = telemetry.Dial(ctx, telemetry.Options{Brokers: []string{url}, RobotID: "robot-5", Logger: testLogger()})
	if !errors.Is(err, telemetry.ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial with short ctx = %v", err)
	}
}

func TestDialRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    telemetry.Options
		want string
	}{
		{"no brokers", telemetry.Options{RobotID: "r"}, "Brokers"},
		{"bad scheme", telemetry.Options{Brokers: []string{"http://x:1"}, RobotID: "r"}, "scheme"},
		{"robot slash", telemetry.Options{Brokers: []string{"tcp://x:1"}, RobotID: "a/b"}, "robot ID"},
		{"robot empty", telemetry.Options{Brokers: []string{"tcp://x:1"}}, "robot ID"},
		{"prefix wildcard", telemetry.Options{Brokers: []string{"tcp://x:1"}, RobotID: "r", TopicPrefix: "a/#"}, "topic prefix"},
		{"prefix trailing slash", telemetry.Options{Brokers: []string{"tcp://x:1"}, RobotID: "r", TopicPrefix: "a/"}, "topic prefix"},
	} {
		_, err := telemetry.Dial(t.Context(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Dial = %v, want error mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestPublishValidation(t *testing.T) {
	b := startBroker(t)
	c := dial(t, b.URL(), "robot-6", nil)
	ctx := t.Context()
	for _, slide := range []string{"", "a/b", "S+1", "S#", "\xff\xfe", "$SYS"} {
		err := c.PublishResult(ctx, slide, telemetry.NewID(), []byte(`{}`))
		if !errors.Is(err, telemetry.ErrInvalidID) || !strings.Contains(err.Error(), "slide ID") {
			t.Errorf("PublishResult(slide %q) = %v", slide, err)
		}
		if err := c.PublishProgress(slide, 1, 2); !errors.Is(err, telemetry.ErrInvalidID) {
			t.Errorf("PublishProgress(slide %q) = %v", slide, err)
		}
	}
	if err := c.PublishResult(ctx, "S1", "", []byte(`{}`)); !errors.Is(err, telemetry.ErrInvalidID) || !strings.Contains(err.Error(), "result ID") {
		t.Errorf("empty result ID: %v", err)
	}
	if err := c.PublishResult(ctx, "S1", telemetry.NewID(), []byte(`{"verdict":`)); !errors.Is(err, telemetry.ErrInvalidPayload) {
		t.Errorf("bad JSON: %v", err)
	}
	if err := c.PublishEvent(ctx, "x", func() {}); !errors.Is(err, telemetry.ErrInvalidPayload) {
		t.Errorf("unmarshallable event: %v", err)
	}
	if err := c.PublishProgress("S1", 3, 2); !errors.Is(err, telemetry.ErrInvalidPayload) {
		t.Errorf("progress 3/2: %v", err)
	}
}

func TestEventAndProgress(t *testing.T) {
	b := startBroker(t)
	events := subscribe(t, b.URL(), "papscan/robot-7/event")
	progress := subscribe(t, b.URL(), "papscan/robot-7/progress")
	c := dial(t, b.URL(), "robot-7", nil)

	if err := c.PublishEvent(t.Context(), "tray_loaded", map[string]int{"slides": 20}); err != nil {
		t.Fatal(err)
	}
	m, e := recv(t, events)
	if m.Qos() != 1 || e.Kind != telemetry.KindEvent || e.Event != "tray_loaded" || string(e.Body) != `{"slides":20}` {
		t.Errorf("event qos %d envelope %+v body %s", m.Qos(), e, e.Body)
	}

	// Never blocks, even far beyond the queue size.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			if err := c.PublishProgress("S-7", i+1, 1000); err != nil {
				t.Errorf("PublishProgress: %v", err)
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("PublishProgress blocked")
	}
	m, e = recv(t, progress)
	var pb telemetry.ProgressBody
	if err := json.Unmarshal(e.Body, &pb); err != nil || m.Qos() != 0 || e.SlideID != "S-7" || pb.Total != 1000 || pb.Done < 1 {
		t.Errorf("progress qos %d envelope %+v (%v)", m.Qos(), e, err)
	}
}
