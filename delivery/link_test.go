package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	config "papscan/firmware-config"
	"papscan/hal"
	"papscan/scan"
	"papscan/telemetry/broker"
	"papscan/telemetry/outbox"
)

// TestStorageFullRefusesSlides: when the state directory runs out of room
// the deliverer keeps the result it committed, refuses the next slide with
// a storage fault (hal.FaultStorage, the panel's blink code) and says so on
// MQTT (event storage_full, state fault).
func TestStorageFullRefusesSlides(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := broker.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	events := make(chan []byte, 10)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("watch"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("papscan/+/event", 1, func(_ paho.Client, m paho.Message) { events <- m.Payload() }); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("subscribe")
	}

	cfg := config.Default()
	cfg.Agent.StateDir = t.TempDir()
	var free atomic.Uint64
	free.Store(1 << 40)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	lk, err := Open(ctx, cfg, []string{b.URL()}, log, func(o *outbox.Options) {
		o.FreeSpace = func(string) (uint64, error) { return free.Load(), nil }
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close(ctx)
	d := &Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}
	if err := lk.Admit(ctx); err != nil {
		t.Fatal(err)
	}
	free.Store(1000) // the disk fills while the slide is scanned
	r := &scan.Report{SlideID: "M0001-S00", ResultID: "r-1", Verdict: "NILM"}
	if err := d.Deliver(ctx, r); err != nil {
		t.Fatalf("deliver: %v", err)
	}
	if lk.ob.Depth() != 1 {
		t.Fatalf("the committed result must stay: outbox depth %d", lk.ob.Depth())
	}
	// The next slide is refused.
	err = d.Admit(ctx)
	if f := hal.FaultOf(err); f == nil || f.Code != hal.FaultStorage || !errors.Is(err, outbox.ErrFull) || !errors.Is(err, hal.ErrFault) {
		t.Fatalf("admit on a full disk: %v, want a storage fault wrapping ErrFull", err)
	}
	for {
		select {
		case p := <-events:
			var e struct{ Event string }
			_ = json.Unmarshal(p, &e)
			if e.Event == "storage_full" {
				return
			}
		case <-ctx.Done():
			t.Fatal("no storage_full event")
		}
	}
}
