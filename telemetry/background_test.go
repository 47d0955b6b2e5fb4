package telemetry_test

import (
	"context"
	"encoding/json"
	"errors"
	paho "github.com/eclipse/paho.mqtt.golang"
	"net"
	"testing"
	"time"

	"papscan/telemetry"
	"papscan/telemetry/broker"
)

// TestBackgroundDialBrokerLater: with Options.Background, Dial returns at
// once while nothing listens; publishes fail (no PUBACK) instead of
// hanging; when a broker appears on the address the client connects by
// itself, the inbound subscriptions are in place and a command reply is
// delivered on <prefix>/<robot>/cmd/reply.
func TestBackgroundDialBrokerLater(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()

	got := make(chan []byte, 4)
	start := time.Now()
	c, err := telemetry.Dial(t.Context(), telemetry.Options{
		Brokers: []string{"tcp://" + addr}, RobotID: "robot-bg", Background: true,
		ConnectTimeout: time.Second, PublishTimeout: 500 * time.Millisecond, Logger: testLogger(),
		Subscriptions: []telemetry.Subscription{{Topic: "papscan/robot-bg/cmd", QoS: 1, Handler: func(_ string, p []byte) {
			select {
			case got <- append([]byte(nil), p...):
			default:
			}
		}}},
	})
	if err != nil {
		t.Fatalf("background Dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = c.Close(ctx)
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("background Dial took %v", d)
	}
	if c.Connected() {
		t.Fatal("connected with no broker")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	err = c.PublishReply(ctx, []byte(`{"schema":"papscan.reply/v1"}`))
	cancel()
	if !errors.Is(err, telemetry.ErrNotAcked) {
		t.Fatalf("PublishReply with the broker down = %v, want ErrNotAcked", err)
	}
	if err := c.PublishReply(t.Context(), []byte("not json")); !errors.Is(err, telemetry.ErrInvalidPayload) {
		t.Errorf("PublishReply(not json) = %v", err)
	}

	b, err := broker.Start(context.Background(), addr, testLogger())
	if err != nil {
		t.Fatalf("broker on %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	deadline := time.Now().Add(wait)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("no connection after the broker appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
	s := subscribe(t, b.URL(), "papscan/robot-bg/cmd/reply")
	reply := []byte(`{"schema":"papscan.reply/v1","id":"c-1","robot":"robot-bg","ok":true,"code":"ok","sent_at":"2026-11-21T08:00:00Z"}`)
	if err := c.PublishReply(t.Context(), reply); err != nil {
		t.Fatalf("PublishReply: %v", err)
	}
	// The reply published while the broker was down stays in paho's QoS 1
	// queue and may be sent on the late connect, before or after the
	// subscriber is in place (a slow machine, e.g. qemu-user): skip it.
	offline := `{"schema":"papscan.reply/v1"}`
	for got := false; !got; {
		select {
		case m := <-s.ch:
			if string(m.Payload()) == offline {
				continue
			}
			got = true
			if m.Topic() != "papscan/robot-bg/cmd/reply" || string(m.Payload()) != string(reply) || m.Retained() {
				t.Errorf("reply %s %q retained=%v", m.Topic(), m.Payload(), m.Retained())
			}
		case <-time.After(wait):
			t.Fatal("reply not received")
		}
	}
	// The inbound command subscription was made on the late connect.
	cmd := []byte(`{"schema":"papscan.command/v1"}`)
	// The subscription is made right after the connect, concurrently with
	// the test: publish until the handler sees one.
	deadline = time.Now().Add(wait)
	for {
		publishRaw(t, b.URL(), "papscan/robot-bg/cmd", cmd)
		select {
		case p := <-got:
			if !json.Valid(p) || string(p) != string(cmd) {
				t.Errorf("command handler got %q", p)
			}
			return
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("command not handed to the subscription handler")
		}
	}
}

// publishRaw publishes payload at QoS 1 with a plain paho client.
func publishRaw(t *testing.T, url, topic string, payload []byte) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(url).SetClientID("pub-" + telemetry.NewID()).SetConnectTimeout(wait)
	mc := paho.NewClient(o)
	if tok := mc.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publisher connect: %v", tok.Error())
	}
	defer mc.Disconnect(100)
	if tok := mc.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}
