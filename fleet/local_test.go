package fleet_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/fleet"
	"papscan/fleet/store"
	"papscan/telemetry"
)

// TestLocalBadInput: through the embedded broker, the receiver and SQLite:
// the demonstration robot's results and images are stored and acked; an
// image that is not a PNG is acked and kept in quarantine; a payload that
// is not an envelope is kept in quarantine; SQL metacharacters in every
// text field are stored verbatim; nothing is lost.
func TestLocalBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	l, err := fleet.StartLocal(ctx, fleet.LocalOptions{Dir: t.TempDir(), HTTPAddr: "127.0.0.1:0", BrokerAddr: "127.0.0.1:0", DemoAccount: true,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.User == "" || len(l.Password) < 10 || !strings.HasPrefix(l.URL, "http://127.0.0.1:") {
		t.Fatalf("local: user %q password %q url %q", l.User, l.Password, l.URL)
	}
	const robot = "robot-x"
	msgs, err := fleet.DemoRobot("papscan", robot, fleet.DemoSlides()[:1], "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	nasty := `'; DROP TABLE records; --`
	// Not a PNG, with an ack key: acked, quarantined.
	var im telemetry.ImageMessage
	if err := json.Unmarshal(msgs[1].Payload, &im); err != nil {
		t.Fatal(err)
	}
	im.ImageID, im.Body.PNG = "not-a-png", []byte("GIF89a")
	b, _ := json.Marshal(im)
	msgs = append(msgs, fleet.Message{Topic: "papscan/" + robot + "/image/X", Payload: b, ID: im.ImageID})
	// Metacharacters in the result's text fields.
	env, _ := json.Marshal(telemetry.Envelope{Schema: telemetry.Schema, Kind: telemetry.KindResult, RobotID: robot,
		SlideID: nasty, ResultID: nasty, OutboxSession: nasty, OutboxSeq: 99,
		Body: json.RawMessage(`{"verdict":"` + strings.ReplaceAll(nasty, `'`, `\u0027`) + `","result":{"top":[{"score":0.5}]}}`)})
	msgs = append(msgs, fleet.Message{Topic: "papscan/" + robot + "/result/x", Payload: env, ID: nasty})
	ev, _ := json.Marshal(telemetry.Envelope{Schema: telemetry.Schema, Kind: telemetry.KindEvent, RobotID: robot, Event: nasty, EventID: "ev-" + nasty})
	msgs = append(msgs, fleet.Message{Topic: "papscan/" + robot + "/event", Payload: ev, ID: "ev-" + nasty})

	var mu sync.Mutex
	pending := map[string]bool{}
	for _, m := range msgs {
		pending[m.ID] = true
	}
	acked := make(chan struct{})
	c := paho.NewClient(telemetry.SessionOptions(telemetry.Session{Brokers: []string{l.BrokerURL}, ClientID: robot, KeepAlive: 30 * time.Second, MaxReconnectInterval: time.Second}))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	tok := c.Subscribe(telemetry.AckTopic("papscan", robot), 1, func(_ paho.Client, m paho.Message) {
		var a telemetry.Ack
		_ = json.Unmarshal(m.Payload(), &a)
		mu.Lock()
		defer mu.Unlock()
		for _, id := range a.IDs {
			delete(pending, id)
		}
		if len(pending) == 0 {
			select {
			case <-acked:
			default:
				close(acked)
			}
		}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	// Garbage without an ack key: nothing to ack, but kept.
	c.Publish("papscan/"+robot+"/result/junk", 1, false, []byte("{\"schema\":\x00"+nasty)).WaitTimeout(5 * time.Second)
	for _, m := range msgs {
		c.Publish(m.Topic, 1, false, m.Payload)
	}
	select {
	case <-acked:
	case <-ctx.Done():
		mu.Lock()
		t.Fatalf("not acked: %v", pending)
	}
	// Everything twice: nothing changes.
	for _, m := range msgs {
		c.Publish(m.Topic, 1, false, m.Payload).WaitTimeout(5 * time.Second)
	}
	var n store.Counts
	for {
		n, err = l.Store.Count(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n.Quarantined >= 2 || ctx.Err() != nil {
			break
		}
		time.Sleep(20 * time.Millisecond) // waiting for the receiver's commit
	}
	time.Sleep(300 * time.Millisecond) // let the duplicates arrive (they must change nothing)
	n, _ = l.Store.Count(ctx)
	if n.Results != 2 || n.Images != 7 || n.ImageRecords != 8 || n.Events != 1 || n.Quarantined != 2 {
		t.Fatalf("counts %+v: want 2 results, 7 images (+1 refused), 1 event, 2 in quarantine", n)
	}
	r, err := l.Store.Result(ctx, robot, nasty)
	if err != nil || r.SlideID != nasty || r.Verdict != nasty[:min(len(nasty), 32)] {
		t.Fatalf("result with metacharacters: %+v %v", r.Slide, err)
	}
	q, _ := l.Store.Quarantine(ctx, 10)
	reasons := ""
	for _, e := range q {
		reasons += e.Reason + "\n"
	}
	if !strings.Contains(reasons, "not a PNG") || !strings.Contains(reasons, "not JSON") {
		t.Fatalf("quarantine reasons:\n%s", reasons)
	}
}
