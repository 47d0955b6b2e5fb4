package schematest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry"
	"papscan/telemetry/broker"
	"papscan/telemetry/command"
)

// TestCommandRoundTripOverMQTT wires the dispatcher the way the agent
// will: paho's message handler only calls Deliver, Run publishes the
// replies; a fleet client signs commands and reads the replies, which
// also validate against the reply schema.
func TestCommandRoundTripOverMQTT(t *testing.T) {
	s := loadSpec(t)
	b, err := broker.Start(context.Background(), "127.0.0.1:0", testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	connect := func(id string) paho.Client {
		o := paho.NewClientOptions().AddBroker(b.URL()).SetClientID(id).SetCleanSession(true).
			SetAutoReconnect(false).SetConnectTimeout(wait).SetOrderMatters(false)
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", id, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}

	key, err := command.GenerateKey(nil, "fleet-1")
	if err != nil {
		t.Fatal(err)
	}
	ring, _ := command.NewKeyRing(key.Public())
	guard, err := command.OpenReplayGuard(filepath.Join(t.TempDir(), "nonces.json"), 0, time.Now().Add(-time.Hour), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	robotMC := connect("papscan-" + robot)
	d, err := command.NewDispatcher(command.DispatcherOptions{
		Verifier: command.Verifier{RobotID: robot, Keys: ring, MaxAge: 2 * time.Minute, ClockSkew: 30 * time.Second},
		Replay:   guard,
		Agent:    &agent{},
		Publish: func(ctx context.Context, reply []byte) error {
			tok := robotMC.Publish(command.ReplyTopic(prefix, robot), 1, false, reply)
			select {
			case <-tok.Done():
				return tok.Error()
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	if tok := robotMC.Subscribe(command.CmdTopic(prefix, robot), 1, func(_ paho.Client, m paho.Message) {
		d.Deliver(m.Payload())
	}); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe cmd: %v", tok.Error())
	}

	fleet := connect("fleet-" + telemetry.NewID())
	replies := make(chan paho.Message, 10)
	if tok := fleet.Subscribe(command.ReplyFilter(prefix), 1, func(_ paho.Client, m paho.Message) { replies <- m }); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe replies: %v", tok.Error())
	}
	send := func(msg []byte) command.Reply {
		t.Helper()
		if tok := fleet.Publish(command.CmdTopic(prefix, robot), 1, false, msg); !tok.WaitTimeout(wait) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
		select {
		case m := <-replies:
			if m.Topic() != command.ReplyTopic(prefix, robot) {
				t.Errorf("reply on %s", m.Topic())
			}
			if err := s.channels["cmdReply"].validate(m.Payload()); err != nil {
				t.Errorf("reply does not validate: %v", err)
			}
			r, err := command.DecodeReply(m.Payload())
			if err != nil {
				t.Fatal(err)
			}
			return r
		case <-time.After(wait):
			t.Fatal("no reply")
		}
		return command.Reply{}
	}
	c, _ := command.NewCommand(robot, command.TypeStatus, nil, time.Now())
	msg, err := command.Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	if r := send(msg); !r.OK || r.ID != c.ID || r.Type != command.TypeStatus || len(r.Result) == 0 {
		t.Fatalf("status reply %+v", r)
	}
	if r := send(msg); r.Code != command.CodeReplay || r.ID != c.ID {
		t.Fatalf("replayed status: %+v", r)
	}
	if r := send([]byte("not json")); r.Code != command.CodeBadRequest || r.ID != "" {
		t.Fatalf("garbage: %+v", r)
	}
}
