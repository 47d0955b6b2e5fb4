package schematest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"papscan/classify"
	"papscan/scan"
	"papscan/telemetry"
	"papscan/telemetry/broker"
	"papscan/telemetry/command"
	"papscan/telemetry/result"
)

const (
	docPath = "../../docs/asyncapi.yaml"
	prefix  = "papscan"
	robot   = "robot-07"
	wait    = 15 * time.Second
)

// realProducers lists channels whose messages this test cannot produce
// yet because their encoders live on another branch (durable delivery).
// They are validated through the document's examples; when the encoders
// are merged, produce real messages below and remove them from here.
var realProducers = map[string]bool{"health": false, "ack": false, "replay": false, "image": false}

// ---- the AsyncAPI document ----

type ref struct {
	Ref string `yaml:"$ref"`
}

type asyncDoc struct {
	AsyncAPI string `yaml:"asyncapi"`
	Channels map[string]struct {
		Address  string         `yaml:"address"`
		Messages map[string]ref `yaml:"messages"`
	} `yaml:"channels"`
	Operations map[string]struct {
		Action  string `yaml:"action"`
		Channel ref    `yaml:"channel"`
	} `yaml:"operations"`
	Components struct {
		Messages map[string]struct {
			Payload struct {
				SchemaFormat string `yaml:"schemaFormat"`
				Schema       ref    `yaml:"schema"`
			} `yaml:"payload"`
			Examples []struct {
				Name    string `yaml:"name"`
				Payload any    `yaml:"payload"`
			} `yaml:"examples"`
		} `yaml:"messages"`
	} `yaml:"components"`
}

// channel is one channel with its compiled message schemas.
type channel struct {
	name    string
	address *regexp.Regexp
	schemas map[string]*jsonschema.Schema // message name -> payload schema
	files   map[string]string             // message name -> schema file
}

type spec struct {
	doc      asyncDoc
	channels map[string]*channel
}

func loadSpec(t testing.TB) *spec {
	t.Helper()
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncDoc
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("%s: %v", docPath, err)
	}
	if !strings.HasPrefix(doc.AsyncAPI, "3.") {
		t.Fatalf("asyncapi %q, want 3.x", doc.AsyncAPI)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	s := &spec{doc: doc, channels: map[string]*channel{}}
	base := filepath.Dir(docPath)
	addSchemaResources(t, c, filepath.Join(base, "schemas"))
	for name, ch := range doc.Channels {
		re, err := addressRegexp(ch.Address)
		if err != nil {
			t.Fatalf("channel %s: %v", name, err)
		}
		cc := &channel{name: name, address: re, schemas: map[string]*jsonschema.Schema{}, files: map[string]string{}}
		if len(ch.Messages) == 0 {
			t.Errorf("channel %s has no messages", name)
		}
		for mname, mref := range ch.Messages {
			msgName, ok := strings.CutPrefix(mref.Ref, "#/components/messages/")
			m, found := doc.Components.Messages[msgName]
			if !ok || !found {
				t.Errorf("channel %s message %s: $ref %q does not name a component message", name, mname, mref.Ref)
				continue
			}
			if m.Payload.SchemaFormat != "application/schema+json;version=draft-2020-12" {
				t.Errorf("message %s: schemaFormat %q", msgName, m.Payload.SchemaFormat)
			}
			file := filepath.Join(base, m.Payload.Schema.Ref)
			if _, err := os.Stat(file); err != nil {
				t.Errorf("message %s: schema file: %v", msgName, err)
				continue
			}
			sch, err := c.Compile(file)
			if err != nil {
				t.Errorf("message %s: compile %s: %v", msgName, file, err)
				continue
			}
			cc.schemas[msgName] = sch
			cc.files[msgName] = m.Payload.Schema.Ref
		}
		s.channels[name] = cc
	}
	for name, op := range doc.Operations {
		ch, ok := strings.CutPrefix(op.Channel.Ref, "#/channels/")
		if _, found := doc.Channels[ch]; !ok || !found {
			t.Errorf("operation %s: channel %q not defined", name, op.Channel.Ref)
		}
		if op.Action != "send" && op.Action != "receive" {
			t.Errorf("operation %s: action %q", name, op.Action)
		}
	}
	return s
}

// addressRegexp turns "{prefix}/{robot_id}/result/{slide_id}" into a
// regexp for this test's prefix and robot.
func addressRegexp(addr string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	for i, level := range strings.Split(addr, "/") {
		if i > 0 {
			b.WriteString("/")
		}
		switch {
		case level == "{prefix}":
			b.WriteString(regexp.QuoteMeta(prefix))
		case level == "{robot_id}":
			b.WriteString(regexp.QuoteMeta(robot))
		case strings.HasPrefix(level, "{"):
			b.WriteString("[^/#+]+")
		default:
			b.WriteString(regexp.QuoteMeta(level))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// channelOf returns the one channel whose address matches topic.
func (s *spec) channelOf(topic string) (*channel, error) {
	var hits []*channel
	for _, c := range s.channels {
		if c.address.MatchString(topic) {
			hits = append(hits, c)
		}
	}
	if len(hits) != 1 {
		return nil, fmt.Errorf("topic %q matches %d channels", topic, len(hits))
	}
	return hits[0], nil
}

// validate checks payload against the channel's message schemas (one of
// them must accept it).
func (c *channel) validate(payload []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	var errs []error
	for name, sch := range c.schemas {
		err := sch.Validate(v)
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s (%s): %w", name, c.files[name], err))
	}
	return errors.Join(errs...)
}

func TestDocumentSchemasAndExamples(t *testing.T) {
	s := loadSpec(t)
	var ajv ajvSamples
	defer func() {
		if !t.Failed() {
			ajv.check(t)
		}
	}()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range s.channels {
			if !yield(n) {
				return
			}
		}
	})
	if len(names) < 9 {
		t.Errorf("only %d channels: %v", len(names), names)
	}
	for name, ch := range s.doc.Channels {
		for _, mref := range ch.Messages {
			msgName := strings.TrimPrefix(mref.Ref, "#/components/messages/")
			m := s.doc.Components.Messages[msgName]
			for i, ex := range m.Examples {
				b, err := json.Marshal(ex.Payload)
				if err != nil {
					t.Fatalf("%s example %d: %v", msgName, i, err)
				}
				if file, err := s.channels[name].acceptedBy(b); err != nil {
					t.Errorf("channel %s example %q does not validate: %v", name, ex.Name, err)
				} else {
					ajv.add(file, b)
				}
			}
			if !realProducers[name] && len(m.Examples) == 0 {
				if _, pending := realProducers[name]; pending {
					t.Errorf("channel %s has neither real messages nor examples", name)
				}
			}
		}
	}
	// Every schema file in docs/schemas is reachable from the document
	// (directly or by $ref); a stray file is a sign of drift.
	used := map[string]bool{}
	for _, c := range s.channels {
		for _, f := range c.files {
			used[filepath.Base(f)] = true
		}
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(docPath), "schemas", "*.json"))
	for _, f := range files {
		base := filepath.Base(f)
		if used[base] {
			continue
		}
		b, _ := os.ReadFile(f)
		referenced := false
		for _, g := range files {
			if g != f {
				if gb, _ := os.ReadFile(g); bytes.Contains(gb, []byte(`"`+base)) {
					referenced = true
				}
			}
		}
		if !referenced || !json.Valid(b) {
			t.Errorf("schema %s is not used by docs/asyncapi.yaml", base)
		}
	}
}

// ---- real messages ----

type captured struct {
	topic   string
	payload []byte
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// recorder subscribes to everything under the prefix.
type recorder struct {
	mc paho.Client
	mu sync.Mutex
	in []captured
	ch chan struct{}
}

func newRecorder(t *testing.T, url string) *recorder {
	t.Helper()
	r := &recorder{ch: make(chan struct{}, 1)}
	o := paho.NewClientOptions().AddBroker(url).SetClientID("schematest-" + telemetry.NewID()).
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(wait).SetOrderMatters(false)
	r.mc = paho.NewClient(o)
	if tok := r.mc.Connect(); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("recorder connect: %v", tok.Error())
	}
	t.Cleanup(func() { r.mc.Disconnect(100) })
	// The probe topic lies outside the prefix. mochi v2.7.9 scans its
	// retained messages for a new subscription after sending the SUBACK,
	// racing with a retained publish from another client (data race in
	// TopicsIndex). Packets of one client are processed in order, so once
	// our own probe publish comes back, the scan is over.
	probe := "schematest/probe/" + telemetry.NewID()
	probed := make(chan struct{}, 1)
	tok := r.mc.SubscribeMultiple(map[string]byte{prefix + "/#": 1, probe: 1}, func(_ paho.Client, m paho.Message) {
		if m.Topic() == probe {
			select {
			case probed <- struct{}{}:
			default:
			}
			return
		}
		r.mu.Lock()
		r.in = append(r.in, captured{m.Topic(), append([]byte(nil), m.Payload()...)})
		r.mu.Unlock()
		select {
		case r.ch <- struct{}{}:
		default:
		}
	})
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	r.publish(t, probe, []byte("probe"))
	select {
	case <-probed:
	case <-time.After(wait):
		t.Fatal("probe did not come back")
	}
	return r
}

func (r *recorder) publish(t *testing.T, topic string, payload []byte) {
	t.Helper()
	if tok := r.mc.Publish(topic, 1, false, payload); !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// waitFor blocks until pred holds for the captured messages (bounded).
func (r *recorder) waitFor(t *testing.T, what string, pred func([]captured) bool) {
	t.Helper()
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := pred(r.in)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.ch:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (r *recorder) all() []captured {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]captured(nil), r.in...)
}

func has(sub string) func([]captured) bool {
	return func(cs []captured) bool {
		for _, c := range cs {
			if bytes.Contains(c.payload, []byte(sub)) {
				return true
			}
		}
		return false
	}
}

// agent is a command.Agent with fixed answers; Fetch reads a real state dir.
type agent struct{ root *os.Root }

var _ command.Agent = (*agent)(nil)

func (a *agent) StartMagazine(context.Context, command.StartMagazineArgs) error { return nil }
func (a *agent) Pause(context.Context) error {
	return fmt.Errorf("no magazine running: %w", command.ErrInvalidState)
}
func (a *agent) Resume(context.Context) error                               { return nil }
func (a *agent) Abort(context.Context, command.AbortArgs) error             { return nil }
func (a *agent) SetLogLevel(context.Context, command.SetLogLevelArgs) error { return nil }
func (a *agent) ReloadConfig(context.Context) error {
	return fmt.Errorf("agent.mqtt.keepalive: must be in [5s, 10m0s], got 1s: %w", command.ErrBadArgs)
}
func (a *agent) Status(context.Context) (command.Status, error) {
	return command.Status{State: "scanning", Magazine: "M0001", SlideID: "M0001-S03", SlidesDone: 2,
		Faults: []string{"camera: frame timeout"}, LogLevel: "info", UptimeS: 12.5, Version: "dev",
		Slide: &command.SlideProgress{Slot: 3, Phase: "scan", Done: 120, Total: 900},
		Slots: &command.SlotProgress{Occupied: 5, Done: []int{0, 2}, Rerun: []int{1}, Pending: []int{4}},
		Rerun: []command.RerunSlide{{Magazine: "M0001", Slot: 1, SlideID: "M0001-S01", ResultID: "r-1",
			Reason: "camera fault: frame timeout"}},
		Unfinished: "M0001", OutboxDepth: 3}, nil
}
func (a *agent) SelfTest(context.Context, command.SelfTestArgs) (command.SelfTestResult, error) {
	return command.SelfTestResult{Passed: false, Checks: []command.SelfTestOutcome{
		{Name: "camera", OK: true}, {Name: "axis x", OK: false, Detail: "home switch not reached"}}}, nil
}
func (a *agent) Fetch(_ context.Context, f command.FetchArgs) (command.FetchResult, error) {
	return command.ReadStored(a.root, f, 1<<20)
}

func sampleReport(slide string, complete bool) scan.Report {
	start := time.Date(2026, 11, 21, 7, 40, 0, 0, time.UTC)
	r := scan.Report{
		ResultID: telemetry.NewID(), SlideID: slide, RobotID: robot, Slot: 3,
		Verdict: classify.VerdictNILM, TilesPlanned: 120, TilesCaptured: 120, TilesAnalysed: 120, Frames: 410,
		Spot:  scan.Spot{CenterX: 40000, CenterY: 15000, Diameter: 13000, Found: true, Probes: 9},
		Focus: scan.FocusStats{Points: 25, Frames: 260, Terms: 6, FitRMS: 0.8, Map: []scan.FocusPoint{{X: 40000, Y: 15000, Z: 51.2}}},
		Result: classify.SlideResult{Verdict: classify.VerdictNILM, Counts: map[string]int{"NILM": 6100, "LSIL": 3},
			Cells: 6103, LowGradeCells: 3, Reason: "no abnormal cells above thresholds", ModelVersion: "sim-1"},
		Timing:    scan.Timing{Machine: 95 * time.Second, Wall: 3 * time.Second},
		StartedAt: start, FinishedAt: start.Add(95 * time.Second),
	}
	if !complete {
		r.Verdict, r.Result.Verdict = classify.VerdictIncomplete, classify.VerdictIncomplete
		r.TilesAnalysed, r.TilesMissing = 80, 40
		r.Error = "camera: frame timeout"
	}
	return r
}

// TestRealMessagesValidate produces every kind of message with the real
// encoders, captures them from the broker and validates each against the
// channel its topic belongs to.
func TestRealMessagesValidate(t *testing.T) {
	s := loadSpec(t)
	var ajv ajvSamples
	defer func() {
		if !t.Failed() {
			ajv.check(t)
		}
	}()
	b, err := broker.Start(context.Background(), "127.0.0.1:0", testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	rec := newRecorder(t, b.URL())
	ctx, cancel := context.WithTimeout(t.Context(), 2*wait)
	defer cancel()

	tm, err := telemetry.Dial(ctx, telemetry.Options{Brokers: []string{b.URL()}, RobotID: robot, TopicPrefix: prefix,
		ConnectTimeout: wait, PublishTimeout: wait, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = tm.Close(context.Background())
		}
	})
	rec.waitFor(t, "birth", has(`"state":"online"`))

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(tm.PublishState(ctx, "scanning", map[string]any{"magazine": "M0001"}))
	for _, r := range []scan.Report{sampleReport("M0001-S03", true), sampleReport("M0001-S04", false)} {
		body, err := json.Marshal(result.FromReport(&r))
		must(err)
		must(tm.PublishResult(ctx, r.SlideID, r.ResultID, body))
	}
	must(tm.PublishEvent(ctx, "magazine_done", map[string]any{"magazine": "M0001", "slides": 2}))
	must(tm.PublishEvent(ctx, "door_opened", nil))
	must(tm.PublishProgress("M0001-S05", 5, 120))

	// Commands: signed by the real signer, answered by a real dispatcher.
	replies, audits, invalid := runCommands(t, rec)
	for _, m := range invalid {
		if err := s.channels["cmd"].validate(m); err == nil {
			t.Errorf("cmd schema accepts a command the robot refuses: %s", m)
		}
	}
	for _, a := range audits {
		must(tm.PublishEvent(ctx, "command_audit", a))
	}
	for _, r := range replies {
		rec.publish(t, command.ReplyTopic(prefix, robot), r)
	}

	// Last Will: the robot's TCP connection breaks under the broker. The
	// socket is closed, not the mochi client stopped: Client.Stop races its
	// read loop, which may then see a closed client, take it for a clean
	// DISCONNECT and drop the Will (seen once under qemu on armv7).
	cl, ok := b.Server().Clients.Get("papscan-" + robot)
	if !ok {
		t.Fatal("robot client not found on the broker")
	}
	if err := cl.Net.Conn.Close(); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, "Last Will", has(`"reason":"connection lost"`))
	rec.waitFor(t, "progress", func(cs []captured) bool {
		return slices.ContainsFunc(cs, func(c captured) bool { return strings.HasSuffix(c.topic, "/progress") })
	})
	rec.waitFor(t, "second birth", func(cs []captured) bool {
		n := 0
		for _, c := range cs {
			if bytes.Contains(c.payload, []byte(`"state":"online"`)) {
				n++
			}
		}
		return n >= 2
	})
	must(tm.Close(ctx))
	closed = true
	rec.waitFor(t, "offline on close", has(`"reason":"shutdown"`))
	rec.waitFor(t, "every reply", func(cs []captured) bool {
		n := 0
		for _, c := range cs {
			if strings.HasSuffix(c.topic, "/cmd/reply") {
				n++
			}
		}
		return n == len(replies)
	})

	seen := map[string]int{}
	for _, c := range rec.all() {
		ch, err := s.channelOf(c.topic)
		if err != nil {
			t.Errorf("%v (payload %s)", err, c.payload)
			continue
		}
		seen[ch.name]++
		if file, err := ch.acceptedBy(c.payload); err != nil {
			t.Errorf("%s message on %s does not validate:\n%s\n%v", ch.name, c.topic, c.payload, err)
		} else {
			ajv.add(file, c.payload)
		}
	}
	for name := range s.channels {
		if _, pending := realProducers[name]; pending {
			continue
		}
		if seen[name] == 0 {
			t.Errorf("channel %s: no real message produced and validated", name)
		}
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	})
	for _, k := range keys {
		t.Logf("channel %-9s %d real messages validated", k, seen[k])
	}
}

// runCommands signs a command of every type plus refused ones, publishes
// them on the cmd topic, handles them with a real Dispatcher and returns
// the encoded replies and the audit records.
//
// Messages the schema must refuse (unknown type, garbage) are not
// published; they are returned as invalid and checked to be refused.
func runCommands(t *testing.T, rec *recorder) (replies [][]byte, audits []command.AuditRecord, invalid [][]byte) {
	t.Helper()
	state := t.TempDir()
	dir := filepath.Join(state, "slides", "M0001-S03", "r1")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "gallery.png"), []byte("\x89PNG\r\n\x1a\nfake"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })

	key, err := command.GenerateKey(nil, "fleet-1")
	if err != nil {
		t.Fatal(err)
	}
	ring, err := command.NewKeyRing(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	guard, err := command.OpenReplayGuard(filepath.Join(state, "command-nonces.json"), 0, now.Add(-time.Hour), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	d, err := command.NewDispatcher(command.DispatcherOptions{
		Verifier: command.Verifier{RobotID: robot, Keys: ring, MaxAge: 2 * time.Minute, ClockSkew: 30 * time.Second},
		Replay:   guard, Agent: &agent{root: root},
		Publish: func(context.Context, []byte) error { return nil },
		Audit: func(a command.AuditRecord) {
			mu.Lock()
			audits = append(audits, a)
			mu.Unlock()
		},
		Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(k command.SigningKey, robotID, typ string, args any, at time.Time) []byte {
		c, err := command.NewCommand(robotID, typ, args, at)
		if err != nil {
			t.Fatal(err)
		}
		m, err := command.Sign(k, c)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	var msgs [][]byte
	for _, c := range []struct {
		typ  string
		args any
	}{
		{command.TypeStartMagazine, command.StartMagazineArgs{Magazine: "M0001"}},
		{command.TypePause, nil},
		{command.TypeResume, nil},
		{command.TypeAbort, command.AbortArgs{Reason: "operator"}},
		{command.TypeStatus, nil},
		{command.TypeSelfTest, command.SelfTestArgs{Level: "quick"}},
		{command.TypeSetLogLevel, command.SetLogLevelArgs{Level: "debug"}},
		{command.TypeReloadConfig, nil},
		{command.TypeFetch, command.FetchArgs{SlideID: "M0001-S03", ResultID: "r1", Item: command.ItemGallery}},
		{command.TypeFetch, command.FetchArgs{SlideID: "M0001-S03", ResultID: "r2", Item: command.ItemTile, Tile: "t_001.png"}},
	} {
		msgs = append(msgs, sign(key, robot, c.typ, c.args, now))
	}
	evil, _ := command.GenerateKey(nil, "fleet-1")
	msgs = append(msgs,
		msgs[0], // replay
		sign(evil, robot, command.TypeStatus, nil, now),                // unauthorized
		sign(key, "robot-08", command.TypeStatus, nil, now),            // wrong_robot
		sign(key, robot, command.TypeStatus, nil, now.Add(-time.Hour)), // stale
	)
	invalid = [][]byte{
		sign(key, robot, "format_disk", nil, now),                         // unknown_command
		[]byte(`{"schema":"papscan.command/v1","body":"e30=","sig":"x"}`), // bad_request
	}
	codes := map[command.Code]bool{}
	for _, m := range append(msgs, invalid...) {
		if !slices.ContainsFunc(invalid, func(b []byte) bool { return bytes.Equal(b, m) }) {
			rec.publish(t, command.CmdTopic(prefix, robot), m)
		}
		rep := d.Handle(t.Context(), m)
		codes[rep.Code] = true
		b, err := command.EncodeReply(rep)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, b)
	}
	for _, c := range []command.Code{command.CodeOK, command.CodeInvalidState, command.CodeBadRequest, command.CodeNotFound,
		command.CodeReplay, command.CodeUnauthorized, command.CodeWrongRobot, command.CodeStale, command.CodeUnknownCommand} {
		if !codes[c] {
			t.Errorf("no reply with code %s produced", c)
		}
	}
	return replies, audits, invalid
}

// TestSchemasRejectMalformed makes sure the schemas are not vacuous.
func TestSchemasRejectMalformed(t *testing.T) {
	s := loadSpec(t)
	key, _ := command.GenerateKey(nil, "fleet-1")
	body := func(s string) []byte {
		m, err := command.SignBody(key, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	good := `{"id":"c-1","type":"fetch","robot":"robot-07","issued_at":"2026-11-21T08:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA","args":{"slide_id":"S1","result_id":"r1","item":"gallery"}}`
	if err := s.channels["cmd"].validate(body(good)); err != nil {
		t.Fatalf("good command refused: %v", err)
	}
	sig := strings.Repeat("A", 86) + "=="
	hdr := `"schema":"papscan.telemetry/v1","message_id":"0192f3c4-1d2e-7a3b-8c4d-5e6f70819203","robot_id":"robot-07","session_id":"0192f3c0-0000-7000-8000-000000000001","seq":3,"sent_at":"2026-11-21T07:47:00Z"`
	for _, tc := range []struct {
		channel, why string
		payload      []byte
	}{
		{"cmd", "fetch traversal in the signed body", body(strings.Replace(good, `"slide_id":"S1"`, `"slide_id":".."`, 1))},
		{"cmd", "tile with ..", body(strings.Replace(good, `"item":"gallery"`, `"item":"tile","tile":"a..b"`, 1))},
		{"cmd", "unknown body field", body(strings.Replace(good, `"id":"c-1"`, `"id":"c-1","admin":true`, 1))},
		{"cmd", "unknown type", body(strings.Replace(good, `"type":"fetch"`, `"type":"format_disk"`, 1))},
		{"cmd", "set_log_level trace", body(`{"id":"c-1","type":"set_log_level","robot":"robot-07","issued_at":"2026-11-21T08:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA","args":{"level":"trace"}}`)},
		{"cmd", "args on pause", body(`{"id":"c-1","type":"pause","robot":"robot-07","issued_at":"2026-11-21T08:00:00Z","nonce":"AAAAAAAAAAAAAAAAAAAAAA","args":{"force":true}}`)},
		{"cmd", "body not base64", []byte(`{"schema":"papscan.command/v1","body":"!!!!","sig":"` + sig + `"}`)},
		{"cmd", "envelope extra field", []byte(`{"schema":"papscan.command/v1","body":"e30=","sig":"` + sig + `","x":1}`)},
		{"cmdReply", "ok with error code", []byte(`{"schema":"papscan.reply/v1","id":"c","robot":"robot-07","ok":true,"code":"busy","sent_at":"2026-11-21T08:00:00Z"}`)},
		{"cmdReply", "refusal without message", []byte(`{"schema":"papscan.reply/v1","id":"c","robot":"robot-07","ok":false,"code":"busy","sent_at":"2026-11-21T08:00:00Z"}`)},
		{"cmdReply", "unknown code", []byte(`{"schema":"papscan.reply/v1","id":"c","robot":"robot-07","ok":false,"code":"nope","message":"x","sent_at":"2026-11-21T08:00:00Z"}`)},
		{"cmdReply", "status without result", []byte(`{"schema":"papscan.reply/v1","id":"c","type":"status","robot":"robot-07","ok":true,"code":"ok","sent_at":"2026-11-21T08:00:00Z"}`)},
		{"state", "birth without client_id", []byte(`{` + hdr + `,"kind":"state","state":"online","body":{}}`)},
		{"state", "bad sent_at", []byte(`{` + strings.Replace(hdr, "2026-11-21T07:47:00Z", "yesterday", 1) + `,"kind":"state","state":"scanning"}`)},
		{"state", "seq without message_id", []byte(`{"schema":"papscan.telemetry/v1","kind":"state","robot_id":"robot-07","session_id":"0192f3c0-0000-7000-8000-000000000001","seq":1,"state":"x"}`)},
		{"progress", "done as string", []byte(`{` + hdr + `,"kind":"progress","slide_id":"S1","body":{"done":"5","total":9}}`)},
		{"result", "extra field", []byte(`{` + hdr + `,"kind":"result","slide_id":"S1","result_id":"r","body":{},"extra":1}`)},
		{"result", "body without verdict", []byte(`{` + hdr + `,"kind":"result","slide_id":"S1","result_id":"r","body":{"result_id":"r"}}`)},
		{"event", "audit body incomplete", []byte(`{` + hdr + `,"kind":"event","event":"command_audit","body":{"accepted":true}}`)},
		{"ack", "no ids", []byte(`{"schema":"papscan.telemetry/v1","kind":"ack","robot_id":"robot-07","ids":[]}`)},
		{"replay", "negative seq", []byte(`{"schema":"papscan.telemetry/v1","kind":"replay","robot_id":"robot-07","from_seq":-1}`)},
		{"health", "missing disk", []byte(`{` + hdr + `,"kind":"health","body":{"uptime_s":1,"stage":"x","outbox":{"depth":0},"scan":{"slides":0,"results":0,"incomplete":0,"errors":0},"accept_slides":true,"connected":true}}`)},
	} {
		ch := s.channels[tc.channel]
		if ch == nil {
			t.Fatalf("no channel %s", tc.channel)
		}
		if err := ch.validate(tc.payload); err == nil {
			t.Errorf("%s: %s accepted: %s", tc.channel, tc.why, tc.payload)
		}
	}
}

// addSchemaResources registers every schema file under its $id, so that
// the relative $refs between them resolve against the $id (as in ajv and
// every other validator), not against the file's path.
func addSchemaResources(t testing.TB, c *jsonschema.Compiler, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("schemas in %s: %v", dir, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m, _ := doc.(map[string]any)
		id, _ := m["$id"].(string)
		if want := "https://schemas.papscan.example/" + filepath.Base(f); id != want {
			t.Errorf("%s: $id %q, want %q", f, id, want)
			continue
		}
		if err := c.AddResource(id, doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
}
