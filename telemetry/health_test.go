package telemetry_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/telemetry"
)

func TestReadThermal(t *testing.T) {
	root := t.TempDir()
	for zone, c := range map[string]string{"thermal_zone0": "51234\n", "thermal_zone1": "garbage"} {
		if err := os.MkdirAll(filepath.Join(root, zone), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, zone, "temp"), []byte(c), 0o644)
		os.WriteFile(filepath.Join(root, zone, "type"), []byte("cpu-thermal\n"), 0o644)
	}
	got := telemetry.ReadThermal(root)
	if len(got) != 1 || got[0].Zone != "thermal_zone0" || got[0].Type != "cpu-thermal" || got[0].C != 51.234 {
		t.Fatalf("ReadThermal: %+v", got)
	}
	if telemetry.ReadThermal(filepath.Join(root, "none")) != nil {
		t.Fatal("no zones must give nil")
	}
}

// TestHealthAndSubscriptions: RunHealth publishes the filled-in figures,
// retained, on the health topic; an extra Subscription (the command
// topic) and the ack topic reach their handlers; an ack naming another
// robot is dropped.
func TestHealthAndSubscriptions(t *testing.T) {
	b := startBroker(t)
	cmds := make(chan string, 4)
	acks := make(chan telemetry.Ack, 4)
	c := dial(t, b.URL(), "r-health", func(o *telemetry.Options) {
		o.Subscriptions = []telemetry.Subscription{{Topic: "papscan/r-health/cmd", QoS: 1, Handler: func(_ string, p []byte) { cmds <- string(p) }}}
		o.OnAck = func(a telemetry.Ack) { acks <- a }
		o.UnsignedFleet = true // this test is about subscriptions; signatures: fleetauth_test.go
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.RunHealth(ctx, time.Hour, func(h *telemetry.Health) {
			h.Stage, h.Outbox.Depth, h.AcceptSlides = "ready", 3, true
		})
	}()
	s := subscribe(t, b.URL(), "papscan/r-health/health")
	m, e := recv(t, s)
	cancel()
	<-done
	var h telemetry.Health
	if err := json.Unmarshal(e.Body, &h); err != nil || e.Kind != telemetry.KindHealth {
		t.Fatalf("health %s: %v", m.Payload(), err)
	}
	if h.Stage != "ready" || h.Outbox.Depth != 3 || !h.Connected || !h.AcceptSlides {
		t.Fatalf("health body %+v", h)
	}

	pub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("fleet-pub"))
	if tok := pub.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pub.Disconnect(100)
	pub.Publish("papscan/r-health/ack", 1, false, `{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"other","ids":["x"]}`).Wait()
	pub.Publish("papscan/r-health/ack", 1, false, `{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"r-health","ids":["x"]}`).Wait()
	pub.Publish("papscan/r-health/cmd", 1, false, `{"hello":1}`).Wait()
	select {
	case a := <-acks:
		if len(a.IDs) != 1 || a.IDs[0] != "x" || a.RobotID != "r-health" {
			t.Fatalf("ack %+v", a)
		}
	case <-time.After(wait):
		t.Fatal("no ack")
	}
	select {
	case p := <-cmds:
		if p != `{"hello":1}` {
			t.Fatalf("cmd %q", p)
		}
	case <-time.After(wait):
		t.Fatal("no command")
	}
	if len(acks) != 0 {
		t.Fatalf("an ack for another robot was delivered: %+v", <-acks)
	}
}
