package delivery

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"papscan/classify"
	config "papscan/firmware-config"
	"papscan/scan"
	"papscan/telemetry"
	"papscan/telemetry/broker"
)

// TestHealthFollowsStageAndSlides: the health message starts at stage
// "starting" (not "scanning"), follows SetStage at once (not a health
// interval later: the interval here is an hour), and counts every slide
// delivered in scan.slides.
func TestHealthFollowsStageAndSlides(t *testing.T) {
	ctx, cfg, lk, health := openWatched(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if h := lk.Health(); h.Stage != StageStarting || h.Scan.Slides != 0 {
		t.Fatalf("at start: stage %q, slides %d; want %q, 0", h.Stage, h.Scan.Slides, StageStarting)
	}
	wait := func(stage string, slides int) {
		t.Helper()
		var last telemetry.Health
		for {
			select {
			case h := <-health:
				if h.Stage == stage && h.Scan.Slides == slides {
					return
				}
				last = h
			case <-ctx.Done():
				t.Fatalf("no health with stage %q, scan.slides %d; last: stage %q, slides %d", stage, slides, last.Stage, last.Scan.Slides)
			}
		}
	}
	lk.SetStage(StageScanning)
	wait(StageScanning, 0)
	d := &Delivery{StateDir: cfg.Agent.StateDir, Link: lk, Log: log}
	for i, v := range []classify.Verdict{"NILM", "INCOMPLETE"} {
		r := &scan.Report{SlideID: scan.SlideID("M0001", i), ResultID: "r-" + string(v), Verdict: v}
		if err := d.Deliver(ctx, r); err != nil {
			t.Fatalf("deliver: %v", err)
		}
		wait(StageScanning, i+1)
	}
	lk.SetStage(StageAttention)
	wait(StageAttention, 2)
	if h := lk.Health(); h.Scan.Incomplete != 1 || h.Scan.Results != 2 {
		t.Fatalf("scan stats %+v, want 2 results, 1 incomplete", h.Scan)
	}
}

// TestHealthOnEveryStageChange: stage changes made back to back (as the
// agent makes them: starting, ready, scanning, paused, fault) each get a
// health message of their own, in order, at once (the health interval
// here is an hour), not only the last of them; a fault while in stage
// fault is published again.
func TestHealthOnEveryStageChange(t *testing.T) {
	ctx, _, lk, health := openWatched(t)
	next := func() string {
		t.Helper()
		select {
		case h := <-health:
			return h.Stage
		case <-ctx.Done():
			t.Fatal("no health message")
			return ""
		}
	}
	for next() != StageStarting { // the first message, at open
	}
	changes := []string{"ready", StageScanning, "paused", StageFault, StageFault, "ready"}
	for _, s := range changes {
		lk.SetStage(s)
	}
	for i, want := range changes {
		if got := next(); got != want {
			t.Fatalf("health message %d: stage %q, want %q (changes %v)", i, got, want, changes)
		}
	}
	lk.SetStage("ready") // no change: no message
	lk.SetStage(StageDone)
	if got := next(); got != StageDone {
		t.Fatalf("after a repeated stage: %q, want %q", got, StageDone)
	}
}

// openWatched starts an embedded broker, subscribes to the robots' health
// messages and opens a link on it (health interval one hour: every
// message seen is one the link was asked for), under a context of one
// minute. Everything is closed at the test's end.
func openWatched(t *testing.T) (context.Context, *config.Config, *Link, <-chan telemetry.Health) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel) // last
	b, err := broker.Start(ctx, "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	health := make(chan telemetry.Health, 100)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(b.URL()).SetClientID("watch"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { sub.Disconnect(100) })
	if tok := sub.Subscribe("papscan/+/health", 0, func(_ paho.Client, m paho.Message) {
		var e telemetry.Envelope
		var h telemetry.Health
		if json.Unmarshal(m.Payload(), &e) == nil && json.Unmarshal(e.Body, &h) == nil {
			health <- h
		}
	}); !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("subscribe")
	}
	cfg := config.Default()
	cfg.Agent.StateDir = t.TempDir()
	cfg.Agent.MQTT.HealthInterval = config.Duration(time.Hour)
	lk, err := Open(ctx, cfg, []string{b.URL()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lk.Close(ctx) })
	return ctx, cfg, lk, health
}
